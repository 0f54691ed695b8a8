"""Typed records and their readers/writers (stdlib only).

Every reader reports problems as :class:`~o1embedder.errors.InputError` naming the file, the line
and the field, so ``o1emb`` can print one clear line and exit 2. Every writer writes to a temporary
name in the same folder and renames it into place, so a crash never leaves a half-written output.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .errors import InputError

SPECIAL_TOKENS = ("<query>", "</query>", "<thought>", "<emb>")
"""The four token strings O1 Embedder adds to a tokenizer (same strings as the authors' checkpoint)."""


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------

def read_text(path: str | os.PathLike[str]) -> str:
    """A whole UTF-8 text file (see :func:`iter_lines`: byte-order mark dropped, bad bytes -> file:line)."""
    return "".join(line for _, line in iter_lines(path))


def iter_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for every line of a UTF-8 text file (``*.gz`` gunzipped).

    A byte-order mark at the start is dropped. A line that is not valid UTF-8 is an
    :class:`InputError` naming its line (decoding line by line, so the number is exact).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found" if not path.exists() else "not a file", path=path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield line_no, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"not valid UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})",
                                 path=path, line=line_no) from None


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; each line must be a JSON object."""
    for line_no, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON ({exc.msg} at column {exc.colno})", path=path,
                             line=line_no) from None
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, got {type(obj).__name__}", path=path,
                             line=line_no)
        yield line_no, obj


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Write ``path`` through a temporary file in the same folder, renamed into place on success.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        kwargs = {} if "b" in mode else {"encoding": "utf-8"}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write one JSON document atomically (pretty-printed, UTF-8)."""
    with atomic_write(path) as handle:
        json.dump(obj, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSON lines atomically; return how many were written."""
    count = 0
    with atomic_write(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


# ---------------------------------------------------------------------------------------------
# Training rows: FlagEmbedding-style JSONL plus ``id``, ``thought`` and ``candidates``
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# BEIR folders: corpus.jsonl, queries.jsonl, qrels/{split}.tsv (each optionally gzipped)
# ---------------------------------------------------------------------------------------------

QRELS_HEADER = ("query-id", "corpus-id", "score")


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


# ---------------------------------------------------------------------------------------------
# TREC run files: ``qid Q0 docid rank score tag``
# ---------------------------------------------------------------------------------------------

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


def _log() -> Any:
    import logging

    return logging.getLogger("o1embedder.formats")


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
