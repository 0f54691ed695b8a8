"""A cache of generated thoughts, so a second evaluation or search does not think again.

Thoughts are stored per (model fingerprint, generation settings, query text): one JSONL file per
(fingerprint, settings) pair, one line per query with the thought texts **and their token ids**.
Any change of model or settings selects another file, so stale thoughts are never used. The
settings must hold everything that changes the thoughts besides the fingerprint: the sampling
settings (every :class:`~o1embedder.model.ThinkConfig` field), the template, and the numerics the
fingerprint ignores (:func:`model_numerics`: dtype, device type, decode path).

Why the ids: a query vector rebuilt from the cached ids is the one-pass vector (to float
tolerance), whereas re-tokenising the decoded text can give slightly different ids (BPE merges,
stripped spaces), hence a slightly different vector. Texts are kept for people and for other tools.

Files are append-only: each batch is one ``write`` followed by ``fsync``; a line cut short by a
crash is skipped (with a warning) on the next read. Sampling with ``seed=None`` is never cached.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..log import get_logger

logger = get_logger(__name__)
CACHE_FORMAT = 1

Entry = tuple[list[str], list[list[int]]]
"""Thought texts [n] and their token ids [n][len]."""


def default_cache_dir() -> Path:
    """``$O1EMB_CACHE/thoughts``, else ``~/.cache/o1embedder/thoughts``."""
    root = os.environ.get("O1EMB_CACHE") or Path.home() / ".cache" / "o1embedder"
    return Path(root) / "thoughts"


def model_numerics(model: Any) -> dict[str, str]:
    """What changes a model's thoughts besides its fingerprint (weights, config, template, tokenizer)
    and the sampling settings: the dtype it runs in (bf16 rounds the logits differently from float32,
    so a sampled token can flip), the device type (other kernels) and the decode path
    (``model.decode``; ``fast`` sums in another order). The fingerprint deliberately ignores all three
    (an index built in bf16 is searched in float32), so a cache key needs them besides it: callers add
    this to the settings they pass to :class:`ThoughtCache`."""
    device = getattr(model, "device", "cpu")
    engine = getattr(model, "engine", None)          # another engine writes other thoughts (keyed only when set)
    decode = str(getattr(model, "decode", "auto"))
    if decode in ("fast", "compiled"):   # one row: fused float16 weight copies (since 2026-12-07): other sums
        decode += "+f16-fused"
    return {"dtype": str(getattr(model, "dtype", "")).removeprefix("torch."),
            "device": str(getattr(device, "type", device)), "decode": decode,
            **({"engine": engine.identity} if engine is not None else {})}


def settings_key(settings: dict[str, Any]) -> str:
    payload = json.dumps({"format": CACHE_FORMAT, **settings}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class ThoughtCache:
    """The thoughts of one model under one set of generation settings (one file)."""

    def __init__(self, directory: str | os.PathLike[str], fingerprint: str, settings: dict[str, Any]) -> None:
        self.path = Path(directory) / f"{fingerprint}-{settings_key(settings)}.jsonl"
        self.fingerprint, self.settings = fingerprint, dict(settings)
        self._entries: dict[str, Entry] | None = None

    def _load(self) -> dict[str, Entry]:
        if self._entries is not None:
            return self._entries
        entries: dict[str, Entry] = {}
        broken = 0
        if self.path.is_file():
            with open(self.path, encoding="utf-8") as handle:
                for line in handle:
                    try:
                        obj = json.loads(line)
                        if "query" in obj:
                            entries[obj["query"]] = (list(obj["thoughts"]), [list(t) for t in obj["ids"]])
                    except (json.JSONDecodeError, KeyError, TypeError):
                        broken += 1
        if broken:
            logger.warning("%s: skipped %d unreadable lines (an interrupted write?)", self.path, broken)
        self._entries = entries
        return entries

    def __len__(self) -> int:
        return len(self._load())

    def get(self, query: str) -> Entry | None:
        return self._load().get(query)

    def put(self, items: list[tuple[str, list[str], list[list[int]]]]) -> None:
        """Append ``(query, texts, ids)`` entries (one write per call, then fsync)."""
        if not items:
            return
        entries = self._load()
        lines = []
        if not self.path.exists():
            lines.append(json.dumps({"fingerprint": self.fingerprint, "settings": self.settings,
                                     "format": CACHE_FORMAT}))
        for query, texts, ids in items:
            entries[query] = (texts, ids)
            lines.append(json.dumps({"query": query, "thoughts": texts, "ids": ids}, ensure_ascii=False))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as handle:
            cut = False
            if handle.seek(0, os.SEEK_END) > 0:
                handle.seek(-1, os.SEEK_END)
                cut = handle.read(1) != b"\n"       # the last write was cut short by a crash
            handle.write((("\n" if cut else "") + "\n".join(lines) + "\n").encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
