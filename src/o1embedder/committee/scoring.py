"""Batched scoring of candidate thoughts and the per-row decision (the maths is in :mod:`.rules`).

:func:`score_rows` scores many rows at once: one :class:`~.members.Task` per row (the bare query and
every candidate as probes; the row's documents), one batched call per member, then the scoring rule,
the vote, the baseline rule and the policy per row. The result of a row does not depend on which
other rows share its batch (extra negatives are chosen from the whole input by :func:`extra_negatives`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..formats import TrainingRow
from . import rules
from .members import Member, Task


@dataclass
class CommitteeConfig:
    """How the committee scores, votes and decides (see :mod:`o1embedder.committee.rules`)."""

    scoring: str = "retrieval"
    """``retrieval`` (rank of the positive among negatives) or ``similarity`` (the reference rule)."""
    voting: str = "soft"
    """``soft``, ``hard`` (majority) or ``borda``."""
    temperature: float | None = None
    """Soft-voting temperature; ``None``: 0.1 for ``retrieval``, 1 for ``similarity`` (reference)."""
    margin: float = 0.0
    """How much the winner must beat the bare query by, in vote share (``V2(w) - V2(b) > margin``)."""
    policy: str = "empty"
    """When no candidate beats the query: ``keep-best``, ``empty`` (thought "") or ``drop``."""
    query_mode: str | None = None
    """``append`` (query + " " + candidate) or ``alone``; ``None``: append for retrieval, alone for similarity."""
    margin_weight: float = 0.25
    """``alpha`` of the retrieval rule: weight of the relative margin next to the reciprocal rank."""
    other_positives: int = 0
    """``retrieval``: also use the first positives of this many other rows as negatives."""
    rows_per_batch: int = 256
    """Rows scored together (one encoder call per member and batch)."""
    batch_size: int = 32
    """Encoder batch size (texts per forward)."""
    progress: bool = True

    def validate(self) -> CommitteeConfig:
        _choice("scoring", self.scoring, rules.SCORING_RULES)
        _choice("voting", self.voting, rules.VOTING_RULES)
        _choice("policy", self.policy, rules.POLICIES)
        if self.query_mode is not None:
            _choice("query mode", self.query_mode, rules.QUERY_MODES)
        if self.temperature is not None and not self.temperature > 0:
            raise InputError(f"temperature must be > 0, got {self.temperature}")
        if not 0 <= self.margin < 1:
            raise InputError(f"margin must be in [0, 1), got {self.margin}")
        if self.margin_weight < 0 or self.other_positives < 0:
            raise InputError("margin weight and other positives must be >= 0")
        if self.rows_per_batch < 1 or self.batch_size < 1:
            raise InputError("rows per batch and batch size must be >= 1")
        return self

    @property
    def mode(self) -> str:
        return self.query_mode or ("append" if self.scoring == "retrieval" else "alone")

    @property
    def temp(self) -> float:
        return self.temperature or (0.1 if self.scoring == "retrieval" else 1.0)

    def settings(self, members: Sequence[Member]) -> dict[str, Any]:
        """What decides the output (recorded in every row; a resumed run must match it)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("rows_per_batch", "batch_size", "progress")}
        out.update(temperature=self.temp, query_mode=self.mode,
                   members=[{"name": m.name, "weight": m.weight} for m in members])
        return out


