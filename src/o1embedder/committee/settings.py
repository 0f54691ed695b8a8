"""``RefineSettings``: the settings of ``o1emb refine`` (:mod:`o1embedder.options`: ``--config FILE``, a
flag per setting, ``--set KEY=VALUE``, ``--print-config``); :meth:`RefineSettings.committee_config` makes
the library's :class:`~o1embedder.committee.scoring.CommitteeConfig`. The choices are those of
:mod:`o1embedder.committee.rules` (tests/test_options.py checks it). No torch here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..options import setting
from ..retrieval.settings import Encoding


@dataclass
class RefineSettings(Encoding):
    """``o1emb refine``: a retrieval committee picks one thought per row among the candidates."""

    input: str = setting("candidates JSONL (o1emb synthesize output)", "", required=True)
    out: str = setting("output training rows JSONL (appended to and resumed)", "", required=True)
    committee: str = setting("comma-separated members: bm25, st:PATH, o1:PATH", "", required=True)
    weights: str | None = setting("comma-separated member weights (unset: all 1)", None)
    scoring: Literal["retrieval", "similarity"] = setting(
        "retrieval: rank of the positive among negatives; similarity: the reference rule", "retrieval")
    voting: Literal["soft", "hard", "borda"] = setting("how the members' scores make one vote", "soft")
    vote_temperature: float | None = setting("soft-voting temperature (unset: 0.1 with retrieval scoring, 1 with "
                                             "similarity)", None, flag="temperature")
    margin: float = setting("vote share by which the winner must beat the bare query", 0.0)
    policy: Literal["keep-best", "empty", "drop"] = setting("when no candidate beats the bare query", "empty")
    query_mode: Literal["append", "alone"] | None = setting(
        "score query + candidate, or the candidate alone (unset: append with retrieval, alone with similarity)", None)
    margin_weight: float = setting("retrieval rule: weight of the relative margin next to the reciprocal rank", 0.25)
    other_positives: int = setting("retrieval rule: other rows' positives used as extra negatives", 0)
    corpus: str = setting("BEIR folder or corpus.jsonl: extra BM25 statistics source (empty: none)", "")
    rows_per_batch: int = setting("rows scored together", 256)
    dropped: str | None = setting("dropped rows JSONL (unset: OUT with .dropped.jsonl)", None)

    def committee_config(self) -> Any:
        from .scoring import CommitteeConfig

        return CommitteeConfig(
            scoring=self.scoring, voting=self.voting, temperature=self.vote_temperature, margin=self.margin,
            policy=self.policy, query_mode=self.query_mode, margin_weight=self.margin_weight,
            other_positives=self.other_positives, rows_per_batch=self.rows_per_batch, batch_size=self.batch_size,
            progress=not self.no_progress)
