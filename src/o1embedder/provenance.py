"""Provenance records: what made a cached output, so it is reused only when it would be made the same way.

A record is a small JSON sidecar beside its output (``OUTPUT.provenance.json``, for a file or a
folder alike) holding the *settings* the output depends on and the *fingerprints of its inputs* (an
upstream record's fingerprint, a file's sha256, a model's fingerprint). Its fingerprint, the hash of
``stage``, ``settings`` and ``inputs``, is what a downstream record lists as its input, so a change
anywhere upstream changes every record below it, and nothing else.

A record is written twice: ``complete: false`` before the work starts (so a run killed midway knows
its partial state - journals, checkpoints, shards - was made with these settings and may resume it),
and ``complete: true`` after the output is in place. A reader that finds another fingerprint, or no
record at all, must discard the output and its partial state rather than resume them.

Any module may use it (it needs only ``formats``, for atomic writes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .formats import atomic_write

SUFFIX = ".provenance.json"
FORMAT = 1


def digest(obj: Any) -> str:
    """A short sha256 of ``obj`` as canonical JSON (sorted keys; tuples as lists)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, or of a folder's files (relative names and contents, sorted)."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for item in files:
        if item != path:
            h.update(item.relative_to(path).as_posix().encode() + b"\0")
        with open(item, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def record_path(output: str | os.PathLike[str]) -> Path:
    """``OUTPUT.provenance.json`` beside ``output`` (a file or a folder)."""
    output = Path(output)
    return output.with_name(output.name + SUFFIX)


@dataclass
class Record:
    """What an output depends on. ``lineage`` (every setting upstream, merged) is carried along for
    people and reports; it is implied by ``inputs`` and so not part of the fingerprint."""

    stage: str
    settings: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return digest({"stage": self.stage, "settings": self.settings, "inputs": self.inputs})

    def to_dict(self, *, complete: bool, outputs: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"format": FORMAT, "stage": self.stage, "fingerprint": self.fingerprint, "complete": complete,
                "settings": self.settings, "inputs": self.inputs, "lineage": self.lineage,
                "outputs": outputs or {}}


def read(output: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The record beside ``output``, or ``None`` (absent or unreadable: treated as no record)."""
    path = record_path(output)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write(output: str | os.PathLike[str], record: Record, *, complete: bool,
          outputs: dict[str, Any] | None = None) -> None:
    """Write the record beside ``output`` atomically (temporary file, then rename)."""
    with atomic_write(record_path(output)) as handle:
        json.dump(record.to_dict(complete=complete, outputs=outputs), handle, indent=2, ensure_ascii=False,
                  default=str)
        handle.write("\n")


def remove(*paths: str | os.PathLike[str]) -> None:
    """Delete files or folders (missing ones are fine)."""
    for item in map(Path, paths):
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item)
        else:
            with contextlib.suppress(FileNotFoundError):
                item.unlink()


def differences(old: dict[str, Any] | None, new: Record) -> list[str]:
    """Which settings or inputs differ between a stored record and ``new`` (for log lines)."""
    if old is None:
        return ["no record"]
    out = [f"stage {old.get('stage')!r} -> {new.stage!r}"] if old.get("stage") != new.stage else []
    for part in ("settings", "inputs"):
        before, after = old.get(part) or {}, getattr(new, part)
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                out.append(f"{key}: {before.get(key)!r} -> {after.get(key)!r}")
    return out
