"""GradCache (Gao et al., 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup"), carrying the thought LM loss too.

1. Forward every chunk of queries and documents **without a graph**; keep the vectors, the LM sum
   and each chunk's RNG state.
2. Compute the joint loss on the (detached) vectors and take its gradient with respect to them.
3. When the Trainer calls ``loss.backward()``, replay each chunk *with* a graph (same RNG state, so
   dropout masks repeat) and back-propagate ``<vector, cached gradient> + c * lm_sum_chunk`` where
   ``c = (1 - lambda) * d loss / d lm_sum``; only one chunk's activations are alive at a time.

The replay runs inside the backward of a small autograd function (the same trick as reentrant
activation checkpointing), so the Trainer's own ``backward`` call drives it and we only override
``compute_loss``. It calls the *unwrapped* module: DDP's hooks do not fire, so the gradients are
averaged over ranks once at the end (``distributed.average_gradients``). This path therefore
supports one process and DDP; under FSDP/DeepSpeed use the plain path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from .. import distributed, losses
from .config import GradCacheConfig, LossConfig
from .forward import JointModel, joint_parts


def _rng_state() -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return torch.get_rng_state(), cuda


@contextlib.contextmanager
def _replayed_rng(state: tuple[torch.Tensor, list[torch.Tensor] | None]) -> Iterator[None]:
    devices = list(range(torch.cuda.device_count())) if state[1] is not None else []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state_all(state[1])
        yield


def _query_chunk(batch: dict[str, torch.Tensor], start: int, stop: int) -> dict[str, torch.Tensor]:
    """Rows ``start:stop`` of the query side, with LM targets re-indexed and all-pad columns cut."""
    mask = batch["q_mask"][start:stop]                                               # [b, T]
    lead = int((mask.sum(0) > 0).nonzero()[0]) if mask.any() else 0
    keep = (batch["lm_rows"] >= start) & (batch["lm_rows"] < stop)                   # [M] -> [m]
    return {"q_ids": batch["q_ids"][start:stop, lead:], "q_mask": mask[:, lead:],
            "lm_rows": batch["lm_rows"][keep] - start, "lm_cols": batch["lm_cols"][keep] - lead,
            "lm_labels": batch["lm_labels"][keep]}


def _doc_chunk(batch: dict[str, torch.Tensor], start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    mask = batch["d_mask"][start:stop]
    lead = int((mask.sum(0) > 0).nonzero()[0]) if mask.any() else 0
    return batch["d_ids"][start:stop, lead:], mask[:, lead:]


def _spans(total: int, size: int) -> list[tuple[int, int]]:
    return [(i, min(i + size, total)) for i in range(0, total, max(1, size))]


class _Replay(torch.autograd.Function):
    """Identity on the loss value whose backward runs the chunk-wise replay."""

    @staticmethod
    def forward(ctx: Any, anchor: torch.Tensor, value: torch.Tensor, replay: Callable) -> torch.Tensor:
        ctx.replay = replay
        return value.detach().clone()

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[None, None, None]:
        ctx.replay(grad_out)
        return None, None, None


def gradcache_parts(module: JointModel, batch: dict[str, torch.Tensor], loss_cfg: LossConfig,
                    gc: GradCacheConfig) -> dict[str, torch.Tensor]:
    """The joint loss parts of ``batch`` computed GradCache-style; ``parts["loss"].backward()`` replays."""
    q_spans = _spans(batch["q_ids"].shape[0], gc.query_chunk)
    d_spans = _spans(batch["d_ids"].shape[0], gc.doc_chunk)
    q_states, d_states, q_vecs, d_vecs = [], [], [], []
    lm_sum, lm_count = torch.zeros((), device=batch["q_ids"].device), 0
    with torch.no_grad():                                       # 1. no graph
        for a, b in q_spans:
            q_states.append(_rng_state())
            out = module.encode_queries(**_query_chunk(batch, a, b))
            q_vecs.append(out.vectors)
            lm_sum, lm_count = lm_sum + out.lm_sum, lm_count + out.lm_count
        for a, b in d_spans:
            d_states.append(_rng_state())
            d_vecs.append(module.encode_docs(*_doc_chunk(batch, a, b)))
    q = torch.cat(q_vecs).requires_grad_()                                            # [B, H]
    d = torch.cat(d_vecs).requires_grad_()                                            # [B*G, H]
    with torch.enable_grad():                                   # 2. gradient w.r.t. the vectors
        parts = joint_parts(q, d, lm_sum, lm_count, batch.get("teacher"), loss_cfg)
        grad_q, grad_d = torch.autograd.grad(parts["loss"], [q, d])
    lm_coef = (1.0 - loss_cfg.lam) * losses.global_mean_share(torch.ones((), dtype=q.dtype, device=q.device),
                                                                    lm_count)

    def replay(grad_out: torch.Tensor) -> None:                 # 3. chunk-wise backward
        with torch.enable_grad():
            for (a, b), state in zip(q_spans, q_states, strict=True):
                with _replayed_rng(state):
                    out = module.encode_queries(**_query_chunk(batch, a, b))
                surrogate = (out.vectors * grad_q[a:b]).sum() + lm_coef * out.lm_sum
                torch.autograd.backward(surrogate * grad_out)
            for (a, b), state in zip(d_spans, d_states, strict=True):
                with _replayed_rng(state):
                    vecs = module.encode_docs(*_doc_chunk(batch, a, b))
                torch.autograd.backward((vecs * grad_d[a:b]).sum() * grad_out)
        distributed.average_gradients(p for p in module.parameters() if p.requires_grad)

    anchor = torch.zeros((), device=q.device, requires_grad=True)
    out = {name: value.detach() for name, value in parts.items()}
    out["loss"] = _Replay.apply(anchor, parts["loss"].detach(), replay)
    return out
