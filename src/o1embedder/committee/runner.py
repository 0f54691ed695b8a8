"""The refinement run: candidates in, one chosen thought per row out; exactly once, resumable.

Flow: read and validate every input row (ids assigned when missing, ``row-<line>``); recover the
output and the dropped-rows file (cut a torn tail, collect the ids already written, check the
settings match); give the BM25 member its statistics (the document collection: all rows' positives
and negatives, plus a supplied corpus); then score the pending rows ``rows_per_batch`` at a time and
append each batch's rows (fsync'd) to the output, or, under ``policy="drop"``, the rows whose
thinking lost to the bare query to the dropped file. A row is in exactly one of the two files, so a
killed run resumes where it stopped. At the end a summary JSON is written beside the output.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..formats import TrainingRow, iter_jsonl, parse_training_row, read_corpus, write_json
from ..journal import append_jsonl, recover_jsonl
from ..log import get_logger, progress_enabled
from .members import Member, build_committee
from .scoring import CommitteeConfig, RowResult, check_row, extra_negatives, score_rows
from .summary import log_summary, summarize_files

logger = get_logger(__name__)

SETTINGS_KEY = "refinement"


@dataclass
class RefineReport:
    """What a run did; ``summary`` covers every row in the output and dropped files."""

    input_rows: int = 0
    already_done: int = 0
    written: int = 0
    dropped: int = 0
    seconds: float = 0.0
    out: str = ""
    dropped_path: str = ""
    summary_path: str = ""
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def side_path(out: str | os.PathLike[str], suffix: str) -> Path:
    """``train.jsonl`` -> ``train.<suffix>`` (e.g. ``train.dropped.jsonl``, ``train.summary.json``)."""
    out = Path(out)
    stem = out.name[:-len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(f"{stem}.{suffix}")


def read_candidate_rows(path: str | os.PathLike[str], config: CommitteeConfig) -> list[TrainingRow]:
    """Read and validate candidate rows (``o1emb synthesize`` output); errors name file, line and field."""
    rows: list[TrainingRow] = []
    seen: dict[str, int] = {}
    for line_no, obj in iter_jsonl(path):
        if "candidates" in obj and not isinstance(obj["candidates"], list):
            raise InputError(f"expected a list of strings, got {type(obj['candidates']).__name__}",
                             path=path, line=line_no, field="candidates")
        row = parse_training_row(obj, path=path, line=line_no)
        row.id = row.id if row.id is not None else f"row-{line_no}"
        if row.id in seen:
            raise InputError(f"duplicate id {row.id!r} (first on line {seen[row.id]})", path=path,
                             line=line_no, field="id")
        seen[row.id] = line_no
        check_row(row, config, path=path, line=line_no)
        rows.append(row)
    if not rows:
        raise InputError("no rows (empty file)", path=path)
    return rows


def collection(rows: Sequence[TrainingRow], corpus: str | os.PathLike[str] | None = None) -> list[str]:
    """The BM25 statistics source: a supplied corpus (BEIR folder or corpus.jsonl) plus every row document."""
    texts: list[str] = []
    if corpus is not None:
        for doc in read_corpus(corpus).values():
            texts.append(f"{doc['title']} {doc['text']}".strip() if doc["title"] else doc["text"])
    for row in rows:
        texts.extend(row.pos)
        texts.extend(row.neg)
    return list(dict.fromkeys(texts))


def iter_refine(rows: Sequence[TrainingRow], members: Sequence[Member], config: CommitteeConfig | None = None,
                *, corpus: str | os.PathLike[str] | None = None,
                all_rows: Sequence[TrainingRow] | None = None) -> Iterator[list[RowResult]]:
    """Decide ``rows`` (validated here), yielding one list of results per ``config.rows_per_batch`` rows.

    ``all_rows`` (default ``rows``) is the input the extra negatives and BM25 statistics come from, so
    a row's result does not depend on which rows are still pending.
    """
    from tqdm.auto import tqdm

    config = (config or CommitteeConfig()).validate()
    for row in rows:
        check_row(row, config)
    everything = list(all_rows if all_rows is not None else rows)
    extras = dict(zip((r.id for r in everything), extra_negatives(everything, config.other_positives), strict=True))
    if config.scoring == "retrieval":
        docs = collection(everything, corpus)
        for member in members:
            member.prepare(docs)
    with tqdm(total=len(rows), desc="refine", unit="row", disable=not progress_enabled(config.progress)) as bar:
        for start in range(0, len(rows), config.rows_per_batch):
            chunk = list(rows[start:start + config.rows_per_batch])
            yield score_rows(chunk, members, config, [extras.get(r.id, []) for r in chunk])
            bar.update(len(chunk))


def refine_rows(rows: Sequence[TrainingRow], members: Sequence[Member], config: CommitteeConfig | None = None,
                **options: Any) -> list[RowResult]:
    """In-memory API: every row's :class:`RowResult` (see :func:`iter_refine`)."""
    return [r for batch in iter_refine(rows, members, config, **options) for r in batch]


