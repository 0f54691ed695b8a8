"""A minimal exactly-once JSONL store for refinement outputs (keyed by row id, resumable).

The same pattern as ``synthesis/store.py`` (which the import table does not let ``committee`` use):
appends go through ``O_APPEND`` writes with an ``fsync`` per batch, every line ends with ``\\n``, so a
killed run can leave at most a torn *last* line; :func:`recover` cuts it off and returns the ids
already written, which a resumed run skips.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..log import get_logger

logger = get_logger(__name__)


def recover(path: str | os.PathLike[str], settings_key: str) -> tuple[set[str], dict[str, Any] | None]:
    """Cut a torn last line off ``path`` and read it: ``(ids, the first row's settings_key value)``."""
    path = Path(path)
    if not path.exists():
        return set(), None
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep < len(data):
        with open(path, "r+b") as handle:
            handle.truncate(keep)
            os.fsync(handle.fileno())
        logger.warning("%s: removed a torn last line (%d bytes) left by an interrupted run", path, len(data) - keep)
    ids: set[str] = set()
    settings = None
    for line_no, raw in enumerate(data[:keep].splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            raise InputError("corrupt line in an existing output (not written by an interrupted run): "
                             "move the file away", path=path, line=line_no) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or obj["id"] in ids:
            raise InputError("existing output row without a string 'id', or with a repeated one",
                             path=path, line=line_no)
        ids.add(obj["id"])
        if settings is None and isinstance(obj.get(settings_key), dict):
            settings = obj[settings_key]
    return ids, settings


def append(path: str | os.PathLike[str], objects: list[dict[str, Any]]) -> None:
    """Append ``objects`` as JSON lines in one write loop, then ``fsync`` (no-op for an empty list)."""
    if not objects:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = memoryview("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects).encode("utf-8"))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)
