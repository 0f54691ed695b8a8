"""Thinking engines (o1embedder.engines): a local OpenAI-compatible stub server writes the thoughts (the
llama.cpp engine, on the real llama-cpp-python: tests/test_llamacpp.py); the vectors are then exactly the given-thoughts path's for those thoughts;
EOS and the budget stop a thought; retries, errors and refused settings; engines key the thought cache."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "browser"))
from o1embedder.engines import attach, make_engine  # noqa: E402
from o1embedder.errors import InputError, ModelError  # noqa: E402
from o1embedder.model import O1Embedder  # noqa: E402
from o1embedder.retrieval.thought_cache import model_numerics  # noqa: E402

QUERIES = ["alpha river tower", "which bridge crosses the ocean", "copper and silver"]


def _thought(prompt: list[int], seed: int, eos: int) -> list[int]:
    """A deterministic 'thought' for a prompt and seed: 2-9 tokens, then EOS."""
    length = 2 + (seed + len(prompt)) % 8
    return [10 + (seed * 7 + k * 13 + sum(prompt)) % 200 for k in range(length)] + [eos, 11, 12]


@pytest.fixture
def model(tiny_qwen_path: Path) -> O1Embedder:
    return O1Embedder.from_pretrained(tiny_qwen_path, device="cpu", dtype="float32")


def _check_vectors(model: O1Embedder, budget: int) -> list[list[list[int]]]:
    found = model.think(QUERIES, n_thoughts=2, max_new_tokens=budget, temperature=0.7, seed=3, show_progress=False)
    assert all(len(per) == 2 for per in found.ids)
    given = model.encode_queries(QUERIES, thoughts=found.ids, show_progress=False)
    assert np.abs(found.pooled - given).max() < 1e-5                     # the given-thoughts path's vectors
    again = model.encode_queries(QUERIES, n_thoughts=2, max_new_tokens=budget, temperature=0.7, seed=3,
                                 show_progress=False)
    assert np.abs(again - found.pooled).max() < 1e-6
    return found.ids


# -- llama.cpp: the real one in tests/test_llamacpp.py (the llamacpp extra; CI builds it) -----------------

def test_a_missing_llama_cpp_gets_one_line(model, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(InputError, match=r"o1embedder\[llamacpp\]"):
        make_engine(f"llama.cpp:{tmp_path / 'm.gguf'}", model)
    with pytest.raises(InputError, match="unknown thinking engine"):
        make_engine("vllm-offline:x", model)
    assert make_engine("one-pass", model) is None and "engine" not in model_numerics(model)


def test_one_pass_fast_is_the_models_loop_with_fast_decoding(tiny_llama_path: Path, capsys) -> None:
    """``--think-engine one-pass-fast``: no engine object, the model's own loop with decode="fast", keyed apart
    in the thought cache; through the command line a user runs."""
    from o1embedder.cli import main

    model = O1Embedder.from_pretrained(tiny_llama_path, device="cpu", dtype="bfloat16")
    plain = model_numerics(model)
    attach(model, "one-pass-fast")
    assert model.engine is None and model.decode == "fast"
    assert model_numerics(model)["decode"] == "fast+f16-fused" != plain["decode"]
    args = ["think", "--model", str(tiny_llama_path), "--dtype", "bfloat16", "--n-thoughts", "1", "--temperature",
            "0", "--max-new-tokens", "6", "--json", QUERIES[0]]
    assert main([*args, "--think-engine", "one-pass-fast"]) == 0
    fast = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(args) == 0
    exact = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert fast["thoughts"] == exact["thoughts"]     # a 6-token greedy thought: no near-tie flips it here


# -- an OpenAI-compatible stub server -------------------------------------------------------------------

class Stub(BaseHTTPRequestHandler):
    state: dict = {}

    def log_message(self, *args) -> None:
        pass

    def _send(self, code: int, data: dict, **headers: str) -> None:
        body = json.dumps(data).encode()
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(200, {"data": [{"id": "o1-stub"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        s = Stub.state
        s.setdefault("bodies", []).append(body)
        if s.get("fail_first", 0) > 0:
            s["fail_first"] -= 1
            return self._send(503, {"error": "busy"})
        if s.get("retry_after"):                                          # 429s that say how long to wait
            return self._send(429, {"error": "slow down"}, Retry_After=s["retry_after"].pop(0))
        if s.get("reject"):
            return self._send(400, {"error": "bad prompt"})
        choices = []
        for i in range(body["n"]):
            ids = _thought(body["prompt"], body["seed"] + i, s["eos"])
            ids = ids[: ids.index(s["eos"]) + 1][: body["max_tokens"]]       # a server stops at EOS and budget
            choice = {"index": i, "text": s["tokenizer"].decode(ids)}
            if not s.get("text_only"):
                choice["token_ids"] = ids
            choices.append(choice)
        self._send(200, {"choices": list(reversed(choices))})                # any order: sorted by index


@pytest.fixture
def stub(model):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    Stub.state = {"eos": model.template.eos_id, "tokenizer": model.tokenizer}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_an_openai_server_writes_k_thoughts_per_query_with_retries(model, stub) -> None:
    Stub.state["fail_first"] = 2                                          # two 503s, then answers
    model.engine = make_engine(f"openai:{stub}", model, backoff=0.01)
    assert model.engine.identity.endswith("#o1-stub")                    # the first model of /models
    ids = _check_vectors(model, budget=4)
    first = Stub.state["bodies"][2]
    assert first["n"] == 2 and first["max_tokens"] == 4 and first["stop_token_ids"] == [model.template.eos_id]
    assert first["prompt"] in [model.template.query_prompt_ids(q) for q in QUERIES]
    for q, per in enumerate(ids):
        prompt = model.template.query_prompt_ids(QUERIES[q])
        seed = next(b["seed"] for b in Stub.state["bodies"] if b["prompt"] == prompt)
        for s, thought in enumerate(per):
            expect = _thought(prompt, seed + s, model.template.eos_id)
            assert thought == expect[: min(4, expect.index(model.template.eos_id))]
    assert model_numerics(model)["engine"] == model.engine.identity


def test_an_openai_server_is_waited_for_as_long_as_its_retry_after_says(model, stub, monkeypatch) -> None:
    import o1embedder.engines.openai as engine_module

    slept: list[float] = []
    monkeypatch.setattr(engine_module.time, "sleep", slept.append)
    Stub.state["retry_after"] = ["0.25", "120", "Wed, 21 Oct 2015 07:28:00 GMT"]
    model.engine = make_engine(f"openai:{stub}#o1-stub", model, backoff=0.5)
    n = model.settings.think.n_thoughts
    found = model.engine.write([model.template.query_prompt_ids(QUERIES[0])], [4], model.settings.think,
                               list(range(7, 7 + n)))
    assert len(found) == n and len(Stub.state["bodies"]) == 4
    assert slept == [0.25, engine_module.MAX_WAIT, 0.5 * 2 ** 2]     # its seconds, capped; a date: the backoff


def test_an_openai_server_without_ids_and_its_errors(model, stub) -> None:
    Stub.state["text_only"] = True
    model.engine = make_engine(f"openai:{stub}#o1-stub", model)
    found = model.think(QUERIES[:1], n_thoughts=1, max_new_tokens=6, show_progress=False)
    body, eos = Stub.state["bodies"][-1], model.template.eos_id
    sent = _thought(body["prompt"], body["seed"], eos)
    sent = sent[: sent.index(eos) + 1][:6]                               # what the stub answered, as text
    want = model.tokenizer.encode(model.tokenizer.decode(sent), add_special_tokens=False)
    assert found.ids[0][0] == (want[: want.index(eos)] if eos in want else want)[:6]
    Stub.state["reject"] = True
    with pytest.raises(ModelError, match="HTTP 400"):
        model.think(QUERIES[:1], n_thoughts=1, show_progress=False)
    dead = make_engine("openai:http://127.0.0.1:9/v1#x", model, retries=1, backoff=0.01, timeout=2)
    with pytest.raises(ModelError, match="no answer after 2 attempts"):
        dead.write([[1, 2]], [4], SimpleNamespace(n_thoughts=1, temperature=0.1, top_p=1.0, repetition_penalty=1.0,
                                                  exit_eps=0.0, no_repeat_ngram_size=0), [5])


# -- the entry points users run: o1emb search and o1emb serve with --think-engine ------------------------

def test_o1emb_search_thinks_on_the_engine(model, stub, tiny_qwen_path: Path, tmp_path: Path, capsys) -> None:
    from live_server import build_small_index

    from o1embedder.cli import main

    index = build_small_index(tiny_qwen_path, tmp_path / "index")
    args = ["search", "--index", str(index), "--json", "--no-cache", "--n-thoughts", "2", "--max-new-tokens", "5",
            "--temperature", "0.7", "--seed", "3", "--k", "3", QUERIES[1]]
    assert main([*args, "--think-engine", f"openai:{stub}#o1-stub"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert Stub.state["bodies"] and all(b["prompt"] == model.template.query_prompt_ids(QUERIES[1])
                                        for b in Stub.state["bodies"])
    model.engine = make_engine(f"openai:{stub}#o1-stub", model)
    found = model.think(QUERIES[1:2], n_thoughts=2, max_new_tokens=5, temperature=0.7, seed=3, show_progress=False)
    assert printed["thoughts"] == found.texts[0]                          # the stub's thoughts, as texts
    assert main(args) == 0                                                # the one-pass loop thinks otherwise
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["thoughts"] != printed["thoughts"]
    Stub.state["bodies"] = []                                             # think="auto": its thinking queries too
    assert main([*args, "--auto-think", "1.0", "--think-engine", f"openai:{stub}#o1-stub"]) == 0
    auto = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert Stub.state["bodies"] and auto["thoughts"] == printed["thoughts"] and auto["hits"] == printed["hits"]


def test_o1emb_serve_thinks_on_the_engine(model, stub, tiny_qwen_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    import httpx
    from live_server import build_small_index, cli_server

    index = build_small_index(tiny_qwen_path, tmp_path / "index")
    args = ("--index", str(index), "--n-thoughts", "2", "--max-new-tokens", "5", "--temperature", "0.7",
            "--seed", "3", "--threads", "1", "--query-cache", "0", "--dtype", "float32", "--think-engine", f"openai:{stub}#o1-stub")
    with cli_server(*args, log=tmp_path / "server.log") as (url, _):
        answer = httpx.post(url + "/v1/embeddings", json={"input": QUERIES[:2], "input_type": "query"},
                            timeout=60).json()
        searched = httpx.post(url + "/v1/search", json={"query": QUERIES[0], "k": 2}, timeout=60).json()
    model.engine = make_engine(f"openai:{stub}#o1-stub", model)
    want = model.encode_queries(QUERIES[:2], n_thoughts=2, max_new_tokens=5, temperature=0.7, seed=3,
                                show_progress=False)
    got = np.array([row["embedding"] for row in sorted(answer["data"], key=lambda r: r["index"])])
    assert np.abs(got - want).max() < 1e-4                               # the stub's thoughts, our model's vector
    assert searched["thoughts"] == model.think(QUERIES[:1], n_thoughts=2, max_new_tokens=5, temperature=0.7, seed=3,
                                               show_progress=False).texts[0]


def test_o1emb_eval_mine_and_fit_policy_think_on_the_engine(stub, tiny_qwen_path: Path, tiny_beir: Path, tmp_path: Path,
                                                 capsys) -> None:
    """``--think-engine`` of the commands configured by settings (``think.engine``): every thinking query
    of eval, mine and fit-policy goes to the engine."""
    from o1embedder.cli import main

    data = tiny_beir / "alpha"
    engine = ["--think-engine", f"openai:{stub}#o1-stub", "--n-thoughts", "1", "--max-new-tokens", "4",
              "--dtype", "float32", "--cache", str(tmp_path / "cache")]
    assert main(["eval", "--model", str(tiny_qwen_path), "--data", str(data), "--out", str(tmp_path / "r.json"),
                 *engine]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    prompts = {tuple(b["prompt"]) for b in Stub.state["bodies"]}
    assert report["num_queries"] == 5 and len(prompts) == 5              # each test query thought on the stub
    Stub.state["bodies"] = []
    assert main(["mine", "--data", str(data), "--split", "train", "--retriever", str(tiny_qwen_path), "--negatives",
                 "2", "--ranks", "1-10", "--out", str(tmp_path / "rows.jsonl"), *engine]) == 0
    assert len({tuple(b["prompt"]) for b in Stub.state["bodies"]}) == 14  # the 14 training queries
    Stub.state["bodies"] = []
    assert main(["fit-policy", "--model", str(tiny_qwen_path), "--data", str(tmp_path / "rows.jsonl"), "--out",
                 str(tmp_path / "with-policy"), "--calibration", "0.25", "--sample", "2", "--dtype", "float32",
                 "--no-cache", "--no-progress", "--think-engine", f"openai:{stub}#o1-stub"]) == 0
    assert len({tuple(b["prompt"]) for b in Stub.state["bodies"]}) == 14  # the labels' thoughts, on the stub
    assert (tmp_path / "with-policy" / "think_policy.json").is_file()
    capsys.readouterr()