def refine(input_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
           committee: str | Sequence[str] | Sequence[Member], *, config: CommitteeConfig | None = None,
           weights: str | Sequence[float] | None = None, corpus: str | os.PathLike[str] | None = None,
           dropped_path: str | os.PathLike[str] | None = None, device: Any = None, dtype: Any = None) -> RefineReport:
    """Refine a candidates file into training rows with one ``thought`` each (see the module doc).

    ``committee``: ``"bm25,st:PATH,o1:PATH"``, a list of such specs, or ready :class:`Member` objects.
    """
    start = time.perf_counter()
    config = (config or CommitteeConfig()).validate()
    rows = read_candidate_rows(input_path, config)
    out = Path(out_path)
    dropped = Path(dropped_path) if dropped_path is not None else side_path(out, "dropped.jsonl")
    report = RefineReport(input_rows=len(rows), out=str(out), dropped_path=str(dropped),
                          summary_path=str(side_path(out, "summary.json")))
    members = _members(committee, weights, config, device, dtype)
    settings = config.settings(members)
    pending = _pending(rows, out, dropped, settings, report)
    batches = iter_refine(pending, members, config, corpus=corpus, all_rows=rows) if pending else []
    for batch in batches:                       # each batch is on disk (fsync'd) before the next one starts
        kept = [r.to_dict(settings) for r in batch if r.outcome != "dropped"]
        append_jsonl(out, kept)
        append_jsonl(dropped, [r.to_dict(settings) for r in batch if r.outcome == "dropped"])
        report.written += len(kept)
        report.dropped += len(batch) - len(kept)
    report.summary = {**summarize_files(out, dropped), "settings": settings}
    write_json(report.summary_path, report.summary)
    report.seconds = time.perf_counter() - start
    log_summary(report.summary)
    logger.info("refine: %d rows written, %d dropped (%d already done) in %.1fs; summary: %s",
                report.written, report.dropped, report.already_done, report.seconds, report.summary_path)
    return report


def _members(committee: Any, weights: Any, config: CommitteeConfig, device: Any, dtype: Any) -> list[Member]:
    if isinstance(committee, str) or (committee and all(isinstance(c, str) for c in committee)):
        return build_committee(committee, weights, device=device, dtype=dtype, batch_size=config.batch_size)
    members = list(committee)
    if weights is not None:
        raise InputError("weights go on the Member objects when members are given ready-made")
    return members


def _pending(rows: list[TrainingRow], out: Path, dropped: Path, settings: dict[str, Any],
             report: RefineReport) -> list[TrainingRow]:
    """Rows not yet in the output or dropped file; the files must come from this input and settings."""
    ids, previous = recover_jsonl(out, SETTINGS_KEY)
    ids_dropped, previous_dropped = recover_jsonl(dropped, SETTINGS_KEY)
    done, done_dropped = set(ids), set(ids_dropped)
    stray = (done | done_dropped) - {r.id for r in rows}
    if stray:
        raise InputError(f"the existing output has {len(stray)} row(s) not in the input (e.g. {min(stray)!r}): "
                         "it belongs to another input; use another --out", path=out)
    for prev in (previous, previous_dropped):
        if prev is not None and prev != settings:
            diff = sorted(k for k in set(prev) | set(settings) if prev.get(k) != settings.get(k))
            raise InputError(f"the existing output was made with other settings ({', '.join(diff)}); "
                             "resume with the same settings or use another --out", path=out)
    report.already_done = len(done | done_dropped)
    if report.already_done:
        logger.info("refine: %d rows already done, resuming", report.already_done)
    return [r for r in rows if r.id not in done and r.id not in done_dropped]
