"""One query, one thought: where a one-row decode step goes, and what ``torch.compile`` makes of it.

    python benchmarks/bench_onerow.py [--rows 1] [--new-tokens 64] [--reps 3] [--variants eager,fast,compiled] [--profile]

A random ``LlamaForCausalLM`` of SmolLM2-135M's shape (hidden 576, 30 layers, 9 / 3 heads, MLP 1,536,
vocabulary 49,152, tied), bf16, a 40-token prompt, then ``--new-tokens`` greedy steps of ``--rows`` rows
(1: one query thinking once; 3: its k = 3 samples, the prompt's cache repeated) through the library's
static decode step (``model/fastdecode.py``, exact attention) and the LM head:

- ``eager``: the step as the library runs it;
- ``fast``: ``decode="fast"``: up to 4 rows the step runs through ``model/onequery.py``'s ``OneQueryStep`` (fused
  float16 copies of the bf16 weights, 4 products per layer; a zeroed cache of fixed capacity, masked);
  at more rows only the query heads are packed;
- ``compiled``: ``decode="compiled"``: that step under ``torch.compile`` (inductor, static shapes);
- ``compile``: the exact step under ``torch.compile`` (inductor, default mode; the cache length becomes a
  dynamic size after its first change);
- ``compile-autotune``: ``mode="max-autotune-no-cudagraphs"`` (inductor's own GEMM templates).

Each variant's per-step milliseconds are the median of ``--reps`` rounds (interleaved), after a first
round that compiles (``first_s``); ``equal`` says whether its greedy tokens equal eager's and
``cosine`` is the last hidden state's cosine to eager's. ``--profile`` adds the torch profiler's top
operators of one eager round. ``weights_ms`` times the step's weight products alone, each matrix once
per step in the loop's order (so from memory, not from cache), at ``--rows`` rows. Writes
``benchmarks/results/bench_onerow-ROWS.json``.
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import median, report
from bench_decode import smollm2_shaped

from o1embedder.model.fastdecode import StaticDecoder
from o1embedder.model.onequery import OneQueryStep, capacity_for

PROMPT = 40


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--variants", default="eager,fast,compiled")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    n, rows = args.new_tokens, args.rows
    model = smollm2_shaped(torch.bfloat16)
    decoder, head = model.model, model.lm_head
    prompt = torch.randint(3, 49152, (1, PROMPT), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        out = decoder(input_ids=prompt, use_cache=True)
    cache, first_hidden = out.past_key_values, out.last_hidden_state[:, -1]

    def make(kind: str):
        fast = kind in ("fast", "compiled")
        one = OneQueryStep.for_decoder(decoder, head) if fast else None
        static = StaticDecoder.from_cache(decoder, cache, repeat=rows, extra=n + 4, exact=not fast,
                                          capacity=capacity_for(PROMPT + n + 4) if one else None)
        static.onequery, static.compiled = one, kind == "compiled"
        if kind in ("eager", "fast", "compiled"):
            return static, static.step
        mode = {"compile": None, "compile-autotune": "max-autotune-no-cudagraphs"}[kind]
        return static, torch.compile(static.step, mode=mode)

    def run(static: StaticDecoder, step) -> tuple[list[int], torch.Tensor]:
        static.truncate(PROMPT)
        hidden, tokens = first_hidden.repeat(rows, 1), []
        mask = torch.ones(rows, PROMPT + n + 1, dtype=torch.long)
        with torch.inference_mode():
            for s in range(n):
                token = static.logits(head, hidden).float().argmax(-1)
                tokens.append(token)
                pos = torch.full((rows, 1), PROMPT + s)
                hidden = step(token[:, None], mask[:, :PROMPT + s + 1], pos, all_valid=True)
        return torch.cat(tokens).tolist(), hidden

    variants = args.variants.split(",")
    made, first_s, outputs = {}, {}, {}
    for kind in variants:
        start = time.perf_counter()
        made[kind] = make(kind)
        outputs[kind] = run(*made[kind])
        first_s[kind] = time.perf_counter() - start
    times: dict[str, list[float]] = {kind: [] for kind in variants}
    for rep in range(args.reps):
        for kind in variants if rep % 2 == 0 else reversed(variants):
            start = time.perf_counter()
            run(*made[kind])
            times[kind].append(time.perf_counter() - start)
    weights = [m.weight for layer in decoder.layers for m in (layer.self_attn.q_proj, layer.self_attn.k_proj,
               layer.self_attn.v_proj, layer.self_attn.o_proj, layer.mlp.gate_proj, layer.mlp.up_proj,
               layer.mlp.down_proj)] + [head.weight]
    inputs = {w.shape[1]: torch.randn(rows, w.shape[1], dtype=w.dtype) for w in weights}

    def products() -> None:
        with torch.inference_mode():
            for w in weights:
                torch.nn.functional.linear(inputs[w.shape[1]], w)

    products()
    weights_ms = median([_timed(products) for _ in range(7)]) * 1000
    eager_tokens, eager_hidden = outputs[variants[0]]
    table = []
    for kind in variants:
        ms = median(times[kind]) / n * 1000
        tokens, hidden = outputs[kind]
        table.append({"variant": kind, "ms_per_step": round(ms, 2), "first_s": round(first_s[kind], 1),
                     "equal": tokens == eager_tokens,
                     "cosine": round(float(torch.nn.functional.cosine_similarity(hidden.float(), eager_hidden.float()).min()), 6)})
    extra = {"model_shape": "SmolLM2-135M (hidden 576, 30 layers, 9/3 heads, MLP 1536, vocab 49152), random, bf16",
             "rows": rows, "prompt_tokens": PROMPT, "new_tokens": n, "weights_ms": round(weights_ms, 2),
             "weight_mb": round(sum(w.numel() * w.element_size() for w in weights) / 2**20, 1)}
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        static, step = made[variants[0]]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run(static, step)
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:10]
        total = sum(e.self_cpu_time_total for e in prof.key_averages())
        extra["profile"] = [{"op": e.key, "self_ms_per_step": round(e.self_cpu_time_total / 1000 / n, 2),
                             "calls_per_step": round(e.count / n, 1), "share": round(e.self_cpu_time_total / total, 3)}
                            for e in events]
        for e in extra["profile"]:
            print(e)
    report(f"bench_onerow-{rows}", table, extra)
    print(f"weight products alone: {weights_ms:.2f} ms per step ({extra['weight_mb']} MB)")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
