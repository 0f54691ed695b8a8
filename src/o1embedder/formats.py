"""Typed records and their readers/writers (stdlib only).

Every reader reports problems as :class:`~o1embedder.errors.InputError` naming the file, the line
and the field, so ``o1emb`` can print one clear line and exit 2. Every writer writes to a temporary
name in the same folder and renames it into place, so a crash never leaves a half-written output.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .errors import InputError

SPECIAL_TOKENS = ("<query>", "</query>", "<thought>", "<emb>")
"""The four token strings O1 Embedder adds to a tokenizer (same strings as the authors' checkpoint)."""


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------

def open_text(path: str | os.PathLike[str], mode: str = "r") -> IO[str]:
    """Open a text file, transparently gunzipping ``*.gz``; a missing file is an :class:`InputError`."""
    path = Path(path)
    if "r" in mode and not path.is_file():
        raise InputError("file not found" if not path.exists() else "not a file", path=path)
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, mode.replace("t", "") + "b"), encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; each line must be a JSON object."""
    with open_text(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"invalid JSON ({exc.msg} at column {exc.colno})", path=path,
                                 line=line_no) from None
            if not isinstance(obj, dict):
                raise InputError(f"expected a JSON object, got {type(obj).__name__}", path=path,
                                 line=line_no)
            yield line_no, obj


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Write ``path`` through a temporary file in the same folder, renamed into place on success.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        kwargs = {} if "b" in mode else {"encoding": "utf-8"}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write one JSON document atomically (pretty-printed, UTF-8)."""
    with atomic_write(path) as handle:
        json.dump(obj, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSON lines atomically; return how many were written."""
    count = 0
    with atomic_write(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


# ---------------------------------------------------------------------------------------------
# Training rows: FlagEmbedding-style JSONL plus ``id``, ``thought`` and ``candidates``
# ---------------------------------------------------------------------------------------------

@dataclass
class TrainingRow:
    """One training example: a query, its positives, its hard negatives, and optionally a thought.

    ``pos_scores``/``neg_scores`` are teacher scores for distillation; ``candidates`` are the expert's
    candidate thoughts before refinement; ``extra`` keeps any other fields so rows round-trip.
    """

    query: str
    pos: list[str]
    neg: list[str] = field(default_factory=list)
    id: str | None = None
    thought: str | None = None
    candidates: list[str] | None = None
    pos_scores: list[float] | None = None
    neg_scores: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        out["query"] = self.query
        out["pos"] = list(self.pos)
        out["neg"] = list(self.neg)
        for name in ("pos_scores", "neg_scores", "thought", "candidates"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update(self.extra)
        return out


_ROW_FIELDS = {"id", "query", "pos", "neg", "pos_scores", "neg_scores", "thought", "candidates"}


def _str_list(obj: dict[str, Any], name: str, where: dict[str, Any], *, required: bool) -> list[str] | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise InputError("missing (expected a list of strings)", field=name, **where)
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"expected a list of strings, got {type(value).__name__}", field=name, **where)
    return value


def _score_list(obj: dict[str, Any], name: str, expected: int, where: dict[str, Any]) -> list[float] | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              for v in value):
        raise InputError("expected a list of numbers", field=name, **where)
    if len(value) != expected:
        raise InputError(f"has {len(value)} scores for {expected} passages", field=name, **where)
    return [float(v) for v in value]


def parse_training_row(obj: dict[str, Any], *, path: object = None, line: int | None = None,
                       require_pos: bool = True) -> TrainingRow:
    """Validate one JSON object as a :class:`TrainingRow`; errors name ``path:line`` and the field."""
    where = {"path": path, "line": line}
    query = obj.get("query")
    if not isinstance(query, str):
        reason = "missing" if query is None else f"expected a string, got {type(query).__name__}"
        raise InputError(reason, field="query", **where)
    if not query.strip():
        raise InputError("empty query", field="query", **where)
    pos = _str_list(obj, "pos", where, required=require_pos) or []
    if require_pos and not pos:
        raise InputError("no positive passage", field="pos", **where)
    neg = _str_list(obj, "neg", where, required=False) or []
    row_id = obj.get("id")
    if row_id is not None and not isinstance(row_id, (str, int)):
        raise InputError("expected a string or an integer", field="id", **where)
    thought = obj.get("thought")
    if thought is not None and not isinstance(thought, str):
        raise InputError(f"expected a string, got {type(thought).__name__}", field="thought", **where)
    candidates = obj.get("candidates")
    if candidates is not None and (not isinstance(candidates, list)
                                   or not all(isinstance(c, str) for c in candidates)):
        raise InputError("expected a list of strings", field="candidates", **where)
    return TrainingRow(
        query=query, pos=pos, neg=neg, id=None if row_id is None else str(row_id), thought=thought,
        candidates=candidates,
        pos_scores=_score_list(obj, "pos_scores", len(pos), where),
        neg_scores=_score_list(obj, "neg_scores", len(neg), where),
        extra={k: v for k, v in obj.items() if k not in _ROW_FIELDS},
    )


def read_training_rows(path: str | os.PathLike[str], *, require_pos: bool = True,
                       assign_ids: bool = True) -> list[TrainingRow]:
    """Read a training-row JSONL file. Rows without ``id`` get a stable one (``row-<line>``).

    Duplicate ids are an error. An empty file is an error.
    """
    rows: list[TrainingRow] = []
    seen: dict[str, int] = {}
    for line_no, obj in iter_jsonl(path):
        row = parse_training_row(obj, path=path, line=line_no, require_pos=require_pos)
        if row.id is None and assign_ids:
            row.id = f"row-{line_no}"
        if row.id is not None:
            if row.id in seen:
                raise InputError(f"duplicate id {row.id!r} (first on line {seen[row.id]})", path=path,
                                 line=line_no, field="id")
            seen[row.id] = line_no
        rows.append(row)
    if not rows:
        raise InputError("no rows (empty file)", path=path)
    return rows
