"""TREC run files: ``qid Q0 docid rank score tag``."""

from __future__ import annotations

import os

from ..errors import InputError
from .io import atomic_write, iter_lines

Run = dict[str, dict[str, float]]


def write_trec_run(path: str | os.PathLike[str], run: Run, tag: str = "o1emb") -> None:
    """Write a run atomically, each query's docs by descending score (ties: doc id, descending)."""
    tag = tag.replace(" ", "_") or "o1emb"
    with atomic_write(path) as handle:
        for qid, scores in run.items():
            ranked = sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
            for rank, (doc_id, score) in enumerate(ranked, start=1):
                handle.write(f"{qid} Q0 {doc_id} {rank} {score!r} {tag}\n")


def read_trec_run(path: str | os.PathLike[str]) -> Run:
    """Read a TREC run file -> ``{qid: {docid: score}}``; a repeated (qid, docid) is an error."""
    run: Run = {}
    for line_no, line in iter_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise InputError(f"expected 6 fields (qid Q0 docid rank score tag), got {len(fields)}",
                             path=path, line=line_no)
        qid, _, doc_id, _, score, _ = fields
        try:
            value = float(score)
        except ValueError:
            raise InputError(f"score must be a number, got {score!r}", path=path, line=line_no) from None
        scores = run.setdefault(qid, {})
        if doc_id in scores:
            raise InputError(f"doc {doc_id!r} listed twice for query {qid!r}", path=path, line=line_no)
        scores[doc_id] = value
    if not run:
        raise InputError("empty run file", path=path)
    return run
