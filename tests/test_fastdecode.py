"""The static decode path (model/fastdecode.py) against the generic one (the decoder's own forward and
a transformers cache): the same thoughts, the same vectors, for every supported family."""

from __future__ import annotations

import itertools

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


class _EosBias(torch.nn.Module):
    """An LM head with ``bias`` added to (or, for ``-inf``, removed from) the EOS logit."""

    def __init__(self, head: torch.nn.Module, eos: int, bias: float) -> None:
        super().__init__()
        self.head, self.eos, self.bias = head, eos, bias

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        out = self.head(hidden).clone()
        out[:, self.eos] += self.bias
        return out


def _host_reads(thinker: Thinker, prompts, budgets, cfg: ThinkConfig, keys: torch.Tensor) -> tuple[int, int]:
    """(host reads of device values during one ``run``, steps taken): every ``bool``/``int``/``float``
    of a tensor, ``item``, ``tolist``, ``nonzero``, ``cpu`` ... and boolean-mask indexing, counted where
    they enter torch (a TorchFunctionMode), the decoder's own forward (prefill, generic steps) included."""
    from torch.overrides import TorchFunctionMode

    reads = {"__bool__", "__int__", "__float__", "__index__", "item", "tolist", "nonzero", "argwhere",
             "masked_select", "cpu", "numpy", "unique"}

    class Count(TorchFunctionMode):
        n = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", "")
            index = args[1] if name == "__getitem__" and len(args) > 1 else ()
            index = index if isinstance(index, tuple) else (index,)
            if name in reads or any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index):
                Count.n += 1
            return func(*args, **(kwargs or {}))

    with Count():
        result = thinker.run(prompts, budgets, cfg, keys)
    return Count.n, max(len(t) for t in result.thought_ids)


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_decode_loop_does_not_read_the_device_every_step(temperature: float, tiny_llama: O1Embedder) -> None:
    """On an accelerator (check_every = CHECK_EVERY) the static loop reads flags back once per
    CHECK_EVERY steps, not each step: the loop used to read `done.all()` and `mask.all()` every step,
    and sampling two more values (84 reads for 40 greedy steps, 164 sampled). The generic loop keeps
    only transformers' own per-step mask check."""
    from o1embedder.model.thinking import CHECK_EVERY

    decoder = tiny_llama._decoder()
    eos = tiny_llama.template.eos_id
    head = _EosBias(tiny_llama.model.get_output_embeddings(), eos, -torch.inf)   # every row runs its budget
    prompts = [[5, 6, 7, 8], [9, 10, 11, 12]]
    found = {}
    for mode in ("static", "generic"):
        thinker = Thinker(decoder, head, eos_id=eos, emb_id=tiny_llama.template.emb_id, pad_id=0,
                          decode=mode, check_every=CHECK_EVERY)
        for new in (8, 40):
            cfg = ThinkConfig(n_thoughts=2, temperature=temperature, max_new_tokens=new)
            found[mode, new] = _host_reads(thinker, prompts, [new] * 2, cfg, torch.arange(4))
            assert found[mode, new][1] == new
    static_8, static_40 = found["static", 8][0], found["static", 40][0]
    assert static_40 <= 40 // CHECK_EVERY + 4, found
    assert static_40 - static_8 <= (40 - 8) // CHECK_EVERY, found
    generic_8, generic_40 = found["generic", 8][0], found["generic", 40][0]
    assert generic_40 - generic_8 <= (40 - 8) * (1 + 1 / CHECK_EVERY), found


def test_reading_the_flags_every_n_steps_changes_nothing(tiny_llama_path) -> None:
    """Steps run past the end are cut, and in an unpadded batch the steps run without the mask after
    a row finished are redone with it (see CHECK_EVERY): thoughts and vectors are bitwise those of a
    loop that reads every step, on every path, greedy and sampled, with and without padding."""
    from o1embedder.model.fastdecode import StaticDecoder

    model = O1Embedder.from_pretrained(tiny_llama_path, device="cpu", dtype="float32")
    decoder, eos = model._decoder(), 1
    head = _EosBias(model.model.get_output_embeddings(), eos, 4.0)   # thoughts end at different lengths
    cases = {"unpadded": ([[5, 6, 7, 8, 9], [10, 11, 12, 13, 14]], [16, 16]),
             "padded": ([[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]], [16, 0, 11])}
    cuts, lengths = [], []
    original = StaticDecoder.truncate

    def counting(self, length):
        cuts.append(self.length - length)
        return original(self, length)

    StaticDecoder.truncate = counting
    try:
        for (name, (prompts, budgets)), mode, temperature in itertools.product(
                cases.items(), ("static", "fast", "generic"), (0.0, 0.7)):
            cfg = ThinkConfig(n_thoughts=3, temperature=temperature, max_new_tokens=16)
            keys = torch.arange(len(prompts) * 3) * 7919 + 3
            runs = [Thinker(decoder, head, eos_id=eos, emb_id=2, pad_id=0, decode=mode,
                            check_every=every).run(prompts, budgets, cfg, keys) for every in (1, 3, 8)]
            lengths.append(len({len(t) for t in runs[0].thought_ids}))
            for run in runs[1:]:
                assert run.thought_ids == runs[0].thought_ids, (name, mode, temperature)
                assert run.hit_budget == runs[0].hit_budget
                assert torch.equal(run.vectors, runs[0].vectors), (name, mode, temperature)
    finally:
        StaticDecoder.truncate = original
    assert sum(n > 1 for n in lengths) >= len(lengths) // 2, lengths   # mostly rows ending at different steps
    assert any(cut > 0 for cut in cuts), "no step was taken back: the test does not exercise the cut"


def test_sync_free_sampling_draws_the_same_tokens() -> None:
    """Sorting the whole vocabulary (nothing read back) picks what the topk prefixes pick, for nuclei
    inside the first 64 tokens, inside the first 1,024, and wider."""
    from o1embedder.model.thinking import sample_next

    torch.manual_seed(0)
    logits = torch.randn(48, 5000) * torch.tensor([8.0, 2.0, 0.3]).repeat(16)[:, None]   # peaked .. flat
    keys = torch.arange(48) * 31 + 1
    for temperature, top_p in ((0.1, 0.9), (0.7, 0.9), (1.0, 0.95), (1.0, 1.0)):
        for step in range(3):
            topk = sample_next(logits, temperature, top_p, keys, step)
            full = sample_next(logits, temperature, top_p, keys, step, sync_free=True)
            assert torch.equal(topk, full), (temperature, top_p, step)


def test_caches_truncate_and_refuse_to_grow_by_it(tiny_qwen: O1Embedder) -> None:
    from o1embedder.model.thinking import _GrowingLayer, left_pad, positions_from_mask, preallocate

    decoder = tiny_qwen._decoder()
    ids, mask = left_pad([[5, 6, 7]], 0, "cpu")
    with torch.no_grad():
        out = decoder(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask), use_cache=True)
        cache = getattr(out, "cache", None) or out.past_key_values
        static = StaticDecoder.from_cache(decoder, cache, repeat=1, extra=2)
        grown = preallocate(cache, 2)
    assert isinstance(grown.layers[0], _GrowingLayer)
    static.truncate(1)
    grown.layers[0].truncate(1)
    assert static.length == 1 and grown.layers[0].keys.shape[-2] == 1
    with pytest.raises(ValueError, match="cannot truncate"):
        static.truncate(2)
    with pytest.raises(ValueError, match="cannot truncate"):
        grown.layers[0].truncate(2)
