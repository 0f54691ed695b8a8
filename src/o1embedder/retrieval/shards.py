"""Corpus embeddings in shards: resumable, splittable across processes, memory-mapped on load.

The corpus (in file order) is cut into chunks of ``shard_size`` docs; chunk ``j`` is written as
``embeddings/shard-{j:05d}.npy`` (atomically: a killed encode leaves only whole shards). A resumed
encode skips the shards already there, so it yields the same vectors as an uninterrupted one.
Worker ``i`` of ``n`` (``--shard i/n``, or ``RANK``/``WORLD_SIZE`` under ``torchrun``) encodes the
chunks with ``j % n == i``; the files of all workers go into one folder (copy them together when the
workers ran on separate machines) and one final call builds the index from them.
``embeddings/state.json`` records what the shards belong to (encoder fingerprint, corpus
fingerprint, shard size), and shards of another model or corpus are refused, never mixed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexMismatchError, InputError
from ..formats import atomic_write, write_json
from ..log import get_logger, progress_enabled
from .base import Doc, Encoder

logger = get_logger(__name__)
STATE_FILE = "state.json"
PIECE = 1024


@dataclass(frozen=True)
class ShardSpec:
    """Worker ``index`` of ``count`` (0-based)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        """``"i/n"`` with ``0 <= i < n``."""
        try:
            i, n = (int(part) for part in text.split("/"))
        except ValueError:
            raise InputError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
        if n < 1 or not 0 <= i < n:
            raise InputError(f"--shard {text}: need 0 <= i < n")
        return cls(i, n)

    @classmethod
    def from_env(cls) -> ShardSpec:
        """``RANK``/``WORLD_SIZE`` as set by ``torchrun``; ``0/1`` outside it."""
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        return cls(int(os.environ.get("RANK", "0") or 0), world) if world > 1 else cls()

    def owns(self, chunk: int) -> bool:
        return chunk % self.count == self.index


def shard_path(directory: Path, chunk: int) -> Path:
    return directory / f"shard-{chunk:05d}.npy"


def num_chunks(count: int, shard_size: int) -> int:
    return (count + shard_size - 1) // shard_size


def check_state(directory: Path, state: dict[str, Any]) -> None:
    """Record ``state`` for a fresh folder, or refuse one whose shards belong to something else."""
    path = directory / STATE_FILE
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        changed = [k for k in ("encoder_fingerprint", "corpus_fingerprint", "shard_size", "count", "dim",
                               "encoder_settings") if old.get(k) != state.get(k)]
        if changed:
            what = "model" if "encoder_fingerprint" in changed else "corpus" if {
                "corpus_fingerprint", "count"} & set(changed) else "settings"
            raise IndexMismatchError(
                f"{directory} holds embeddings of another {what} ({', '.join(changed)} differ); "
                "use a new --out folder or delete this one")
        return
    write_json(path, state)


def missing_chunks(directory: Path, count: int, shard_size: int, dim: int) -> list[int]:
    """Chunks whose shard file is absent (or has the wrong shape)."""
    missing = []
    for j in range(num_chunks(count, shard_size)):
        path = shard_path(directory, j)
        rows = min(shard_size, count - j * shard_size)
        if not path.is_file() or np.load(path, mmap_mode="r").shape != (rows, dim):
            missing.append(j)
    return missing


def encode_shards(encoder: Encoder, docs: Sequence[Doc], directory: Path, *, shard_size: int,
                  shard: ShardSpec = ShardSpec(), batch_size: int = 32,
                  show_progress: bool | None = None) -> int:
    """Encode this worker's missing chunks into ``directory``; return how many docs were encoded."""
    from tqdm.auto import tqdm

    todo = [j for j in missing_chunks(directory, len(docs), shard_size, encoder.dim) if shard.owns(j)]
    total = sum(min(shard_size, len(docs) - j * shard_size) for j in todo)
    if not todo:
        return 0
    logger.info("encoding %d docs in %d shards (worker %d/%d)", total, len(todo), shard.index, shard.count)
    show = show_progress if show_progress is not None else total >= 100
    with tqdm(total=total, desc="encode corpus", unit="doc", disable=not progress_enabled(show)) as bar:
        for j in todo:
            chunk = docs[j * shard_size:(j + 1) * shard_size]
            parts = []
            # Pieces of PIECE docs keep the bar moving (with a rate) inside a large shard; the
            # encoder still sorts each piece by length, so padding stays small.
            for start in range(0, len(chunk), PIECE):
                piece = chunk[start:start + PIECE]
                parts.append(encoder.encode_documents(piece, batch_size=batch_size, show_progress=False))
                bar.update(len(piece))
            vecs = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
            with atomic_write(shard_path(directory, j), "wb") as handle:
                np.save(handle, vecs)
    return total


def wait_for_shards(directory: Path, count: int, shard_size: int, dim: int, timeout_s: float) -> None:
    """Block until every shard exists (other workers still encoding), or raise after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while missing := missing_chunks(directory, count, shard_size, dim):
        if time.monotonic() > deadline:
            raise InputError(f"{len(missing)} shards still missing after {timeout_s:.0f}s "
                             f"(first: {shard_path(directory, missing[0]).name}); run the other workers "
                             "(--shard i/n) and copy their shards here", path=directory)
        time.sleep(min(5.0, max(0.1, timeout_s / 100)))


def load_shards(directory: Path, count: int, shard_size: int) -> list[np.ndarray]:
    """The shards, memory-mapped read-only, in corpus order."""
    return [np.load(shard_path(directory, j), mmap_mode="r") for j in range(num_chunks(count, shard_size))]
