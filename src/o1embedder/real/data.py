"""The recipe's data: the base checkpoint, mined training rows and the validation / test query sets.

Training rows come from the *train* splits only. Validation queries never enter training: SciFact
has no dev split, so a seeded set of its train queries is held out; NFCorpus has one, and a seeded
subset of it is used. Settings are chosen on validation; the test split is only ever reported.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..formats import BeirDataset, TrainingRow, load_beir, read_training_rows, write_json, write_jsonl
from ..log import get_logger
from .config import DATASETS, RealConfig

logger = get_logger(__name__)


@dataclass
class QuerySet:
    """Queries and their qrels for one dataset and split, plus the corpus they search."""

    dataset: str
    split: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    corpus: dict[str, dict[str, str]]


def base_output(config: RealConfig) -> Path:
    """Where the convert stage writes: ``smollm2/`` for a GGUF file; for a folder, ``base.json``
    naming it (the folder itself is used as it is)."""
    from ..checkpoints import is_gguf

    return config.root / ("smollm2" if is_gguf(config.model) else "base.json")


def base_model(config: RealConfig) -> Path:
    """The base LM as a plain safetensors folder (converted once from the GGUF file)."""
    from ..checkpoints import convert, is_gguf

    out = base_output(config)
    if not is_gguf(config.model):
        write_json(out, {"model": str(Path(config.model).resolve())})
        return Path(config.model)
    if not (out / "config.json").is_file():
        convert(config.model, out)
    return out


def _cut(text: str, words: int) -> str:
    parts = text.split()
    return text if len(parts) <= words else " ".join(parts[:words])


def _held_out(config: RealConfig, train: BeirDataset) -> set[str]:
    qids = sorted(q for q in train.queries if q in train.qrels)
    return set(random.Random(f"{config.seed}:scifact-validation").sample(qids, config.scifact_validation))


def _train_queries(config: RealConfig, dataset: str, train: BeirDataset) -> list[str]:
    qids = [q for q in train.queries if any(g > 0 for g in train.qrels.get(q, {}).values())]
    if dataset == "scifact":
        held = _held_out(config, train)
        return [q for q in qids if q not in held]
    rng = random.Random(f"{config.seed}:nfcorpus-train")
    return sorted(rng.sample(sorted(qids), min(config.nfcorpus_train_queries, len(qids))), key=qids.index)


def _mine(config: RealConfig, dataset: str) -> list[TrainingRow]:
    from ..retrieval import MiningConfig, corpus_retriever, mine_negatives

    train = load_beir(config.beir(dataset), "train")
    keep = _train_queries(config, dataset, train)
    subset = replace(train, queries={q: train.queries[q] for q in keep}, qrels={q: train.qrels[q] for q in keep})
    retriever = corpus_retriever(config.bm25, train.corpus)
    rows = mine_negatives(subset, retriever, MiningConfig(negatives=config.negatives, seed=config.seed))
    for row in rows:
        grades = train.qrels[row.id]
        order = sorted(range(len(row.pos)), key=lambda i: -grades[row.extra["pos_ids"][i]])  # best grade first
        row.pos = [_cut(row.pos[i], config.doc_words) for i in order]
        row.extra["pos_ids"] = [row.extra["pos_ids"][i] for i in order]
        row.neg = [_cut(t, config.doc_words) for t in row.neg]
        row.id = f"{dataset}:{row.id}"
        row.extra["dataset"] = dataset
    logger.info("%s: %d training rows (%d negatives each)", dataset, len(rows), config.negatives)
    return rows


def training_rows(config: RealConfig) -> Path:
    """``data/train.jsonl``: BM25-mined rows of both datasets (no thoughts yet)."""
    path = config.root / "data" / "train.jsonl"
    if not path.is_file():
        rows = [r for name in DATASETS for r in _mine(config, name)]
        write_jsonl(path, (r.to_dict() for r in rows))
    return path


def validation_sets(config: RealConfig) -> Path:
    """``data/validation.json``: per dataset the held-out queries and their qrels."""
    path = config.root / "data" / "validation.json"
    if path.is_file():
        return path
    out: dict[str, Any] = {}
    scifact = load_beir(config.beir("scifact"), "train", with_corpus=False)
    held = sorted(_held_out(config, scifact))
    out["scifact"] = {"source": "train (held out of training)", "queries": {q: scifact.queries[q] for q in held},
                      "qrels": {q: scifact.qrels[q] for q in held}}
    dev = load_beir(config.beir("nfcorpus"), "dev", with_corpus=False)
    qids = sorted(q for q in dev.queries if any(g > 0 for g in dev.qrels.get(q, {}).values()))
    chosen = sorted(random.Random(f"{config.seed}:nfcorpus-validation").sample(qids, config.nfcorpus_validation))
    out["nfcorpus"] = {"source": "dev (subset)", "queries": {q: dev.queries[q] for q in chosen},
                       "qrels": {q: dev.qrels[q] for q in chosen}}
    write_json(path, out)
    return path


def query_set(config: RealConfig, dataset: str, split: str, corpus: dict[str, dict[str, str]]) -> QuerySet:
    """The queries and qrels of ``split`` (``validation`` or ``test``) for ``dataset``."""
    if split == "validation":
        data = json.loads(validation_sets(config).read_text(encoding="utf-8"))[dataset]
        return QuerySet(dataset, split, data["queries"], data["qrels"], corpus)
    test = load_beir(config.beir(dataset), "test", with_corpus=False)
    return QuerySet(dataset, split, dict(test.queries), dict(test.qrels), corpus)


def corpus(config: RealConfig, dataset: str) -> dict[str, dict[str, str]]:
    return load_beir(config.beir(dataset), "test").corpus


def without_thoughts(rows_path: Path, out: Path) -> Path:
    """The same rows with no thought (the contrastive-only baseline trains on these)."""
    if not out.is_file():
        rows = read_training_rows(rows_path)
        write_jsonl(out, ({k: v for k, v in r.to_dict().items() if k not in {"thought", "candidates"}}
                          for r in rows))
    return out
