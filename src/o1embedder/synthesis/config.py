"""A synthesis run's settings and report, and the names and seeds it derives from them."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

# Settings that change what a row's candidates look like: a resumed run must use the same ones.
_CONTENT_SETTINGS = ("backend", "model", "temperature", "top_p", "max_tokens", "min_tokens", "seed", "k",
                     "shots", "shot_seed", "prompt_sha256")


@dataclass
class SynthesisConfig:
    """Settings of a run besides the backend's own (:class:`BackendOptions`)."""

    k: int = 3                      # candidates per row
    shots: int = 3                  # few-shot examples per prompt
    shot_seed: int = 0              # seed of the few-shot draw
    seed: int | None = None         # base sampling seed (None: not sent)
    candidate_retries: int = 3      # bad candidates (quality.candidate_problem) tolerated per row
    separate_requests: bool = False  # k requests with n=1 instead of one with n=k
    failures_path: str | os.PathLike[str] | None = None  # default: <out>.failures.jsonl
    progress: bool = True

    def validate(self) -> None:
        if self.k < 1:
            raise InputError(f"k must be >= 1, got {self.k}")
        if self.shots < 0:
            raise InputError(f"shots must be >= 0, got {self.shots}")
        if self.candidate_retries < 0:
            raise InputError(f"candidate retries must be >= 0, got {self.candidate_retries}")


@dataclass
class SynthesisReport:
    """What a run did. ``failed > 0`` means the failures file lists rows that need another run."""

    input_rows: int = 0
    already_done: int = 0
    written: int = 0
    failed: int = 0
    retries: int = 0                # transport retries (429, 5xx, timeouts, ...)
    bad_candidates: int = 0         # bad completions (empty, refusal, lead-in, restatement) asked again
    bad_reasons: dict[str, int] = field(default_factory=dict)  # bad_candidates per reason
    tokens: int = 0                 # completion tokens, where the backend reports them
    seconds: float = 0.0
    out: str = ""
    failures: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def default_failures_path(out: str | os.PathLike[str]) -> Path:
    """``candidates.jsonl`` -> ``candidates.failures.jsonl``."""
    out = Path(out)
    stem = out.name[:-len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(stem + ".failures.jsonl")


def request_seed(seed: int | None, row_id: str, attempt: int) -> int | None:
    """The seed of one request: a stable function of the base seed, the row and the attempt."""
    if seed is None:
        return None
    digest = hashlib.sha256(f"{seed}:{row_id}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
