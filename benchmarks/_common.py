"""Helpers for benchmarks: interleaved repetitions, medians, a table, a JSON record."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def interleaved(fns: dict[str, Callable[[], Any]], reps: int, *, warmup: int = 1) -> dict[str, list[float]]:
    """Run each function once per round, ``reps`` rounds, in alternating order; seconds per call.

    ``warmup`` untimed rounds come first (allocator, thread pools, caches).
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    for rep in range(reps):
        for name in names if rep % 2 == 0 else reversed(names):
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


SMOLLM2_SHAPE = {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                 "num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": True}
"""SmolLM2-135M's shape (transformers ``LlamaConfig`` fields)."""


def smollm2_config(**overrides: Any) -> Any:
    """A ``LlamaConfig`` of SmolLM2-135M's shape; ``overrides`` replace or add fields."""
    from transformers import LlamaConfig

    return LlamaConfig(**{**SMOLLM2_SHAPE, **overrides})


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, Any]:
    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def report(name: str, rows: list[dict[str, Any]], extra: dict[str, Any]) -> Path:
    """Print rows as a table and write ``benchmarks/results/<name>.json``."""
    keys = [k for k in rows[0] if k != "raw"]
    widths = [max(len(k), *(len(_fmt(r[k])) for r in rows)) for k in keys]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths)))
    for r in rows:
        print("  ".join(_fmt(r[k]).ljust(w) for k, w in zip(keys, widths)))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine(), **extra, "rows": rows}, indent=2))
    print(f"wrote {path}")
    return path


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def rss_peak_kb() -> int:
    """Peak resident memory of this process in KiB (VmHWM; ru_maxrss where /proc is missing)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (writes 5 to /proc/self/clear_refs; a no-op elsewhere)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
