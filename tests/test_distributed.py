"""``distributed``: single-process fallbacks, and cross-device equivalence for real (torchrun, gloo, CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from o1embedder import distributed

sys.path.insert(0, str(Path(__file__).parent / "dist_scripts"))
from helpers import config, fixed_batch, grads, save_model, simple_rows, write_rows  # noqa: E402

SCRIPT = Path(__file__).parent / "dist_scripts" / "ddp_equivalence.py"


def test_single_process_fallbacks() -> None:
    assert (distributed.rank(), distributed.world_size(), distributed.is_distributed()) == (0, 1, False)
    x = torch.randn(3, 4, requires_grad=True)
    assert distributed.all_gather_with_grad(x) is x
    assert torch.equal(distributed.all_gather_no_grad(x), x)
    assert float(distributed.all_reduce_sum(torch.tensor(2.5))) == 2.5
    assert distributed.rank_offset(x) == 0
    distributed.barrier()
    distributed.average_gradients([x])


def _reference(cfg, dtype: torch.dtype) -> dict:
    from o1embedder.training.api import build
    from o1embedder.training.forward import joint_parts

    parts = build(cfg)
    model = parts.model.train().to(dtype)
    out = model(**fixed_batch(parts, [0, 1, 2, 3, 4]))
    loss = joint_parts(out["q"], out["d"], out["lm_sum"], out["lm_count"], None, cfg.loss)
    loss["loss"].backward()
    return {"loss": {k: float(v.detach()) for k, v in loss.items()}, "grads": grads(model)}


def test_torchrun_two_ranks_match_one_process(tmp_path: Path) -> None:
    """Acceptance 1: 2 ranks (3 + 2 queries) == 1 process on the 5 queries: loss and gradients to 1e-5."""
    rows = simple_rows(5, 3, thought_every=2)        # rows 1 and 3 have no thought: uneven LM tokens
    model = save_model(tmp_path / "model", [r["query"] + " " + r["pos"][0] for r in rows] * 5)
    data = write_rows(tmp_path / "rows.jsonl", rows)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(SCRIPT), "--model", str(model), "--data", str(data), "--out", str(tmp_path), "--train"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[:6000]
    cfg = config(model, data, tmp_path / "ref", group_size=4)
    for dtype, tol in ((torch.float64, 1e-5), (torch.float32, 1e-5)):
        ref = _reference(cfg, dtype)
        scale = max(1.0, max(float(g.abs().max()) for g in ref["grads"].values()))
        for mode in ("plain", "gradcache"):
            for rank in (0, 1):
                got = torch.load(tmp_path / f"{mode}-{str(dtype)[6:]}-rank{rank}.pt")
                for name in ("loss", "contrastive", "thought_lm"):
                    assert abs(got["loss"][name] - ref["loss"][name]) < tol, (mode, dtype, rank, name)
                assert got["grads"].keys() == ref["grads"].keys()
                worst = max(float((got["grads"][n] - g).abs().max()) for n, g in ref["grads"].items())
                # float64: absolute; float32: relative to the largest gradient entry (float32 noise)
                assert worst < tol * (1.0 if dtype == torch.float64 else scale), (mode, dtype, rank, worst)
    assert (tmp_path / "run" / "final" / "o1embedder.json").is_file()


def test_reductions_run_on_the_process_groups_device(monkeypatch) -> None:
    """NCCL cannot reduce CPU tensors: the trainer's loss-part means (a CPU tensor) must move to the
    rank's accelerator for the all-reduce and come back; gloo reduces them where they are."""
    seen: list[torch.device] = []

    class FakeDist:
        class ReduceOp:
            SUM = "sum"

        def __init__(self, backend: str) -> None:
            self.backend = backend

        def get_backend(self) -> str:
            return self.backend

        def all_reduce(self, tensor: torch.Tensor, op: str) -> None:
            seen.append(tensor.device)
            tensor.mul_(2)                                   # as if two ranks held the same values

    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    monkeypatch.setattr(distributed, "_accelerator", lambda: torch.device("meta"))
    monkeypatch.setattr(distributed, "_dist", lambda: FakeDist("gloo"))
    out = distributed.all_reduce_sum(torch.tensor([1.0, 2.0]))
    assert seen == [torch.device("cpu")] and out.tolist() == [2.0, 4.0]
    for backend, device in (("nccl", "meta"), ("xccl", "meta"), ("cpu:gloo,cuda:nccl", "cpu")):
        monkeypatch.setattr(distributed, "_dist", lambda b=backend: FakeDist(b))
        assert distributed.collective_device(torch.zeros(2)) == torch.device(device), backend
    monkeypatch.setattr(distributed, "_dist", lambda: FakeDist("nccl"))
    assert distributed.collective_device(torch.zeros(2, device="meta")) == torch.device("meta")


def test_the_cli_leaves_the_process_group_together_only_after_a_normal_end(monkeypatch) -> None:
    """A command that ended normally leaves at a barrier with its peers (rank 0 may still be writing
    what the others skip); a failed one leaves at once, since its peers may never reach a barrier."""
    import argparse

    from o1embedder import cli
    from o1embedder.errors import InputError

    calls: list[bool] = []
    monkeypatch.setattr(distributed, "shutdown", lambda together=True: calls.append(together))

    def parser_running(func):
        parser = cli.Parser(prog="o1emb")
        parser.add_argument("--log-level", default="WARNING")
        parser.add_subparsers(dest="command").add_parser("job").set_defaults(func=func)
        return lambda: parser

    def fails(args: argparse.Namespace) -> int:
        raise InputError("bad input")

    monkeypatch.setattr(cli, "build_parser", parser_running(lambda args: 0))
    assert cli.main(["job"]) == 0
    monkeypatch.setattr(cli, "build_parser", parser_running(fails))
    assert cli.main(["job"]) == 2
    assert calls == [True, False]
