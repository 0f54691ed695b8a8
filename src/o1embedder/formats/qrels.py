"""Relevance judgements (qrels): BEIR's TSV, with or without its header, and TREC's four columns."""

from __future__ import annotations

import os
from collections.abc import Iterator

from ..errors import InputError
from .io import _log, iter_lines

QRELS_HEADER = ("query-id", "corpus-id", "score")


def _qrels_fields(line: str) -> list[str]:
    """BEIR's ``qid<TAB>docid<TAB>score``, or TREC's ``qid iter docid rel`` (any whitespace)."""
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) == 3 and all(f.strip() for f in fields):
        return [f.strip() for f in fields]
    words = line.split()
    if len(words) == 4:                       # TREC: the second column (iteration) is ignored
        return [words[0], words[2], words[3]]
    return words if len(words) == 3 else fields


def iter_qrels(path: str | os.PathLike[str]) -> Iterator[tuple[int, str, str, int]]:
    """Yield ``(line, query_id, doc_id, grade)`` from a qrels file.

    Accepted: BEIR's TSV with or without its ``query-id corpus-id score`` header, and TREC's
    ``qid 0 docid rel`` form (whitespace-separated).
    """
    seen = False
    for line_no, line in iter_lines(path):
        if not line.strip():
            continue
        fields = _qrels_fields(line)
        if not seen:
            seen = True
            if tuple(f.strip().lower() for f in fields) == QRELS_HEADER:
                continue
        if len(fields) != 3:
            raise InputError(f"expected 3 tab-separated fields (query-id, corpus-id, score) or 4 (TREC: "
                             f"qid iter docid rel), got {len(fields)}", path=path, line=line_no)
        try:
            grade = int(fields[2])
        except ValueError:
            raise InputError(f"score must be an integer, got {fields[2]!r}", path=path, line=line_no,
                             field="score") from None
        yield line_no, fields[0], fields[1], grade
    if not seen:
        raise InputError("empty qrels file", path=path)


def read_qrels(path: str | os.PathLike[str]) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV -> ``{query_id: {doc_id: grade}}``; a repeated pair keeps the last grade."""
    qrels: dict[str, dict[str, int]] = {}
    repeated = 0
    for _, qid, doc_id, grade in iter_qrels(path):
        judged = qrels.setdefault(qid, {})
        repeated += doc_id in judged
        judged[doc_id] = grade
    if not qrels:
        raise InputError("no judgements (only a header)", path=path)
    if repeated:
        _log().warning("%s: %d repeated (query, doc) pairs; kept the last grade (BEIR practice)", path, repeated)
    return qrels
