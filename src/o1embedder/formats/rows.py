"""Training rows: FlagEmbedding-style JSONL plus ``id``, ``thought`` and ``candidates``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from .io import iter_jsonl


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
