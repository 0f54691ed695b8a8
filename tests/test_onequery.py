"""The one-query decode step (model/onequery.py): one query thinking (k <= 4) in bf16 on a CPU runs on fused
float16 weight copies (decode="fast"), or the same step under torch.compile (decode="compiled"), and stays
the generic path's thoughts and vectors up to rounding."""

from __future__ import annotations

import json

import torch

from o1embedder.engines import attach
from o1embedder.model import O1Embedder
from o1embedder.model.onequery import MIN_CAPACITY, RECOMPILE_LIMIT, OneQueryStep, capacity_for
from o1embedder.model.settings import ThinkConfig
from o1embedder.model.thinking import Thinker
from o1embedder.retrieval.thought_cache import model_numerics

QUERIES = ["who designed the tower", "a b c", "what is the boiling point of water at altitude",
           "x", "lighthouse keeper history and the many storms of the northern coast"]


def _one_by_one(model: O1Embedder, decode: str, tokens: int = 10) -> list:
    model.decode = decode
    try:
        return [model.think([q], n_thoughts=1, temperature=0.0, max_new_tokens=tokens) for q in QUERIES]
    finally:
        model.decode = "auto"


def _close(runs: list, reference: list) -> None:
    """Greedy thoughts equal for all queries but at most one (a near-tie may flip under other rounding), and
    the equal ones' vectors at cosine > 0.999."""
    equal = [(a, b) for a, b in zip(runs, reference, strict=True) if a.ids == b.ids]
    assert len(equal) >= len(QUERIES) - 1
    assert min(float((a.pooled * b.pooled).sum()) for a, b in equal) > 0.999


def test_capacity_is_a_power_of_two_with_a_floor() -> None:
    assert capacity_for(1) == MIN_CAPACITY and capacity_for(MIN_CAPACITY) == MIN_CAPACITY
    assert capacity_for(MIN_CAPACITY + 1) == 2 * MIN_CAPACITY and capacity_for(1000) == 1024


def test_fast_one_row_steps_run_fused_float16_products(tiny_llama_path, monkeypatch) -> None:
    """decode="fast", one query thinking (k <= MAX_ROWS), bf16 on a CPU: every step's products (4 fused per
    layer, and the LM head) run on float16 copies, rounded back to bf16. Several queries, more samples, or
    the exact default: none."""
    model = O1Embedder.from_pretrained(tiny_llama_path, device="cpu", dtype="bfloat16")
    decoder = model._decoder()
    calls: list[torch.dtype] = []
    linear = torch.nn.functional.linear
    monkeypatch.setattr(torch.nn.functional, "linear", lambda x, w, b=None: calls.append(w.dtype) or linear(x, w, b))
    generic = _one_by_one(model, "generic")
    calls.clear()
    fast = _one_by_one(model, "fast")
    steps = sum(len(t) for f in fast for t in f.ids[0])                   # one-row steps taken (EOS excluded)
    assert calls.count(torch.float16) >= steps * (4 * len(decoder.layers) + 1) > 0
    _close(fast, generic)
    calls.clear()
    model.decode = "fast"
    sampled = model.think(QUERIES[:1], n_thoughts=3, temperature=0.7, max_new_tokens=4, seed=1)   # one query, k = 3
    assert calls.count(torch.float16) >= max(map(len, sampled.ids[0])) * (4 * len(decoder.layers) + 1) > 0
    calls.clear()
    model.think(QUERIES[:2], n_thoughts=1, temperature=0.0, max_new_tokens=4)    # two queries: bf16 products only
    model.think(QUERIES[:1], n_thoughts=5, temperature=0.7, max_new_tokens=4)    # more than MAX_ROWS samples
    model.decode = "auto"
    model.think(QUERIES[:1], n_thoughts=1, temperature=0.0, max_new_tokens=4)    # exact: bf16 products only
    assert torch.float16 not in calls


def test_copies_are_kept_and_made_again_when_a_weight_changes(tiny_llama_path) -> None:
    model = O1Embedder.from_pretrained(tiny_llama_path, device="cpu", dtype="bfloat16")
    decoder, head = model._decoder(), model.model.get_output_embeddings()
    step = OneQueryStep.for_decoder(decoder, head)
    assert step is not None and OneQueryStep.for_decoder(decoder, head) is step
    q = decoder.layers[0].self_attn.q_proj
    with torch.no_grad():
        q.weight.mul_(2)
    again = OneQueryStep.for_decoder(decoder, head)
    assert again is not step and torch.equal(again.layers[0][0][:q.out_features], q.weight.half())
    assert OneQueryStep.for_decoder(decoder.float(), head) is None          # float32: no float16 copies


