"""Typed records and their readers/writers (stdlib only).

Every reader reports problems as :class:`~o1embedder.errors.InputError` naming the file, the line
and the field, so ``o1emb`` can print one clear line and exit 2. Every writer writes to a temporary
name in the same folder and renames it into place, so a crash never leaves a half-written output.

Modules: :mod:`.io` (text and JSONL files, atomic writes), :mod:`.rows` (training rows),
:mod:`.beir` (BEIR folders), :mod:`.qrels` (relevance judgements), :mod:`.runs` (TREC run files).
"""

from __future__ import annotations

from .beir import (
    BeirDataset,
    beir_splits,
    find_data_file,
    load_beir,
    read_beir_corpus,
    read_beir_queries,
    read_corpus,
    write_beir,
)
from .io import atomic_write, iter_jsonl, iter_lines, read_text, write_json, write_jsonl
from .qrels import QRELS_HEADER, iter_qrels, read_qrels
from .rows import TrainingRow, parse_training_row, read_training_rows
from .runs import Run, read_trec_run, write_trec_run

SPECIAL_TOKENS = ("<query>", "</query>", "<thought>", "<emb>")
"""The four token strings O1 Embedder adds to a tokenizer (same strings as the authors' checkpoint)."""

__all__ = [
    "QRELS_HEADER", "SPECIAL_TOKENS", "BeirDataset", "Run", "TrainingRow", "atomic_write", "beir_splits",
    "find_data_file", "iter_jsonl", "iter_lines", "iter_qrels", "load_beir", "parse_training_row",
    "read_beir_corpus", "read_beir_queries", "read_corpus", "read_qrels", "read_text", "read_training_rows",
    "read_trec_run", "write_beir", "write_json", "write_jsonl", "write_trec_run",
]
