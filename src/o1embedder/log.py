"""Logging set-up: one ``o1embedder`` logger tree, rank-aware so that only rank 0 talks by default."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def get_logger(name: str) -> logging.Logger:
    """Return the logger for a module (``o1embedder.<module>``)."""
    if not name.startswith("o1embedder"):
        name = f"o1embedder.{name}"
    return logging.getLogger(name)


@contextlib.contextmanager
def quiet(name: str, level: int = logging.ERROR) -> Iterator[None]:
    """Set logger ``name`` to ``level`` inside the block, then put its own level back.

    For a scoped silence around calls of a noisy library (``with quiet("transformers"): ...``): a
    library must never set a global logger level for good. A Hugging Face library (``transformers``,
    ``huggingface_hub``, ...) sets its logger's level to its default verbosity when it first uses it;
    where the library is already imported that set-up is done first here, so it cannot undo the
    block's level. Nothing is imported here. A level that code inside the block sets (such a set-up
    included) is left as it is at the end.
    """
    hf_logging = sys.modules.get(f"{name}.utils.logging")
    if hf_logging is not None and hasattr(hf_logging, "get_verbosity"):
        hf_logging.get_verbosity()       # sets the library's logger up (once), so it stays as set here
    logger = logging.getLogger(name)
    saved = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        if logger.level == level:
            logger.setLevel(saved)


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
