"""Acceptance 5 and the backend registry: hf: on the tiny model end to end, vllm: with a fake engine,
a plugin prefix, and a light ``import o1embedder.synthesis``."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest
from synth_stub import write_rows

from o1embedder.errors import InputError
from o1embedder.synthesis import (
    BackendOptions,
    Completion,
    SamplingParams,
    SynthesisConfig,
    available_backends,
    make_backend,
    register_backend,
    synthesize,
)
from o1embedder.synthesis.backends import _REGISTRY


def test_import_is_light():
    code = ("import sys, o1embedder.synthesis, o1embedder.cli.synthesize; "
            "print(sorted(m for m in ('torch', 'transformers', 'httpx', 'vllm', 'tqdm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_hf_backend_end_to_end(tiny_qwen_path, tmp_path):
    rows, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    write_rows(rows, 6)
    options = BackendOptions(sampling=SamplingParams(temperature=1.0, max_tokens=8, min_tokens=3), batch_size=4,
                             device="cpu")
    report = synthesize(rows, out, f"hf:{tiny_qwen_path}", options=options,
                        config=SynthesisConfig(k=2, shots=1, seed=0, candidate_retries=30, progress=False))
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert report.written + report.failed == 6 and report.written >= 5
    assert report.tokens > 0
    for row in written:
        assert len(row["candidates"]) == 2 and all(c.strip() for c in row["candidates"])
        assert row["synthesis"]["backend"] == "hf" and row["synthesis"]["model"] == str(tiny_qwen_path)


class _FakeParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class _FakeLLM:
    """Stands in for ``vllm.LLM``: ``chat`` returns n outputs per conversation, echoing the query."""

    instances: list[_FakeLLM] = []

    def __init__(self, model, **kwargs):
        self.model = model
        self.calls = []
        _FakeLLM.instances.append(self)

    def chat(self, conversations, sampling_params, use_tqdm=True):
        self.calls.append((conversations, sampling_params))
        outs = []
        for conv, params in zip(conversations, sampling_params, strict=True):
            query = conv[-1]["content"].rsplit("Query:", 1)[1].split("\n")[0].strip()
            samples = [types.SimpleNamespace(text=f"thought {j} for <{query}>", token_ids=[1, 2, 3])
                       for j in range(params.kwargs["n"])]
            outs.append(types.SimpleNamespace(outputs=samples))
        return outs


def test_vllm_adapter_with_fake_engine(monkeypatch, tmp_path):
    fake = types.ModuleType("vllm")
    fake.LLM, fake.SamplingParams = _FakeLLM, _FakeParams
    monkeypatch.setitem(sys.modules, "vllm", fake)
    rows, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    data = write_rows(rows, 40)
    options = BackendOptions(sampling=SamplingParams(temperature=0.8, top_p=0.95, max_tokens=100))
    report = synthesize(rows, out, "vllm:/models/expert", options=options,
                        config=SynthesisConfig(k=3, seed=1, progress=False))
    assert report.written == 40 and report.failed == 0 and report.tokens == 40 * 9
    llm = _FakeLLM.instances[-1]
    assert llm.model == "/models/expert"
    assert sum(len(convs) for convs, _ in llm.calls) == 40 and len(llm.calls) < 40  # batched
    params = llm.calls[0][1][0].kwargs
    assert params["n"] == 3 and params["max_tokens"] == 100 and params["temperature"] == 0.8
    assert params["top_p"] == 0.95 and isinstance(params["seed"], int)
    by_query = {d["query"]: d for d in data}
    for row in map(json.loads, out.read_text().splitlines()):
        assert row["query"] in by_query
        assert row["candidates"] == [f"thought {j} for <{row['query']}>" for j in range(3)]


def test_vllm_missing_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    rows = tmp_path / "rows.jsonl"
    write_rows(rows, 3)
    with pytest.raises(InputError, match="needs vLLM"):
        synthesize(rows, tmp_path / "out.jsonl", "vllm:/x", config=SynthesisConfig(progress=False))
    assert not (tmp_path / "out.jsonl").exists()


class _WorldBackend:
    """A plugin expert: answers from a dict, like the demo's synthetic ``world:`` expert."""

    def __init__(self, target, options):
        self.name, self.max_concurrency = f"world-{target}", 4

    async def start(self):
        pass

    async def complete(self, request):
        query = request.messages[-1]["content"].rsplit("Query:", 1)[1].split("\n")[0].strip()
        return Completion([f"{query} is about the world"] * request.n, tokens=5 * request.n)

    async def aclose(self):
        pass


def test_register_backend_plugin(tmp_path, monkeypatch):
    monkeypatch.setitem(_REGISTRY, "world", _WorldBackend)  # removed again after the test
    with pytest.raises(ValueError, match="already registered"):
        register_backend("world", lambda target, options: None)
    register_backend("world", _WorldBackend)  # the same factory again is fine
    assert "world" in available_backends()
    rows, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    write_rows(rows, 5)
    report = synthesize(rows, out, "world:tiny", config=SynthesisConfig(k=2, progress=False))
    assert report.written == 5
    row = json.loads(out.read_text().splitlines()[0])
    assert row["candidates"] == [f"{row['query']} is about the world"] * 2
    assert row["synthesis"]["backend"] == "world" and row["synthesis"]["model"] == "world-tiny"


def test_unknown_or_empty_expert():
    with pytest.raises(InputError, match="unknown expert 'nope:x'"):
        make_backend("nope:x")
    with pytest.raises(InputError, match="names no target"):
        make_backend("hf:")
    with pytest.raises(InputError, match="openai:http"):
        make_backend("openai:localhost:8000")
