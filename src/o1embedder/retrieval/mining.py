"""Hard-negative mining: for each judged query, sample negatives from a rank range of a retriever's
results (default ranks 10-100), never a positive, and write training rows."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..formats import BeirDataset, TrainingRow
from ..log import get_logger
from ..templates import document_text
from .base import Retriever
from .spread import search_spread

logger = get_logger(__name__)


@dataclass
class MiningConfig:
    """How negatives are drawn."""

    negatives: int = 15
    """Negatives per query (fewer when the rank range holds fewer non-positives; counted in the log)."""
    rank_lo: int = 10
    """First rank (1-based, inclusive) that may give a negative; ranks above it are likely positives
    the qrels missed (false negatives)."""
    rank_hi: int = 100
    """Last rank (1-based, inclusive)."""
    seed: int = 0
    skip_self: bool = True
    """Never take the doc whose id equals the query id (BEIR convention)."""

    def validate(self) -> MiningConfig:
        if self.negatives < 1:
            raise InputError(f"--negatives must be >= 1, got {self.negatives}")
        if not 1 <= self.rank_lo <= self.rank_hi:
            raise InputError(f"rank range must satisfy 1 <= lo <= hi, got {self.rank_lo}-{self.rank_hi}")
        return self


def parse_ranks(text: str) -> tuple[int, int]:
    """``"10-100"`` -> ``(10, 100)``."""
    try:
        lo, hi = (int(x) for x in text.split("-"))
    except ValueError:
        raise InputError(f"--ranks must look like LO-HI (e.g. 10-100), got {text!r}") from None
    return lo, hi


def mine_negatives(dataset: BeirDataset, retriever: Retriever, config: MiningConfig | None = None, *,
                   batch_size: int = 32, show_progress: bool | None = None,
                   **search_options: Any) -> list[TrainingRow]:
    """One training row per query with at least one positive (grade > 0) in the split."""
    config = (config or MiningConfig()).validate()
    positives = {qid: {d for d, g in judged.items() if g > 0} for qid, judged in dataset.qrels.items()}
    qids = [qid for qid in dataset.queries if positives.get(qid)]
    if not qids:
        raise InputError(f"split {dataset.split!r} has no query with a positive judgement", path=dataset.path)
    results = search_spread(retriever, [dataset.queries[q] for q in qids], config.rank_hi + 1,
                            batch_size=batch_size, show_progress=show_progress, **search_options)
    rng = random.Random(config.seed)
    rows, short = [], 0
    for qid, result in zip(qids, results, strict=True):
        pos_ids = [d for d in dataset.qrels[qid] if d in positives[qid] and d in dataset.corpus]
        if not pos_ids:                                  # its only positives are missing from the corpus
            continue
        pos_texts = {document_text(dataset.corpus[d]) for d in pos_ids}
        ranked = [d for d, _ in result.hits if not (config.skip_self and d == qid)]
        pool = [d for d in ranked[config.rank_lo - 1:config.rank_hi]
                if d not in positives[qid] and document_text(dataset.corpus[d]) not in pos_texts]
        neg_ids = rng.sample(pool, min(config.negatives, len(pool)))
        short += len(neg_ids) < config.negatives
        row = TrainingRow(query=dataset.queries[qid], id=qid,
                          pos=[document_text(dataset.corpus[d]) for d in pos_ids],
                          neg=[document_text(dataset.corpus[d]) for d in neg_ids],
                          extra={"pos_ids": pos_ids, "neg_ids": neg_ids})
        rows.append(row)
    if short:
        logger.warning("%d of %d queries got fewer than %d negatives (rank range %d-%d too small)",
                       short, len(rows), config.negatives, config.rank_lo, config.rank_hi)
    return rows
