"""The progress bar of a synthesis run: rows done, throughput, retries, bad candidates, failures."""

from __future__ import annotations

import time

from ..log import progress_enabled
from .config import SynthesisReport


class _Progress:
    """tqdm bar: rows done, rows/s, tokens/s when reported, retries, bad candidates, failures."""

    def __init__(self, report: SynthesisReport, total: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.report = report
        self.start = time.perf_counter()
        self.last_postfix = 0.0
        self.bar = tqdm(total=total, unit="row", desc="synthesize", disable=not progress_enabled(enabled), dynamic_ncols=True)

    def update(self, n: int) -> None:
        self.bar.update(n)
        now = time.perf_counter()
        if now - self.last_postfix >= 0.5:
            self.last_postfix = now
            r = self.report
            postfix = {"retries": r.retries, "bad": r.bad_candidates, "failed": r.failed}
            if r.tokens:
                postfix = {"tok/s": f"{r.tokens / max(now - self.start, 1e-9):.0f}", **postfix}
            self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        self.bar.close()
