"""Run by ``torchrun --nproc_per_node 2`` (gloo, CPU) from tests/test_distributed.py.

Each rank takes its shard of a fixed batch (rank 0: rows 0-2, rank 1: rows 3-4 - unequal on purpose),
computes the joint loss with cross-device negatives, back-propagates (DDP averages), and writes
the global loss and the gradients to ``OUT/<mode>-rank<r>.pt`` for the plain and GradCache paths.
With ``--train`` it then runs ``o1embedder.training.train`` for two steps under DDP.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import config, fixed_batch, grads  # noqa: E402

from o1embedder import distributed  # noqa: E402
from o1embedder.training.api import build  # noqa: E402
from o1embedder.training.config import GradCacheConfig  # noqa: E402
from o1embedder.training.forward import joint_parts  # noqa: E402
from o1embedder.training.gradcache import gradcache_parts  # noqa: E402

SHARDS = ([0, 1, 2], [3, 4])


def step(mode: str, dtype: torch.dtype, cfg, out: Path) -> None:
    torch.manual_seed(1234)
    parts = build(cfg)
    model = parts.model.train().to(dtype)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    batch = fixed_batch(parts, SHARDS[distributed.rank()])
    if mode == "plain":
        res = ddp(**batch)
        loss = joint_parts(res["q"], res["d"], res["lm_sum"], res["lm_count"], None, cfg.loss)
    else:
        loss = gradcache_parts(model, batch, cfg.loss, GradCacheConfig(True, query_chunk=2, doc_chunk=3))
    loss["loss"].backward()
    values = {k: float(distributed.all_reduce_sum(v.detach()) / distributed.world_size())
              for k, v in loss.items()}
    torch.save({"loss": values, "grads": grads(model)}, out / f"{mode}-{str(dtype)[6:]}-rank{distributed.rank()}.pt")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--train", action="store_true")
    args = p.parse_args()
    dist.init_process_group("gloo")
    out = Path(args.out)
    cfg = config(Path(args.model), Path(args.data), out / "run", group_size=4)
    for dtype in (torch.float64, torch.float32):
        for mode in ("plain", "gradcache"):
            step(mode, dtype, cfg, out)
    if args.train:
        from o1embedder.training import train

        cfg = config(Path(args.model), Path(args.data), out / "run", group_size=4, max_steps=2,
                     per_device_train_batch_size=2, logging_steps=1, save_strategy="no", use_cpu=True)
        train(cfg)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
