"""The recipe's data: the base checkpoint, mined training rows and the validation / test query sets.

Training rows come from each training set's own split only. Validation queries never enter training:
they are held out of that split (a seeded sample) or drawn from another split (``dev``); settings
are chosen on validation, the test split is only ever reported. Every sample is seeded by the recipe's
seed and the set's name, so a set gets the same queries whatever other sets the recipe lists.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..formats import BeirDataset, TrainingRow, load_beir, read_training_rows, write_json, write_jsonl
from ..log import get_logger
from .inputs import Inputs
from .recipe import Recipe, TrainSet

logger = get_logger(__name__)


@dataclass
class QuerySet:
    """Queries and their qrels for one dataset and split, plus the corpus they search."""

    dataset: str
    split: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    corpus: dict[str, dict[str, str]]


def base_output(recipe: Recipe, inputs: Inputs) -> Path:
    """Where the convert stage writes: ``base/`` for a GGUF file; else ``base.json`` naming the model
    (a folder or hub id is used as it is)."""
    from ..checkpoints import is_gguf

    return recipe.root / ("base" if is_gguf(inputs.base.value) else "base.json")


def base_model(recipe: Recipe, inputs: Inputs) -> Path:
    """The base LM as a plain safetensors folder (converted once from a GGUF file)."""
    from ..checkpoints import convert, is_gguf

    out = base_output(recipe, inputs)
    if not is_gguf(inputs.base.value):
        write_json(out, {"model": inputs.base.value})
        return Path(inputs.base.value)
    if not (out / "config.json").is_file():
        convert(inputs.base.value, out)
    return out


def _cut(text: str, words: int) -> str:
    parts = text.split()
    return text if len(parts) <= words else " ".join(parts[:words])


def _positive(data: BeirDataset) -> list[str]:
    return [q for q in data.queries if any(g > 0 for g in data.qrels.get(q, {}).values())]


def _held_out(recipe: Recipe, entry: TrainSet, train: BeirDataset) -> set[str]:
    """Validation queries held out of the training split itself (none when it has its own split)."""
    if entry.validation.split or not entry.validation.queries:
        return set()
    qids = sorted(q for q in train.queries if q in train.qrels)
    rng = random.Random(f"{recipe.seed}:{recipe.dataset_name(entry)}-validation")
    return set(rng.sample(qids, min(entry.validation.queries, len(qids))))


def _train_queries(recipe: Recipe, entry: TrainSet, train: BeirDataset) -> list[str]:
    held = _held_out(recipe, entry, train)
    qids = [q for q in _positive(train) if q not in held]
    if not entry.queries:
        return qids
    rng = random.Random(f"{recipe.seed}:{recipe.dataset_name(entry)}-train")
    return sorted(rng.sample(sorted(qids), min(entry.queries, len(qids))), key=qids.index)


def _mine(recipe: Recipe, inputs: Inputs, index: int, split: str | None = None,
          queries: list[str] | None = None) -> list[TrainingRow]:
    """Rows of training set ``index``: its training queries (or ``queries`` of ``split``) with mined
    negatives, texts cut to ``mining.doc_words``."""
    from ..retrieval import MiningConfig, corpus_retriever, mine_negatives

    entry, folder = recipe.train_data[index], inputs.folder(f"train_data.{index}.path")
    name = folder.name
    train = load_beir(folder.path, split or entry.split)
    keep = _train_queries(recipe, entry, train) if queries is None else queries
    subset = replace(train, queries={q: train.queries[q] for q in keep}, qrels={q: train.qrels[q] for q in keep})
    retriever = corpus_retriever(inputs.retrievers[recipe.mining.retriever].value, train.corpus)
    rows = mine_negatives(subset, retriever, MiningConfig(negatives=recipe.mining.negatives, seed=recipe.seed))
    words = recipe.mining.doc_words
    for row in rows:
        grades = train.qrels[row.id]
        order = sorted(range(len(row.pos)), key=lambda i: -grades[row.extra["pos_ids"][i]])  # best grade first
        row.pos = [_cut(row.pos[i], words) for i in order]
        row.extra["pos_ids"] = [row.extra["pos_ids"][i] for i in order]
        row.neg = [_cut(t, words) for t in row.neg]
        row.id = f"{name}:{row.id}"
        row.extra["dataset"] = name
    logger.info("%s (%s): %d rows (%d negatives each)", name, split or entry.split, len(rows), recipe.mining.negatives)
    return rows


def training_rows(recipe: Recipe, inputs: Inputs) -> Path:
    """``data/train.jsonl``: mined rows of every training set, in the recipe's order (no thoughts yet)."""
    path = recipe.root / "data" / "train.jsonl"
    if not path.is_file():
        rows = [r for i in range(len(recipe.train_data)) for r in _mine(recipe, inputs, i)]
        write_jsonl(path, (r.to_dict() for r in rows))
    return path


