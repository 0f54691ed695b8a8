"""The ``hf:`` expert on the library's decode loop: batch-independent seeded samples, greedy parity with
``model.generate``, ``.gguf`` paths, dtype resolution, clear errors."""

from __future__ import annotations

import asyncio

import pytest
import torch

from o1embedder import checkpoints
from o1embedder.errors import InputError
from o1embedder.synthesis import BackendOptions, GenRequest, SamplingParams
from o1embedder.synthesis.hf_backend import HFBackend, sample_keys


def _request(query: str, n: int = 3, seed: int | None = 7) -> GenRequest:
    content = f"Think about a plausible response to address the query.\n\nQuery: {query}\nResponse:"
    return GenRequest([{"role": "user", "content": content}], n, seed, query)


def _options(**sampling) -> BackendOptions:
    params = {"temperature": 1.0, "top_p": 0.95, "max_tokens": 10, **sampling}
    return BackendOptions(sampling=SamplingParams(**params), batch_size=3, device="cpu", dtype="float32")


async def _complete(backend: HFBackend, requests: list[GenRequest]) -> list:
    await backend.start()
    try:
        return await asyncio.gather(*(backend.complete(r) for r in requests))
    finally:
        await backend.aclose()


def test_seeded_samples_do_not_depend_on_the_batch(tiny_qwen_path):
    target = _request("who designed the tower of pisa")
    others = [_request(f"an unrelated and much longer question number {i} " * (i + 1), seed=i) for i in range(4)]
    [alone] = asyncio.run(_complete(HFBackend(str(tiny_qwen_path), _options()), [target]))
    batched = asyncio.run(_complete(HFBackend(str(tiny_qwen_path), _options()), [others[0], target, *others[1:]]))
    assert len(alone.texts) == 3 and len(set(alone.texts)) > 1  # sampled: the n samples differ
    assert batched[1].texts == alone.texts and batched[1].tokens == alone.tokens
    # another seed gives other samples; no seed gives fresh random ones
    [reseeded] = asyncio.run(_complete(HFBackend(str(tiny_qwen_path), _options()), [_request(target.key, seed=8)]))
    assert reseeded.texts != alone.texts
    assert sample_keys(7, 3) == sample_keys(7, 3) and sample_keys(None, 3) != sample_keys(None, 3)


def test_mixed_sample_counts_in_one_batch(tiny_qwen_path):
    requests = [_request("first question", n=3), _request("second question", n=1), _request("third", n=2)]
    results = asyncio.run(_complete(HFBackend(str(tiny_qwen_path), _options()), requests))
    assert [len(r.texts) for r in results] == [3, 1, 2]
    [alone] = asyncio.run(_complete(HFBackend(str(tiny_qwen_path), _options()), [requests[1]]))
    assert alone.texts == results[1].texts


def _eos_bias(model, eos_id: int, bias: float) -> None:
    """Give the LM head a bias on EOS, so that a random tiny model stops early on some prompts."""
    head = model.get_output_embeddings()
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
        biased.bias[eos_id] = bias
    model.lm_head = biased


async def _complete_with(backend: HFBackend, requests: list[GenRequest], bias: float) -> list:
    await backend.start()
    _eos_bias(backend._model, backend._eos_id, bias)
    try:
        return await asyncio.gather(*(backend.complete(r) for r in requests))
    finally:
        await backend.aclose()


