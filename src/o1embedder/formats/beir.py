"""BEIR folders: corpus.jsonl, queries.jsonl, qrels/{split}.tsv (each optionally gzipped)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from .io import _log, atomic_write, iter_jsonl, write_jsonl
from .qrels import QRELS_HEADER, iter_qrels


@dataclass
class BeirDataset:
    """One split of a BEIR folder: the corpus, the judged queries of the split, and their qrels.

    ``corpus`` maps doc id -> ``{"title", "text"}`` (file order); ``queries`` holds only the queries
    that the split judges (BEIR practice), in qrels order; ``qrels`` maps query id -> doc id -> grade.
    """

    name: str
    path: Path
    split: str
    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def find_data_file(folder: str | os.PathLike[str], name: str) -> Path:
    """``folder/name`` or ``folder/name.gz``, whichever exists; else an :class:`InputError`."""
    folder = Path(folder)
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise InputError(f"no {name} (or {name}.gz) in this folder", path=folder)


def _record_id(obj: dict[str, Any], where: dict[str, Any]) -> str:
    value = obj.get("_id")
    if value is None:
        raise InputError("missing", field="_id", **where)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise InputError(f"expected a non-empty string, got {value!r}", field="_id", **where)
    return str(value)


def _record_str(obj: dict[str, Any], name: str, where: dict[str, Any], *, required: bool) -> str:
    value = obj.get(name)
    if value is None:
        if required:
            raise InputError("missing", field=name, **where)
        return ""
    if not isinstance(value, str):
        raise InputError(f"expected a string, got {type(value).__name__}", field=name, **where)
    return value


def read_beir_corpus(path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """Read ``corpus.jsonl[.gz]``: ``{_id, title?, text}`` per line -> ``{id: {title, text}}``.

    Duplicate ids and an empty corpus are errors; empty documents are kept with a counted warning.
    """
    corpus: dict[str, dict[str, str]] = {}
    lines: dict[str, int] = {}
    empty = 0
    for line_no, obj in iter_jsonl(path):
        where = {"path": path, "line": line_no}
        doc_id = _record_id(obj, where)
        if doc_id in corpus:
            raise InputError(f"duplicate id {doc_id!r} (first on line {lines[doc_id]})", field="_id", **where)
        doc = {"title": _record_str(obj, "title", where, required=False),
               "text": _record_str(obj, "text", where, required=True)}
        empty += not (doc["title"].strip() or doc["text"].strip())
        corpus[doc_id], lines[doc_id] = doc, line_no
    if not corpus:
        raise InputError("empty corpus (no documents)", path=path)
    if empty:
        _log().warning("%s: %d empty documents (kept; they match nothing)", path, empty)
    return corpus


def read_beir_queries(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read ``queries.jsonl[.gz]``: ``{_id, text}`` per line -> ``{id: text}``; duplicates are errors."""
    queries: dict[str, str] = {}
    lines: dict[str, int] = {}
    for line_no, obj in iter_jsonl(path):
        where = {"path": path, "line": line_no}
        qid = _record_id(obj, where)
        if qid in queries:
            raise InputError(f"duplicate id {qid!r} (first on line {lines[qid]})", field="_id", **where)
        text = _record_str(obj, "text", where, required=True)
        if not text.strip():
            raise InputError("empty query", field="text", **where)
        queries[qid], lines[qid] = text, line_no
    if not queries:
        raise InputError("no queries (empty file)", path=path)
    return queries


def beir_splits(folder: str | os.PathLike[str]) -> list[str]:
    """The splits a BEIR folder has (``qrels/*.tsv[.gz]``), sorted."""
    qrels_dir = Path(folder) / "qrels"
    if not qrels_dir.is_dir():
        return []
    names = (p.name.removesuffix(".gz") for p in qrels_dir.iterdir())
    return sorted(n.removesuffix(".tsv") for n in names if n.endswith(".tsv"))


