"""Logging set-up: one ``o1embedder`` logger tree, rank-aware so that only rank 0 talks by default."""

from __future__ import annotations

import logging
import os

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def get_logger(name: str) -> logging.Logger:
    """Return the logger for a module (``o1embedder.<module>``)."""
    if not name.startswith("o1embedder"):
        name = f"o1embedder.{name}"
    return logging.getLogger(name)


def _env_rank() -> int:
    # Read the launcher's variables directly: ``log`` must not import ``distributed``.
    for key in ("RANK", "LOCAL_RANK"):
        value = os.environ.get(key)
        if value is not None and value.isdigit():
            return int(value)
    return 0


def progress_enabled(show: bool) -> bool:
    """``show``, except on ranks other than 0 of a launched job: one job shows one progress bar."""
    return bool(show) and _env_rank() == 0


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record (not the one at set-up).

    The command line can run in-process many times (tests, notebooks) while ``sys.stderr`` is swapped
    underneath; a plain ``StreamHandler`` would keep writing to a closed capture stream.
    """

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        import sys

        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property ignores it
        pass


def setup_logging(level: int | str = logging.INFO, *, all_ranks: bool = False) -> None:
    """Configure the ``o1embedder`` logger: INFO on rank 0, WARNING on other ranks unless ``all_ranks``."""
    root = logging.getLogger("o1embedder")
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
    rank = _env_rank()
    if rank != 0 and not all_ranks:
        level = max(int(level), logging.WARNING)
        # the Hugging Face libraries' own bars (loading weights, writing shards): rank 0's only
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    root.setLevel(level)
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        prefix = f"[rank {rank}] " if rank else ""
        handler.setFormatter(logging.Formatter(prefix + _FORMAT, datefmt="%H:%M:%S"))
        root.addHandler(handler)
    # Records still propagate: an application's (or pytest's) root handlers see them too. The root
    # logger of a plain CLI process has no handlers, so nothing is printed twice there.