def _generate(model, tokenizer, query: str, **kwargs) -> list[int]:
    enc = tokenizer(_request(query).messages[0]["content"], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, do_sample=False, pad_token_id=tokenizer.pad_token_id, **kwargs)
    new = out[0, enc["input_ids"].shape[1]:].tolist()
    return new[:new.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in new else new


QUERIES = ["who designed the tower of pisa", "a much longer question about the history of bridges and towers",
           "where is it", "what else"]


@pytest.fixture(scope="module")
def hf_model(tiny_qwen_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(tiny_qwen_path, dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(tiny_qwen_path))


def test_greedy_matches_generate(tiny_qwen_path, hf_model):
    """Temperature 0 equals ``generate`` (greedy), also where some rows of a batch stop at EOS early."""
    model, tokenizer = hf_model
    for bias in [0.0, *(0.3 + 0.005 * i for i in range(41))]:  # the first bias that stops some rows only
        _eos_bias(model, tokenizer.eos_token_id, bias)
        expected = [_generate(model, tokenizer, q, max_new_tokens=12) for q in QUERIES]
        if bias == 0.0 or len({len(ids) < 12 for ids in expected}) == 2:
            results = asyncio.run(_complete_with(HFBackend(str(tiny_qwen_path), _options(temperature=0.0,
                                                                                         max_tokens=12)),
                                                 [_request(q, n=2) for q in QUERIES], bias))
            assert [r.texts for r in results] == [[tokenizer.decode(ids, skip_special_tokens=True)] * 2 for ids in expected], bias
            assert [r.tokens for r in results] == [2 * len(ids) for ids in expected]
            if bias:
                return
    pytest.fail("no EOS bias stops some prompts early and not others")


def test_min_tokens_matches_generate(tiny_qwen_path, hf_model):
    """With EOS the likeliest token everywhere, ``min_tokens`` holds it back exactly like ``min_new_tokens``."""
    model, tokenizer = hf_model
    _eos_bias(model, tokenizer.eos_token_id, 2.0)
    expected = [_generate(model, tokenizer, q, max_new_tokens=12, min_new_tokens=4) for q in QUERIES]
    assert all(len(ids) == 4 for ids in expected)
    results = asyncio.run(_complete_with(HFBackend(str(tiny_qwen_path), _options(temperature=0.0, max_tokens=12,
                                                                                 min_tokens=4)),
                                         [_request(q, n=1) for q in QUERIES], 2.0))
    assert [r.texts for r in results] == [[tokenizer.decode(ids, skip_special_tokens=True)] for ids in expected]


def test_head_folds_extra_stop_ids_and_holds_eos_back():
    from o1embedder.synthesis.hf_backend import _Head

    logits = torch.tensor([[0.0, 1.0, 5.0, 2.0], [3.0, 1.0, 0.0, 0.5]])
    head = _Head(lambda hidden: hidden.clone(), object(), eos_id=1, other_stops=[2], min_tokens=1)
    first, second = head(logits), head(logits)
    assert first[:, 1].tolist() == [-torch.inf, -torch.inf] and first[:, 2].tolist() == [-torch.inf, -torch.inf]
    assert second[:, 1].tolist() == [5.0, 1.0] and second[:, 2].tolist() == [-torch.inf, -torch.inf]
    assert second[:, [0, 3]].tolist() == [[0.0, 2.0], [3.0, 0.5]]


def test_gguf_path_goes_through_load_gguf(tiny_qwen_path, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    calls = []

    def fake_load_gguf(path, *, dtype):
        calls.append((path, dtype))
        return (AutoModelForCausalLM.from_pretrained(tiny_qwen_path, dtype=dtype),
                AutoTokenizer.from_pretrained(tiny_qwen_path))

    monkeypatch.setattr(checkpoints, "load_gguf", fake_load_gguf)
    gguf = tmp_path / "expert.Q4_1.gguf"
    gguf.write_bytes(b"GGUF" + bytes(60))
    options = _options()
    options.dtype = None  # None -> resolve_dtype("auto", device)
    [result] = asyncio.run(_complete(HFBackend(str(gguf), options), [_request("q")]))
    assert len(result.texts) == 3
    assert calls == [(gguf, checkpoints.resolve_dtype("auto", torch.device("cpu")))]


def test_missing_or_unusable_path(tmp_path):
    with pytest.raises(InputError, match="model folder or .gguf file not found"):
        asyncio.run(_complete(HFBackend(str(tmp_path / "nope"), _options()), [_request("q")]))
    stray = tmp_path / "weights.bin"
    stray.write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a model folder or a .gguf file"):
        asyncio.run(_complete(HFBackend(str(stray), _options()), [_request("q")]))
