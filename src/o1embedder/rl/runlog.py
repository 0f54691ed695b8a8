"""The run's log: ``OUT/rl_log.jsonl``, one line of numbers per step (averaged over ranks, written by
rank 0), cut back to a resumed checkpoint's step; the progress bar's short numbers."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import distributed
from ..formats import atomic_write

LOG_FILE = "rl_log.jsonl"


def log_line(step: int, numbers: dict[str, float]) -> str:
    return json.dumps({"step": step, **{k: round(v, 6) for k, v in numbers.items()}})


def append(path: Path, step: int, numbers: dict[str, float]) -> None:
    """Rank 0: one line for ``step``."""
    if distributed.is_main_process():
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(log_line(step, numbers) + "\n")


def bar_text(numbers: dict[str, float]) -> dict[str, str]:
    keys = (("reward", "reward_mean"), ("kl", "kl"), ("len", "thought_tokens"), ("zero_var", "zero_variance"),
            ("con", "contrastive"))
    return {short: f"{numbers[key]:.3g}" for short, key in keys if key in numbers}


def mean_over_ranks(numbers: dict[str, float]) -> dict[str, float]:
    if not distributed.is_distributed():
        return numbers
    names = sorted(numbers)
    total = distributed.all_reduce_sum(torch.tensor([numbers[n] for n in names], dtype=torch.float64))
    return {n: float(v) / distributed.world_size() for n, v in zip(names, total, strict=True)}


def truncate(path: Path, steps: int) -> None:
    """Keep the first ``steps`` lines of the log (a resumed run rewrites what followed its checkpoint)."""
    if not distributed.is_main_process():
        return
    if steps == 0:
        path.unlink(missing_ok=True)
        return
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()[:steps]
        write_text(path, "".join(line + "\n" for line in lines))


def write_text(path: Path, text: str) -> None:
    with atomic_write(path) as handle:
        handle.write(text)


def read_log(path: str | Path) -> list[dict[str, float]]:
    """The per-step numbers an RL run logged (``OUT/rl_log.jsonl``)."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
