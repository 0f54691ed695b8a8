"""examples/rag_*.py as a user runs them: each indexes the demo's world into Qdrant's embedded local mode
(on disk) through its framework's own Qdrant integration and our adapter, searches it with thinking
queries, and finds the same top-10 as ``o1emb search`` over the same model and corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, require_module, run_small_demo

from o1embedder.formats import load_beir

EXAMPLES = {"langchain": ("langchain_qdrant", "langchain-qdrant"),
            "llamaindex": ("llama_index.vector_stores.qdrant", "llama-index-vector-stores-qdrant"),
            "haystack": ("haystack_integrations.document_stores.qdrant", "qdrant-haystack")}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    run_small_demo(out)
    return out


def _python(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("framework", sorted(EXAMPLES))
def test_the_example_finds_what_o1emb_search_finds(demo: Path, framework: str, tmp_path: Path) -> None:
    require_module(*EXAMPLES[framework])
    found_file, store = tmp_path / "found.json", tmp_path / "qdrant"
    printed = _python(str(REPO / "examples" / f"rag_{framework}.py"), "--model", str(demo / "model"),
                      "--data", str(demo / "world"), "--queries", "4", "--store", str(store),
                      "--json", str(found_file))
    found = json.loads(found_file.read_text())
    assert len(found) == 4 and all(len(ids) == 10 for ids in found.values())
    assert "thought: " in printed and any(store.iterdir())           # thoughts shown; the store is on disk
    data = load_beir(demo / "world", "test", with_corpus=False)
    searched = _python("-m", "o1embedder", "search", "--index", str(demo / "index"), "--json", "--no-cache",
                       "--no-progress", *[data.queries[q] for q in found])
    reference = [[h["id"] for h in json.loads(line)["hits"]] for line in searched.splitlines() if line.strip()]
    assert list(found.values()) == reference
