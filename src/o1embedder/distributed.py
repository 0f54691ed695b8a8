"""The only module that knows about ranks: rank, world size, gathers, reductions, barrier.

Every function works without ``torch.distributed`` (a single process, or a process group that was
never initialised): ranks are then 0 of 1, a gather returns its input, a reduction is the identity.
So losses and training code call these unconditionally and never check ranks themselves.

Gradient convention of :func:`all_gather_with_grad`: the forward concatenates every rank's tensor;
the backward sums the incoming gradient over ranks (all-reduce) and hands each rank the slice of its
own shard. A loss computed on rank ``r`` from the gathered tensor therefore sends gradient to the
rank that *owns* each row - the same arithmetic as one process holding the whole batch. The
alternative (sentence-transformers' "keep only the local slice" without the all-reduce) drops the
gradient other ranks' losses send to this rank's rows, so each rank would then have to compute the
loss over *all* queries to stay exact; we prefer one all-reduce of a small [N, H] gradient.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .log import get_logger

logger = get_logger(__name__)
TIMEOUT_ENV = "O1EMB_DIST_TIMEOUT"
"""Seconds a collective may wait for the slowest rank (default 7,200: rank 0 builds a FAISS index or
writes a merged model while the others wait at a barrier; gloo's own default is 30 minutes)."""


def _dist() -> Any:
    import torch.distributed as dist

    return dist


def is_distributed() -> bool:
    """True when a ``torch.distributed`` process group is initialised with more than one rank."""
    try:
        dist = _dist()
    except ImportError:  # pragma: no cover - torch always has it, kept for exotic builds
        return False
    return bool(dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1)


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return _dist().get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes in the default group (1 without a process group)."""
    return _dist().get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if is_distributed():
        _dist().barrier()


def launched_world_size() -> int:
    """Processes the launcher started (``WORLD_SIZE`` from torchrun / accelerate), 1 outside one."""
    value = os.environ.get("WORLD_SIZE", "1") or "1"
    return int(value) if value.isdigit() else 1


def init_from_env(device: Any = None) -> Any:
    """Join the process group that ``torchrun`` (or ``accelerate launch``) describes in the
    environment, and return the ``torch.device`` this rank computes on.

    The one place that sets up several processes, so every command (``train``, ``rl``, ``index``,
    ``eval``, ``mine``) runs as one job across them: under a launcher with ``WORLD_SIZE > 1`` each
    rank takes its own GPU (``cuda:LOCAL_RANK``, NCCL) or, without CUDA or with ``device="cpu"``, the
    CPU (gloo). Outside a launcher it returns ``device`` (default: CUDA when present, else CPU) and
    sets nothing up. Idempotent: a process group that already exists (the Trainer's, a test's) is
    kept. ``device="cuda:1"`` under a multi-process launcher still means "this rank's GPU": two ranks
    sharing one GPU would silently halve its memory, and ranks are placed by ``LOCAL_RANK``.
    """
    import datetime

    import torch

    try:
        requested = torch.device(device) if device not in (None, "", "auto") else None
    except (RuntimeError, TypeError) as exc:
        from .errors import InputError

        raise InputError(f"unknown device {device!r}: {exc}") from None
    if requested is None:
        requested = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if launched_world_size() <= 1:
        return requested
    dist = _dist()
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    chosen = torch.device("cuda", local) if requested.type == "cuda" else requested
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        timeout = datetime.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, "7200")))
        dist.init_process_group(backend=backend, timeout=timeout)
        logger.info("process group: %s, %d ranks; rank %d on %s", backend, dist.get_world_size(),
                    dist.get_rank(), chosen)
    return chosen


def shutdown(together: bool = True) -> None:
    """Leave the process group, if one exists (the CLI calls this when a command ends).

    ``together`` (a command that ended normally): the ranks first meet at a barrier, so no rank tears
    its connections down while another still works (rank 0 writing the outputs the others skip); a
    rank that left early that way was once seen to abort in gloo's teardown on a loaded machine. A
    failed command leaves at once: its peers may never reach the barrier."""
    dist = _dist()
    if dist.is_available() and dist.is_initialized():
        if together:
            dist.barrier()
        dist.destroy_process_group()


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a small picklable object: a path, a list of ids)."""
    if not is_distributed():
        return value
    holder = [value]
    _dist().broadcast_object_list(holder, src=0)
    return holder[0]


def rank_slice(count: int) -> slice:
    """This rank's contiguous block of ``count`` items (the first ``count % world`` ranks get one more),
    so that concatenating every rank's block in rank order restores the original order."""
    n, r = world_size(), rank()
    size, extra = divmod(count, n)
    start = r * size + min(r, extra)
    return slice(start, start + size + (1 if r < extra else 0))


def gather_list(items: Sequence[Any]) -> list[Any]:
    """Every rank's ``items`` concatenated in rank order, on every rank (picklable objects; with
    :func:`rank_slice` this rebuilds a list that the ranks worked on in blocks)."""
    if not is_distributed():
        return list(items)
    parts: list[Any] = [None] * world_size()
    _dist().all_gather_object(parts, list(items))
    return [item for part in parts for item in part]


def _accelerator() -> Any:
    """This process's accelerator device (CUDA, or what ``torch.accelerator`` reports)."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    accelerator = getattr(torch, "accelerator", None)
    found = accelerator.current_accelerator() if accelerator is not None else None
    return found if found is not None else torch.device("cpu")


def collective_device(tensor: Any) -> Any:
    """Where a collective on ``tensor`` must run: its own device, unless it is on the CPU and the
    process group's backend cannot reduce CPU tensors (NCCL and the other accelerator backends)."""
    backend = str(_dist().get_backend()).lower()
    if tensor.device.type != "cpu" or "gloo" in backend or "mpi" in backend:
        return tensor.device
    return _accelerator()


def all_reduce_sum(value: Any) -> Any:
    """Sum of a tensor over ranks, without gradient (counts, normalisers). Returns a new tensor on
    the input's device; the reduction itself runs on the process group's device."""
    import torch

    out = value.detach().clone() if isinstance(value, torch.Tensor) else torch.tensor(value)
    if is_distributed():
        device = out.device
        moved = out.to(collective_device(out))
        _dist().all_reduce(moved, op=_dist().ReduceOp.SUM)
        out = moved.to(device)
    return out


def _sizes(tensor: Any) -> list[int]:
    """First-dimension size of ``tensor`` on every rank."""
    import torch

    local = torch.tensor([tensor.shape[0]], dtype=torch.long, device=tensor.device)
    sizes = [torch.zeros_like(local) for _ in range(world_size())]
    _dist().all_gather(sizes, local)
    return [int(s.item()) for s in sizes]


def _gather_padded(tensor: Any, sizes: list[int]) -> Any:
    """Concatenate every rank's ``tensor`` [n_r, ...] -> [sum n_r, ...] (ranks may differ in n_r)."""
    import torch

    width = max(sizes)
    padded = tensor.new_zeros((width, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in sizes]
    _dist().all_gather(parts, padded.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)], dim=0)


