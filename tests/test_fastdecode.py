"""The static decode path (model/fastdecode.py) against the generic one (the decoder's own forward and
a transformers cache): the same thoughts, the same vectors, for every supported family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from o1embedder.model import O1Embedder
from o1embedder.model.fastdecode import StaticDecoder, unsupported_reason
from o1embedder.model.settings import ThinkConfig
from o1embedder.model.thinking import Thinker

QUERIES = ["who designed the tower", "a b c", "what is the boiling point of water at altitude",
           "x", "lighthouse keeper history and the many storms of the northern coast"]


def _both(model: O1Embedder, **kwargs):
    found = {}
    for mode in ("generic", "static"):
        model.decode = mode
        try:
            found[mode] = model.think(QUERIES, **kwargs)
        finally:
            model.decode = "auto"
    return found["generic"], found["static"]


@pytest.mark.parametrize("family", ["qwen2", "llama"])
@pytest.mark.parametrize("temperature,n", [(0.0, 1), (0.7, 3)])
def test_static_path_gives_the_same_thoughts_and_vectors(family: str, temperature: float, n: int,
                                                         tiny_qwen: O1Embedder, tiny_llama: O1Embedder) -> None:
    model = tiny_qwen if family == "qwen2" else tiny_llama
    assert unsupported_reason(model._decoder()) is None
    generic, static = _both(model, n_thoughts=n, temperature=temperature, max_new_tokens=12, seed=4)
    assert static.ids == generic.ids
    assert any(len(t) > 0 for per in static.ids for t in per)
    assert np.allclose(static.vectors, generic.vectors, atol=1e-5)
    assert np.allclose(static.pooled, generic.pooled, atol=1e-5)


def test_static_path_in_bf16_matches_generic_in_bf16(tiny_llama_path) -> None:
    model = O1Embedder.from_pretrained(tiny_llama_path, device="cpu", dtype="bfloat16")
    generic, static = _both(model, n_thoughts=2, temperature=0.0, max_new_tokens=10, seed=1)
    assert static.ids == generic.ids
    cos = (static.pooled * generic.pooled).sum(-1)
    assert cos.min() > 0.9999, cos


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_fast_attention_kernel_changes_only_rounding(family: str, tiny_qwen: O1Embedder,
                                                     tiny_llama: O1Embedder) -> None:
    """decode="fast" packs the query heads for every step (another SDPA kernel): in float32 the same
    thoughts and vectors to 1e-5, sampled and greedy."""
    model = tiny_qwen if family == "qwen2" else tiny_llama
    generic, _ = _both(model, n_thoughts=3, temperature=0.7, max_new_tokens=12, seed=4)
    model.decode = "fast"
    try:
        fast = model.think(QUERIES, n_thoughts=3, temperature=0.7, max_new_tokens=12, seed=4)
        greedy = model.think(QUERIES, n_thoughts=1, temperature=0.0, max_new_tokens=12)
    finally:
        model.decode = "auto"
    assert fast.ids == generic.ids
    assert np.allclose(fast.vectors, generic.vectors, atol=1e-5)
    assert greedy.ids == model.think(QUERIES, n_thoughts=1, temperature=0.0, max_new_tokens=12).ids


def test_fast_decode_in_bf16_stays_close(tiny_llama_path) -> None:
    model = O1Embedder.from_pretrained(tiny_llama_path, device="cpu", dtype="bfloat16")
    model.decode = "fast"
    fast = model.think(QUERIES, n_thoughts=1, temperature=0.0, max_new_tokens=1)
    model.decode = "generic"
    generic = model.think(QUERIES, n_thoughts=1, temperature=0.0, max_new_tokens=1)
    assert fast.ids == generic.ids          # one step: the prefill decides it, the same in both
    assert (fast.pooled * generic.pooled).sum(-1).min() > 0.999


def test_qwen3_layout_with_query_and_key_norms() -> None:
    """Qwen3 normalises queries and keys per head before the rotary embedding."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=16, intermediate_size=128, max_position_embeddings=256)
    lm = Qwen3ForCausalLM(config).eval()
    with torch.no_grad():   # visible norms, so a skipped norm would show
        for layer in lm.model.layers:
            layer.self_attn.q_norm.weight.uniform_(0.5, 1.5)
            layer.self_attn.k_norm.weight.uniform_(0.5, 1.5)
    prompts = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]
    cfg = ThinkConfig(n_thoughts=2, temperature=0.0, max_new_tokens=8)
    keys = torch.arange(6)
    runs = [Thinker(lm.model, lm.lm_head, eos_id=1, emb_id=2, pad_id=0, decode=mode).run(prompts, [8] * 3, cfg, keys)
            for mode in ("generic", "static")]
    assert runs[0].thought_ids == runs[1].thought_ids
    assert torch.allclose(runs[0].vectors, runs[1].vectors, atol=1e-5)


def test_unsupported_decoders_fall_back_and_static_on_them_is_an_error() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    lm = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100)).eval()
    assert "gpt2" in unsupported_reason(lm.transformer)
    assert Thinker(lm.transformer, lm.lm_head, eos_id=1, emb_id=2, pad_id=0).static is False
    with pytest.raises(ValueError, match="not supported"):
        Thinker(lm.transformer, lm.lm_head, eos_id=1, emb_id=2, pad_id=0, decode="static")
    with pytest.raises(ValueError, match="not supported"):
        Thinker(lm.transformer, lm.lm_head, eos_id=1, emb_id=2, pad_id=0, decode="fast")
    with pytest.raises(ValueError, match="decode must be"):
        Thinker(lm.transformer, lm.lm_head, eos_id=1, emb_id=2, pad_id=0, decode="turbo")


def test_static_cache_refuses_to_overflow(tiny_qwen: O1Embedder) -> None:
    from o1embedder.model.thinking import left_pad, positions_from_mask

    decoder = tiny_qwen._decoder()
    ids, mask = left_pad([[5, 6, 7]], 0, "cpu")
    with torch.no_grad():
        out = decoder(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask), use_cache=True)
        cache = getattr(out, "cache", None) or out.past_key_values
        static = StaticDecoder.from_cache(decoder, cache, repeat=1, extra=1)
        mask = torch.cat([mask, torch.ones(1, 1, dtype=torch.long)], 1)
        static.step(torch.tensor([[8]]), mask, torch.tensor([[3]]))
        mask = torch.cat([mask, torch.ones(1, 1, dtype=torch.long)], 1)
        with pytest.raises(RuntimeError, match="static cache full"):
            static.step(torch.tensor([[9]]), mask, torch.tensor([[4]]))
