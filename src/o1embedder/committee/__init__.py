"""Refinement: a retrieval committee picks one thought per training row among the expert's candidates.

Members (``bm25``, ``st:PATH``, ``o1:PATH``) score the bare query and every candidate; a scoring rule
(``retrieval`` by default, or the reference ``similarity``) and a voting rule (``soft``, ``hard``,
``borda``) pick the winner, which must beat the bare query (baseline rule). The maths of every rule
is stated once, in :mod:`o1embedder.committee.rules`.

>>> from o1embedder.committee import CommitteeConfig, refine             # doctest: +SKIP
>>> report = refine("candidates.jsonl", "train.jsonl", "bm25,st:/models/minilm",
...                 config=CommitteeConfig(voting="soft", policy="empty"))
>>> report.summary["thinking_beats_query"]
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CommitteeConfig": "scoring", "RowResult": "scoring", "score_rows": "scoring", "check_row": "scoring",
    "Member": "members", "Task": "members", "BM25Member": "members", "STMember": "members",
    "O1Member": "members", "DenseMember": "members", "build_committee": "members", "make_member": "members",
    "refine": "runner", "refine_rows": "runner", "iter_refine": "runner", "RefineReport": "runner",
    "read_candidate_rows": "runner", "summarize": "summary", "summarize_files": "summary",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