def _choice(what: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise InputError(f"unknown {what} {value!r} (expected one of: {', '.join(allowed)})")


@dataclass
class RowResult:
    """The committee's decision for one row."""

    row: TrainingRow
    chosen: int
    outcome: str                      # "thought" | "keep-best" | "empty" | "dropped"
    agreement: float
    votes: list[float]
    vs_query: float
    members: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def thought(self) -> str:
        return "" if self.outcome in ("empty", "dropped") else (self.row.candidates or [""])[self.chosen]

    def to_dict(self, settings: dict[str, Any] | None = None) -> dict[str, Any]:
        out = self.row.to_dict()
        out["thought"] = self.thought
        out["agreement"] = round(self.agreement, 6)
        out["committee"] = {"chosen": self.chosen, "outcome": self.outcome,
                            "beats_query": self.outcome == "thought", "vs_query": round(self.vs_query, 6),
                            "votes": [round(v, 6) for v in self.votes], "members": self.members}
        if settings is not None:
            out["refinement"] = settings
        return out


def check_row(row: TrainingRow, config: CommitteeConfig, *, path: object = None, line: int | None = None) -> None:
    """A row the committee can judge: candidates (>= 1, non-empty strings), positives, negatives."""
    where = {"path": path, "line": line}
    if row.candidates is None:
        raise InputError("missing (expected the candidate thoughts written by o1emb synthesize)",
                         field="candidates", **where)
    if not row.candidates:
        raise InputError("empty list (at least one candidate thought is needed)", field="candidates", **where)
    for i, text in enumerate(row.candidates):
        if not text.strip():
            raise InputError(f"candidate {i} is empty", field="candidates", **where)
    if not row.pos:
        raise InputError("no positive passage", field="pos", **where)
    if config.scoring == "retrieval" and not row.neg and config.other_positives == 0:
        raise InputError("no negatives: retrieval scoring ranks the positive among the row's negatives "
                         "(mine some with o1emb mine, use --other-positives N, or --scoring similarity)",
                         field="neg", **where)


def extra_negatives(rows: Sequence[TrainingRow], n: int) -> list[list[str]]:
    """For row i: the first positives of the next rows (cyclic, input order) that are not i's positives."""
    if n == 0:
        return [[] for _ in rows]
    out = []
    for i, row in enumerate(rows):
        own, found = set(row.pos), []
        for j in range(1, len(rows)):
            text = rows[(i + j) % len(rows)].pos[0]
            if text not in own and text not in found:
                found.append(text)
                if len(found) == n:
                    break
        out.append(found)
    return out


def make_task(row: TrainingRow, extra: Sequence[str], config: CommitteeConfig) -> Task:
    """Probes: the bare query, then each candidate; docs: positives, negatives, extra negatives."""
    thoughts: list[str | None] = [None, *(row.candidates or [])]
    if config.scoring == "similarity":
        return Task(row.query, thoughts, [row.pos[0]], 1)
    pos = list(dict.fromkeys(row.pos))
    own = set(pos)
    negs = [d for d in dict.fromkeys([*row.neg, *extra]) if d not in own]
    if not negs:
        raise InputError(f"row {row.id!r}: every negative is also a positive", field="neg")
    return Task(row.query, thoughts, pos + negs, len(pos))


def _member_qualities(member: Member, tasks: list[Task], config: CommitteeConfig) -> list[tuple[np.ndarray, Any]]:
    """Per task: qualities ``[1 + K]`` (baseline first) and positive ranks (``None`` for similarity)."""
    if config.scoring == "similarity":
        return [(np.asarray(s, dtype=np.float64), None) for s in member.similarity(tasks, config.mode)]
    return [rules.retrieval_quality(s, t.n_pos, config.margin_weight)
            for s, t in zip(member.score(tasks, config.mode), tasks, strict=True)]


def score_rows(rows: Sequence[TrainingRow], members: Sequence[Member], config: CommitteeConfig,
               extras: Sequence[Sequence[str]] | None = None) -> list[RowResult]:
    """Decide every row of one batch (all rows' probes go through each member together)."""
    if not members:
        raise InputError("the committee has no members")
    extras = extras if extras is not None else [[] for _ in rows]
    tasks = [make_task(r, e, config) for r, e in zip(rows, extras, strict=True)]
    per_member = [_member_qualities(m, tasks, config) for m in members]
    weights = np.array([m.weight for m in members], dtype=np.float64)
    return [decide(row, members, [pm[i] for pm in per_member], weights, config) for i, row in enumerate(rows)]


def decide(row: TrainingRow, members: Sequence[Member], judged: list[tuple[np.ndarray, Any]],
           weights: np.ndarray, config: CommitteeConfig) -> RowResult:
    """Vote over the candidates, then the baseline rule and the policy (see :mod:`.rules`)."""
    q_all = np.stack([q for q, _ in judged])                     # [M, 1 + K]
    q_base, q = q_all[:, 0], q_all[:, 1:]                        # [M], [M, K]
    votes = rules.vote(q, weights, config.voting, config.temp)   # [K]
    chosen = rules.winner(votes)
    vs_query = rules.versus_query(q, q_base, chosen, weights, config.voting, config.temp)
    if vs_query > config.margin:
        outcome = "thought"
    else:
        outcome = {"keep-best": "keep-best", "empty": "empty", "drop": "dropped"}[config.policy]
    details: dict[str, dict[str, Any]] = {}
    for m, (qm, pos_rank) in zip(members, judged, strict=True):
        d: dict[str, Any] = {"scores": [round(float(x), 6) for x in qm[1:]], "ranks": rules.ranks(qm[1:]),
                             "baseline": round(float(qm[0]), 6)}
        if pos_rank is not None:
            d["positive_rank"] = [int(r) for r in pos_rank[1:]]
            d["baseline_positive_rank"] = int(pos_rank[0])
        details[m.name] = d
    return RowResult(row, chosen, outcome, rules.agreement(q, chosen), [float(v) for v in votes], vs_query, details)
