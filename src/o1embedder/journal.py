"""Append-only JSONL journals that survive ``kill -9``: recovery of a torn tail, fsync'd appends.

The output of a synthesis or refinement run is the only record of which rows are done, so it must
never hold a half line or a row twice. Writes go through one ``os.write`` loop on an ``O_APPEND`` descriptor
and are followed by ``fsync`` once per batch; every line ends with ``\\n``. A process killed in the
middle of a write can therefore leave only a *last* line without its ``\\n``: :func:`recover_jsonl`
cuts that torn tail off before a run resumes (the rows it held were not counted as done, so they
are generated again, once). A complete line that is not a JSON object with an ``id`` is not
something a kill can produce and is reported as an :class:`InputError` instead of being skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from .errors import InputError
from .log import get_logger

logger = get_logger(__name__)

_CHUNK = 1 << 16


def _truncate_torn_tail(path: Path) -> int:
    """Cut everything after the last ``\\n``; return how many bytes were removed."""
    with open(path, "r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        end = size
        while end > 0:
            start = max(0, end - _CHUNK)
            handle.seek(start)
            chunk = handle.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            end = start
        else:
            keep = 0
        if keep < size:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
        return size - keep


def recover_jsonl(path: str | os.PathLike[str], settings_key: str = "synthesis"
                  ) -> tuple[dict[str, int], dict[str, Any] | None]:
    """Make ``path`` end on a complete line and read it: ``({id: line}, first row's settings_key value)``.

    A missing file is an empty result. Duplicate ids or corrupt complete lines raise ``InputError``.
    """
    path = Path(path)
    if not path.exists():
        return {}, None
    removed = _truncate_torn_tail(path)
    if removed:
        logger.warning("%s: removed a torn last line (%d bytes) left by an interrupted run", path, removed)
    ids: dict[str, int] = {}
    settings: dict[str, Any] | None = None
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                raise InputError("corrupt line (not JSON) in an existing output; it was not written by "
                                 "an interrupted run: move the file away", path=path, line=line_no) from None
            if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
                raise InputError("existing output row without a string 'id'", path=path, line=line_no)
            if obj["id"] in ids:
                raise InputError(f"id {obj['id']!r} appears twice in an existing output "
                                 f"(first on line {ids[obj['id']]})", path=path, line=line_no)
            ids[obj["id"]] = line_no
            if settings is None and isinstance(obj.get(settings_key), dict):
                settings = obj[settings_key]
    return ids, settings


class JsonlAppender:
    """Append lines to a file, ``fsync`` once per :meth:`append` call; the file is created on first use."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self.lines = 0

    def append(self, objects: list[dict[str, Any]]) -> None:
        """Write ``objects`` as JSON lines (one write loop), then flush them to disk."""
        if self.write(objects):
            self.sync()

    def write(self, objects: list[dict[str, Any]]) -> bool:
        """Write ``objects`` as JSON lines (one write loop, no fsync); return whether anything was written.

        Split from :meth:`sync` so an event loop can write (microseconds, into the page cache) and leave
        only the ``fsync`` - which releases the GIL - to a thread.
        """
        if not objects:
            return False
        data = "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects).encode("utf-8")
        if self._fd is None:
            created = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if created:
                _fsync_dir(self.path.parent)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.lines += len(objects)
        return True

    def sync(self) -> None:
        """``fsync`` what was written (a no-op before the first write)."""
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def append_jsonl(path: str | os.PathLike[str], objects: list[dict[str, Any]]) -> None:
    """Append ``objects`` to ``path`` and ``fsync`` them (a no-op for an empty list)."""
    if not objects:
        return
    appender = JsonlAppender(path)
    try:
        appender.append(objects)
    finally:
        appender.close()


def _fsync_dir(directory: Path) -> None:
    """Make a new file's directory entry durable (a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
