"""``EvalSettings``: the settings of ``o1emb eval`` (:mod:`o1embedder.options`: ``--config FILE``, a
flag per setting, ``--set KEY=VALUE``, ``--print-config``); :meth:`EvalSettings.eval_config` makes the
library's :class:`~o1embedder.evaluation.beir.EvalConfig` from them. No torch here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..options import setting
from ..retrieval.settings import Encoding, ThinkSettings, torch_device


@dataclass
class EvalSettings(Encoding):
    """``o1emb eval``: a model on a BEIR split, scored with pytrec_eval."""

    model: str = setting("O1 model folder/hub id, 'bm25' or 'st:PATH'", "", required=True)
    no_stem: bool = setting("bm25 without stemming (BEIR's bm25s numbers); else English Snowball stemming", False)
    data: str = setting("BEIR folder (corpus.jsonl, queries.jsonl, qrels/)", "", required=True)
    split: str = setting("qrels split", "test")
    out: str = setting("report JSON path (siblings: .md, .trec, ...); empty: print the metrics only", "")
    ablation: bool = setting("O1: think and no-think side by side on one index", False)
    k_values: list[int] = setting("metric cut-offs (comma-separated on the command line)",
                                  factory=lambda: [1, 3, 5, 10, 100, 1000])
    keep_self_hits: bool = setting("keep a retrieved doc whose id equals the query id (BEIR skips it)", False)
    max_queries: int | None = setting("only the first N judged queries (a quick check)", None)
    strict: bool = setting("refuse qrels naming documents or queries the data lacks (else: warn; such documents "
                           "count as relevant and never retrieved)", False)
    index: str | None = setting("keep/reuse the corpus index in this folder", None)
    factory: str = setting("FAISS factory for dense models", "Flat")
    max_length: int | None = setting("passage token limit (unset: the model's)", None)
    think: ThinkSettings = field(default_factory=ThinkSettings)

    def eval_config(self) -> Any:
        """The library's ``EvalConfig``."""
        from .beir import EvalConfig
        from .metrics import parse_k_values

        return EvalConfig(split=self.split, think=self.think.think(), **self.think.auto_knobs(),
                          ablation=self.ablation, think_options=self.think.overrides(),
                          k_values=parse_k_values(self.k_values), skip_self=not self.keep_self_hits,
                          max_queries=self.max_queries, strict=self.strict, index_dir=self.index,
                          factory=self.factory, batch_size=self.batch_size, max_length=self.max_length,
                          device=torch_device(self.device), dtype=self.dtype,
                          cache_dir=self.think.cache_dir())