def _make_gather_fn() -> Any:
    import torch

    class _AllGather(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, tensor: Any) -> Any:
            sizes = _sizes(tensor)
            ctx.sizes, ctx.rank = sizes, rank()
            return _gather_padded(tensor.detach(), sizes)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            grad = grad.contiguous().clone()
            _dist().all_reduce(grad, op=_dist().ReduceOp.SUM)       # every rank's loss -> every row
            start = sum(ctx.sizes[: ctx.rank])
            return grad[start: start + ctx.sizes[ctx.rank]]

    return _AllGather


_GATHER: Any = None


def all_gather_with_grad(tensor: Any) -> Any:
    """Concatenate ``tensor`` [n_r, ...] from all ranks -> [sum_r n_r, ...], in rank order.

    Differentiable: gradients reaching the gathered rows are summed over ranks and flow back into
    the local shard (see the module docstring). Without a process group it returns ``tensor``.
    """
    global _GATHER
    if not is_distributed():
        return tensor
    if _GATHER is None:
        _GATHER = _make_gather_fn()
    return _GATHER.apply(tensor)


def all_gather_no_grad(tensor: Any) -> Any:
    """Like :func:`all_gather_with_grad` but detached (for scores, ids, labels)."""
    if not is_distributed():
        return tensor
    return _gather_padded(tensor.detach(), _sizes(tensor))


def rank_offset(local: Any) -> int:
    """Rows of ``local`` [n_r, ...] held by lower ranks: where this rank's rows start once gathered."""
    if not is_distributed():
        return 0
    return sum(_sizes(local)[: rank()])


def average_gradients(parameters: Any) -> None:
    """All-reduce-average ``.grad`` of the given parameters (for code paths that bypass DDP's hooks)."""
    if not is_distributed():
        return
    n = world_size()
    for param in parameters:
        if param.grad is not None:
            _dist().all_reduce(param.grad, op=_dist().ReduceOp.SUM)
            param.grad.div_(n)