def validation_sets(recipe: Recipe, inputs: Inputs) -> Path:
    """``data/validation.json``: per training set with validation queries, those queries and their qrels."""
    path = recipe.root / "data" / "validation.json"
    if path.is_file():
        return path
    out: dict[str, Any] = {}
    for i, entry in enumerate(recipe.train_data):
        if not entry.validation.queries:
            continue
        folder = inputs.folder(f"train_data.{i}.path")
        if not entry.validation.split:
            train = load_beir(folder.path, entry.split, with_corpus=False)
            held = sorted(_held_out(recipe, entry, train))
            out[folder.name] = {"source": f"{entry.split} (held out of training)",
                                "queries": {q: train.queries[q] for q in held}, "qrels": {q: train.qrels[q] for q in held}}
            continue
        dev = load_beir(folder.path, entry.validation.split, with_corpus=False)
        qids = sorted(_positive(dev))
        rng = random.Random(f"{recipe.seed}:{folder.name}-validation")
        chosen = sorted(rng.sample(qids, min(entry.validation.queries, len(qids))))
        out[folder.name] = {"source": f"{entry.validation.split} (subset)", "queries": {q: dev.queries[q] for q in chosen},
                            "qrels": {q: dev.qrels[q] for q in chosen}}
    write_json(path, out)
    return path


def heldout_rows(recipe: Recipe, inputs: Inputs) -> Path:
    """``data/heldout-rows.jsonl``: ``training.heldout_thoughts`` validation queries (a seeded sample of
    all training sets' validation queries) as rows mined like the training rows, for the experts to
    write thoughts for: the held-out thoughts whose LM loss is scored (``training.heldout_from:
    validation``). No training row is removed."""
    path = recipe.root / "data" / "heldout-rows.jsonl"
    if path.is_file():
        return path
    held = json.loads(validation_sets(recipe, inputs).read_text(encoding="utf-8"))
    rows: list[TrainingRow] = []
    for i, entry in enumerate(recipe.train_data):
        name = inputs.folder(f"train_data.{i}.path").name
        if name in held:
            rows += _mine(recipe, inputs, i, entry.validation.split or entry.split, sorted(held[name]["queries"]))
    chosen = heldout_sample(recipe, [r.id for r in rows])
    write_jsonl(path, (r.to_dict() for r in rows if r.id in chosen))
    return path


def heldout_sample(recipe: Recipe, ids: list[str]) -> set[str]:
    """``training.heldout_thoughts`` of ``ids`` (a seeded sample, whatever their order): the held-out rows,
    from validation queries or from the training rows (``training.heldout_from``)."""
    rng = random.Random(f"{recipe.seed}:heldout-thoughts")
    return set(rng.sample(sorted(ids), min(recipe.training.heldout_thoughts, len(ids))))


def query_sets(recipe: Recipe, inputs: Inputs, split: str) -> list[tuple[str, Path, str]]:
    """(name, folder, qrels split) of every query set of ``split`` (``validation`` or ``test``)."""
    if split == "validation":
        return [(f.name, f.path, "validation") for i, e in enumerate(recipe.train_data) if e.validation.queries
                for f in [inputs.folder(f"train_data.{i}.path")]]
    return [(f.name, f.path, e.split) for i, e in enumerate(recipe.eval_data) for f in [inputs.folder(f"eval_data.{i}.path")]]


def query_set(recipe: Recipe, inputs: Inputs, name: str, folder: Path, split: str) -> QuerySet:
    """The queries and qrels of one set, with its folder's corpus."""
    corpus = _corpus(folder)
    if split == "validation":
        data = json.loads(validation_sets(recipe, inputs).read_text(encoding="utf-8"))[name]
        return QuerySet(name, split, data["queries"], data["qrels"], corpus)
    test = load_beir(folder, split, with_corpus=False)
    return QuerySet(name, "test", dict(test.queries), dict(test.qrels), corpus)


_CORPORA: dict[str, dict[str, dict[str, str]]] = {}


def _corpus(folder: Path) -> dict[str, dict[str, str]]:
    from ..formats import read_corpus

    key = str(folder.resolve())
    if key not in _CORPORA:
        _CORPORA.clear()                     # one corpus in memory at a time
        _CORPORA[key] = read_corpus(folder)
    return _CORPORA[key]


def without_thoughts(rows_path: Path, out: Path) -> Path:
    """The same rows with no thought (the contrastive-only baseline trains on these)."""
    if not out.is_file():
        rows = read_training_rows(rows_path)
        write_jsonl(out, ({k: v for k, v in r.to_dict().items() if k not in {"thought", "candidates"}}
                          for r in rows))
    return out