def load_beir(folder: str | os.PathLike[str], split: str = "test", *, strict: bool = False,
              with_corpus: bool = True) -> BeirDataset:
    """Load one split of a BEIR folder, cross-checked against its corpus and queries.

    Published data has faults (one common BEIR set judges five documents its corpus lacks), so by
    default a judgement naming a missing document is kept with a warning: the document counts as
    relevant and never retrieved, as BEIR and pytrec_eval count it. A judgement naming a query that
    ``queries.jsonl`` lacks cannot be run and is dropped with a warning. ``strict=True`` refuses both.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a BEIR folder (expected corpus.jsonl, queries.jsonl, qrels/)", path=folder)
    splits = beir_splits(folder)
    if split not in splits:
        raise InputError(f"unknown split {split!r} (available: {', '.join(splits) or 'none'})",
                         path=folder / "qrels")
    qrels_path = find_data_file(folder / "qrels", f"{split}.tsv")
    all_queries = read_beir_queries(find_data_file(folder, "queries.jsonl"))
    corpus = read_beir_corpus(find_data_file(folder, "corpus.jsonl")) if with_corpus else {}
    qrels: dict[str, dict[str, int]] = {}
    missing_docs: dict[str, None] = {}
    missing_queries: dict[str, None] = {}
    dropped = 0
    for line_no, qid, doc_id, grade in iter_qrels(qrels_path):
        if qid not in all_queries:
            if strict:
                raise InputError(f"query id {qid!r} is not in queries.jsonl", path=qrels_path, line=line_no)
            missing_queries[qid] = None
            dropped += 1
            continue
        if with_corpus and doc_id not in corpus:
            if strict:
                raise InputError(f"doc id {doc_id!r} is not in the corpus", path=qrels_path, line=line_no)
            missing_docs[doc_id] = None
        qrels.setdefault(qid, {})[doc_id] = grade
    if missing_queries:
        _log().warning("%s: %d judgements name %d queries missing from queries.jsonl (dropped: %s)",
                       qrels_path, dropped, len(missing_queries), _first(missing_queries))
    if missing_docs:
        judged = sum(d in missing_docs for docs in qrels.values() for d in docs)
        _log().warning("%s: %d judgements name %d docs missing from the corpus (kept: relevant, never "
                       "retrieved): %s", qrels_path, judged, len(missing_docs), _first(missing_docs))
    if not qrels:
        raise InputError("no judgements (only a header)" if not dropped else
                         "no judgements name a query in queries.jsonl", path=qrels_path)
    queries = {qid: all_queries[qid] for qid in qrels}
    return BeirDataset(name=folder.name, path=folder, split=split, corpus=corpus, queries=queries, qrels=qrels)


def _first(ids: Iterable[str], n: int = 5) -> str:
    ids = list(ids)
    return ", ".join(repr(i) for i in ids[:n]) + (f", ... ({len(ids) - n} more)" if len(ids) > n else "")


def read_corpus(path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """A corpus given as a BEIR folder (its ``corpus.jsonl[.gz]``) or as a JSONL file."""
    path = Path(path)
    return read_beir_corpus(find_data_file(path, "corpus.jsonl") if path.is_dir() else path)


def write_beir(folder: str | os.PathLike[str], corpus: dict[str, dict[str, str]], queries: dict[str, str],
               qrels: dict[str, dict[str, dict[str, int]]]) -> Path:
    """Write a BEIR folder: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/{split}.tsv`` (with header)."""
    folder = Path(folder)
    write_jsonl(folder / "corpus.jsonl", ({"_id": d, "title": r.get("title", ""), "text": r.get("text", "")}
                                          for d, r in corpus.items()))
    write_jsonl(folder / "queries.jsonl", ({"_id": q, "text": t} for q, t in queries.items()))
    for split, judged in qrels.items():
        with atomic_write(folder / "qrels" / f"{split}.tsv") as handle:
            handle.write("\t".join(QRELS_HEADER) + "\n")
            for qid, docs in judged.items():
                for doc_id, grade in docs.items():
                    handle.write(f"{qid}\t{doc_id}\t{grade}\n")
    return folder