def test_layouts_with_biases_and_query_key_norms() -> None:
    """Qwen2 (biased query/key/value projections) and Qwen3 (per-head query/key norms) through the one-row
    step: the generic path's greedy thoughts and vectors up to rounding."""
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    common = dict(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=128, max_position_embeddings=256)
    models = [Qwen2ForCausalLM(Qwen2Config(**common)), Qwen3ForCausalLM(Qwen3Config(head_dim=16, **common))]
    with torch.no_grad():
        for layer in models[0].model.layers:   # visible biases, so a dropped bias would show
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.uniform_(-0.5, 0.5)
        for layer in models[1].model.layers:
            layer.self_attn.q_norm.weight.uniform_(0.5, 1.5)
            layer.self_attn.k_norm.weight.uniform_(0.5, 1.5)
    cfg = ThinkConfig(n_thoughts=1, temperature=0.0, max_new_tokens=8)
    for lm in models:
        lm = lm.to(torch.bfloat16).eval()
        assert OneQueryStep.for_decoder(lm.model, lm.lm_head) is not None
        runs = {mode: [Thinker(lm.model, lm.lm_head, eos_id=1, emb_id=2, pad_id=0, decode=mode).run(
                    [prompt], [8], cfg, torch.arange(1)) for prompt in ([5, 6, 7, 8, 9], [10, 11], [12, 13, 14])]
                for mode in ("generic", "fast")}
        same = [(a, b) for a, b in zip(runs["fast"], runs["generic"], strict=True) if a.thought_ids == b.thought_ids]
        assert len(same) >= 2
        assert min(float(torch.cosine_similarity(a.vectors.float(), b.vectors.float()).min()) for a, b in same) > 0.999


def test_compiled_step_compiles_once_and_matches_the_eager_one(tiny_llama_path, capsys) -> None:
    """decode="compiled": the one-row step under torch.compile, compiled once for every query (its cache has a
    fixed capacity, so no shape changes), the eager step's thoughts and vectors up to rounding; and
    ``--think-engine one-pass-compiled`` through the command line a user runs."""
    from torch._dynamo.utils import counters

    from o1embedder.cli import main

    model = O1Embedder.from_pretrained(tiny_llama_path, device="cpu", dtype="bfloat16")
    fast = _one_by_one(model, "fast")
    before = counters["stats"]["unique_graphs"]
    compiled = _one_by_one(model, "compiled")
    step = OneQueryStep.for_decoder(model._decoder(), model.model.get_output_embeddings())
    assert step is not None and step.compile_failed is None and step._compiled is not None
    assert counters["stats"]["unique_graphs"] - before == 1
    import torch._dynamo.config as dynamo  # room for a graph per row count, capacity and remade step

    assert dynamo.recompile_limit >= RECOMPILE_LIMIT
    _close(compiled, fast)
    model.decode = "fast"       # k = 3 samples of one query: 3 rows through the same step (another graph)
    sampled_fast = model.think(QUERIES[:3], n_thoughts=3, temperature=0.7, max_new_tokens=8, seed=2, batch_size=1)
    model.decode = "compiled"
    sampled = model.think(QUERIES[:3], n_thoughts=3, temperature=0.7, max_new_tokens=8, seed=2, batch_size=1)
    model.decode = "auto"
    assert counters["stats"]["unique_graphs"] - before == 2
    pairs = [(a, b) for q, r in zip(sampled.ids, sampled_fast.ids, strict=True) for a, b in zip(q, r, strict=True)]
    assert sum(a == b for a, b in pairs) >= len(pairs) - 1 and any(pairs)
    attach(model, "one-pass-compiled")
    assert model.engine is None and model.decode == "compiled"
    assert model_numerics(model)["decode"] == "compiled+f16-fused"
    args = ["think", "--model", str(tiny_llama_path), "--dtype", "bfloat16", "--n-thoughts", "1", "--temperature",
            "0", "--max-new-tokens", "6", "--json", QUERIES[0]]
    assert main([*args, "--think-engine", "one-pass-compiled"]) == 0
    through_cli = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main([*args, "--think-engine", "one-pass-fast"]) == 0
    assert through_cli["thoughts"] == json.loads(capsys.readouterr().out.strip().splitlines()[-1])["thoughts"]


def test_the_server_compiles_the_step_before_serving(tiny_llama_path) -> None:
    """``o1emb serve --think-engine one-pass-compiled`` compiles the one-query step for the served k while
    loading, so the first request does not wait for it."""
    from torch._dynamo.utils import counters

    from o1embedder.serving.server import load_components

    components = load_components(str(tiny_llama_path), dtype="bfloat16",
                                 think_overrides={"engine": "one-pass-compiled", "n_thoughts": 2})
    model = components.model
    assert model.decode == "compiled" and model.settings.think.n_thoughts == 2
    step = OneQueryStep.for_decoder(model._decoder(), model.model.get_output_embeddings())
    assert step is not None and step._compiled is not None and step.compile_failed is None
    graphs = counters["stats"]["unique_graphs"]
    model.think([QUERIES[0]], max_new_tokens=4)                 # a request at the served k: nothing to compile
    assert counters["stats"]["unique_graphs"] == graphs


def test_a_compiler_failure_falls_back_to_the_eager_step(tiny_llama_path, monkeypatch, caplog) -> None:
    """Without a working torch.compile (no C++ compiler, say) decode="compiled" logs why once and thinks as
    decode="fast" does."""
    model = O1Embedder.from_pretrained(tiny_llama_path, device="cpu", dtype="bfloat16")
    fast = _one_by_one(model, "fast")

    def broken(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler found")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    with caplog.at_level("WARNING", logger="o1embedder.model.onequery"):
        compiled = _one_by_one(model, "compiled")
    step = OneQueryStep.for_decoder(model._decoder(), model.model.get_output_embeddings())
    assert step.compile_failed == "RuntimeError: no C++ compiler found"
    assert sum("could not build" in r.getMessage() for r in caplog.records) == 1
    assert [c.ids for c in compiled] == [f.ids for f in fast]
