"""Searching a query set as one job across the ranks of a process group (``torchrun``).

Each rank answers its contiguous block of the queries (its share of the thinking, the costly part)
and every rank receives all answers in the original order, so the caller (``o1emb eval``, ``o1emb
mine``) computes the same metrics or rows as one process would, and rank 0 writes them. Without a
process group this is ``retriever.search``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import distributed
from .base import Retriever, SearchResult


def search_spread(retriever: Retriever, queries: Sequence[str], k: int, **options: Any) -> list[SearchResult]:
    """``retriever.search(queries, k, **options)``, the queries shared out over the ranks."""
    queries = list(queries)
    if not distributed.is_distributed():
        return retriever.search(queries, k, **options)
    block = queries[distributed.rank_slice(len(queries))]
    mine = retriever.search(block, k, **options) if block else []
    return distributed.gather_list(mine)
