"""Run by ``torchrun --nproc_per_node 2`` (gloo, CPU) from tests/test_rl.py; ``one_step`` is also the
single-process reference there.

One GRPO step (``rl_step``) in float64: every rank rolls out, rewards and back-propagates its share of
the step's rows (rank 0 rows 0 and 2, rank 1 rows 1 and 3, as ``rank_share`` deals them). A recording
optimizer keeps the gradients after DDP's cross-rank average instead of stepping; the global loss terms
and the gradients go to ``OUT/rl-<mode>-rank<r>.pt``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import torch

from o1embedder import distributed
from o1embedder.rl.config import RLConfig
from o1embedder.rl.loop import build, rl_step, wrap_policy


def rl_config(model: Path, data: Path, out: Path, mode: str) -> RLConfig:
    return RLConfig.from_dict(dict(
        model=str(model), data=str(data), out=str(out), steps=1, rows_per_step=4, samples=3, group_size=2,
        max_new_tokens=6, rollout_temperature=1.0, kl_coef=0.5, contrastive_weight=0.7, learning_rate=1e-2,
        warmup_steps=0, max_grad_norm=0.0, mixed_precision="no", save_steps=0, adapter={"mode": mode},
        logprob_chunk=2))        # chunked log-probabilities (rl/logprobs.py) across ranks too


class RecordGradients:
    """Stands in for the optimizer: keeps the (already averaged) gradients, changes nothing."""

    def __init__(self, named: dict[str, torch.nn.Parameter]) -> None:
        self.named, self.grads = named, {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.named.values():
            p.grad = None

    def step(self) -> None:
        self.grads = {n: p.grad.detach().clone() for n, p in self.named.items() if p.grad is not None}


class ConstantSchedule:
    def step(self) -> None:
        pass

    def get_last_lr(self) -> list[float]:
        return [0.0]


def one_step(config: RLConfig, dtype: torch.dtype = torch.float64) -> dict[str, Any]:
    """One RL step on this process's rows: the global loss terms and the averaged gradients."""
    torch.manual_seed(0)
    parts = build(config)
    parts.joint.to(dtype)
    if parts.reference is not None:
        parts.reference.to(dtype)
    parts.policy = wrap_policy(parts)              # DDP (under torchrun) over the float64 parameters
    named = {n: p for n, p in parts.joint.named_parameters() if p.requires_grad}
    optimizer = RecordGradients(named)
    logged = rl_step(parts, optimizer, ConstantSchedule(), 0)
    n = distributed.world_size()
    terms = {k: float(distributed.all_reduce_sum(torch.tensor(logged[k], dtype=torch.float64))) / n
             for k in ("policy", "kl", "contrastive", "loss")}
    return {"terms": terms, "grads": optimizer.grads, "local_reward_std": logged["reward_std"]}


def main() -> None:
    import torch.distributed as dist

    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    dist.init_process_group("gloo")
    out = Path(args.out)
    for mode in ("full", "lora"):
        found = one_step(rl_config(Path(args.model), Path(args.data), out / f"run-{mode}", mode))
        torch.save(found, out / f"rl-{mode}-rank{distributed.rank()}.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
