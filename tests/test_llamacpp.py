"""The llama.cpp engine on the real llama-cpp-python (the ``llamacpp`` extra; CI builds it): the demo's
trained model, exported by ``o1emb export``, loads in llama.cpp and in transformers; at F16 both write the
greedy thoughts our one-pass path writes for at least 95 % of the demo's test queries; every engine's
vector is the given-thoughts path's for its own thoughts; sampled thoughts and repetition control are the
one-pass loop's (our sampler on llama.cpp's logits); ``o1emb think --think-engine`` runs it.
(Fakes of llama-cpp-python and of an OpenAI server: tests/test_engines.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import require_module, run_small_demo, with_rope

from o1embedder.cli import main
from o1embedder.engines import attach, make_engine
from o1embedder.errors import InputError
from o1embedder.export import export_gguf
from o1embedder.formats import load_beir
from o1embedder.model import O1Embedder
from o1embedder.model.settings import ThinkConfig

require_module("llama_cpp", "pip install 'o1embedder[llamacpp]'")
require_module("gguf", "pip install 'o1embedder[gguf]'")

GREEDY = {"n_thoughts": 1, "temperature": 0.0, "max_new_tokens": 12, "show_progress": False}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    run_small_demo(out)
    return out


@pytest.fixture(scope="module")
def test_queries(demo: Path) -> list[str]:
    data = load_beir(demo / "world", "test", with_corpus=False)
    return [data.queries[qid] for qid in sorted(data.queries)]


def _agreement(a: list[list[list[int]]], b: list[list[list[int]]]) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


@pytest.mark.parametrize("qtype", ["f16", "q8_0"])
def test_the_demos_model_exported_thinks_on_llama_cpp(demo: Path, test_queries: list[str], qtype: str,
                                                      tmp_path: Path, capsys) -> None:
    gguf = tmp_path / f"demo-{qtype}.gguf"
    assert main(["export", str(demo / "model"), "--gguf", str(gguf), "--type", qtype]) == 0
    capsys.readouterr()
    ours = O1Embedder.from_pretrained(demo / "model", device="cpu", dtype="float32")
    mine = ours.think(test_queries, **GREEDY)
    engine = attach(O1Embedder.from_pretrained(demo / "model", device="cpu", dtype="float32"), f"llama.cpp:{gguf}")
    theirs = engine.think(test_queries, **GREEDY)
    given = ours.encode_queries(test_queries, thoughts=theirs.ids, show_progress=False)
    assert np.abs(theirs.pooled - given).max() < 1e-5            # the vector: our model, over its thoughts
    rate = _agreement(mine.ids, theirs.ids)
    assert any(t[0] for t in theirs.ids) and rate >= (0.95 if qtype == "f16" else 0.5), (qtype, rate)
    if qtype == "f16":                                           # transformers loads the very file too
        back = O1Embedder.from_pretrained(gguf, device="cpu", dtype="float32")
        assert _agreement(mine.ids, back.think(test_queries, **GREEDY).ids) >= 0.95


@pytest.fixture(scope="module")
def demo_gguf(demo: Path, tmp_path_factory) -> Path:
    gguf = tmp_path_factory.mktemp("gguf") / "demo-f16.gguf"
    export_gguf(demo / "model", gguf, qtype="f16")
    return gguf


@pytest.mark.parametrize("settings", [
    {"n_thoughts": 3, "temperature": 0.7, "top_p": 0.9, "seed": 3},           # sampled: our sampler, our keys
    {"n_thoughts": 1, "temperature": 0.0, "repetition_penalty": 1.3, "no_repeat_ngram_size": 2},
], ids=["sampled", "repetition-control"])
def test_llama_cpp_chooses_tokens_as_the_one_pass_loop(demo: Path, demo_gguf: Path, test_queries: list[str],
                                                       settings: dict) -> None:
    """llama.cpp gives the logits, our code picks the tokens: sampled thoughts (and repetition control, with
    transformers' meaning) are the one-pass loop's wherever the logits agree; grouping the rows differently
    (one query per llama.cpp batch) changes none of them, so the thought cache may key them per query."""
    kw = {**settings, "max_new_tokens": 12, "show_progress": False}
    mine = O1Embedder.from_pretrained(demo / "model", device="cpu", dtype="float32").think(test_queries, **kw).ids
    model = O1Embedder.from_pretrained(demo / "model", device="cpu", dtype="float32")
    theirs = attach(model, f"llama.cpp:{demo_gguf}").think(test_queries, **kw).ids
    rows = [(a, b) for x, y in zip(mine, theirs, strict=True) for a, b in zip(x, y, strict=True)]
    assert sum(a == b for a, b in rows) / len(rows) >= 0.95 and len({tuple(b) for _, b in rows}) > 1
    alone = attach(model, f"llama.cpp:{demo_gguf}", max_rows=settings["n_thoughts"]).think(test_queries, **kw).ids
    assert alone == theirs


def test_the_llama_cpp_engine_refuses_what_it_cannot_do(demo: Path, demo_gguf: Path, tmp_path: Path) -> None:
    model = O1Embedder.from_pretrained(demo / "model", device="cpu", dtype="float32")
    engine = make_engine(f"llama.cpp:{demo_gguf}", model, context=64)
    with pytest.raises(InputError, match="early exit"):
        engine.write([[1, 2, 3]], [8], ThinkConfig(exit_eps=0.01), [0])
    with pytest.raises(InputError, match="does not fit llama.cpp's context of 64"):
        engine.write([list(range(10, 50))], [40], ThinkConfig(n_thoughts=1), [0])
    copy = tmp_path / demo_gguf.name                # same name, other bytes: another identity (thought cache)
    export_gguf(demo / "model", copy, qtype="q8_0")
    assert make_engine(f"llama.cpp:{copy}", model).identity != engine.identity


def test_o1emb_think_runs_on_llama_cpp(demo: Path, test_queries: list[str], tmp_path: Path, capsys) -> None:
    gguf = tmp_path / "demo.gguf"
    assert main(["export", str(demo / "model"), "--gguf", str(gguf)]) == 0
    capsys.readouterr()
    query = test_queries[0]
    args = ["think", "--model", str(demo / "model"), "--n-thoughts", "1", "--temperature", "0", "--max-new-tokens",
            "12", "--json", query]
    assert main([*args, "--think-engine", f"llama.cpp:{gguf}"]) == 0
    on_engine = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(args) == 0
    own = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert on_engine == own                                      # same greedy thought, either writer
    assert main([*args, "--think-engine", f"llama.cpp:{tmp_path / 'none.gguf'}"]) == 2
    assert "no such GGUF file" in capsys.readouterr().err



def test_a_llama_with_another_rotary_base_gives_our_logits_on_llama_cpp(tiny_llama_path: Path, tmp_path: Path) -> None:
    """The Llama layout (q/k rows interleaved for llama.cpp's rotary) and a rotary base other than the
    default, written where transformers 5 writes it (``rope_parameters``), SmolLM2's case: at f32 the
    next-token logits after each prompt are ours. (Greedy thoughts of a tiny random model could not
    tell: they came out the same with the base or the interleave left wrong.)"""
    import llama_cpp
    import torch

    folder = tmp_path / "llama"
    with_rope(tiny_llama_path, folder, {"rope_theta": 100000.0, "rope_type": "default"})
    gguf = tmp_path / "llama.gguf"
    assert main(["export", str(folder), "--gguf", str(gguf), "--type", "f32"]) == 0
    ours = O1Embedder.from_pretrained(folder, device="cpu", dtype="float32")
    llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=0, logits_all=True, verbose=False)
    for query in ["alpha river tower", "which bridge crosses the ocean and the river near the old tower"]:
        ids = ours.template.query_prompt_ids(query)
        llm.reset()
        llm.eval(ids)
        theirs = np.asarray(llm.scores[len(ids) - 1])
        with torch.no_grad():
            mine = ours.model(torch.tensor([ids])).logits[0, -1].float().numpy()
        assert np.abs(theirs[: len(mine)] - mine).max() < 1e-3 * max(1.0, float(np.abs(mine).max())), query
