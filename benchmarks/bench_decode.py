"""The decode loop against its floor, at the SmolLM2-135M shape.

    python benchmarks/bench_decode.py [--rows 24] [--new-tokens 64] [--prompt-tokens 40] [--reps 3]
                                      [--dtype bfloat16] [--device cpu|cuda] [--profile] [--controls]

A random ``LlamaForCausalLM`` built from SmolLM2-135M's config (hidden 576, 30 layers, 9 query / 3
key-value heads, MLP 1536, vocabulary 49,152, tied embeddings), in ``--dtype``, thinks greedily for
``--rows`` prompts of ``--prompt-tokens`` tokens, ``--new-tokens`` steps, and embeds at ``<emb>``:

- ``decode_step_ms``: the library's loop (``Thinker``, static decode: model/fastdecode.py), per step:
  (time with N new tokens - time with 0) / N, so the prefill and the ``<emb>`` step cancel out;
- ``fast_step_ms``: ``decode="fast"``: the static loop with the query heads packed for every step (the
  faster SDPA kernel here); its rounding differs from the generic path's, so ``fast_greedy_equal`` and
  ``fast_min_cosine`` say how far;
- ``generic_step_ms``: the same loop through the decoder's own forward and a transformers cache (the
  path every architecture takes, and what Llama-family models used before the static path);
- ``hf_generate_step_ms``: ``model.generate`` (greedy, ``min_new_tokens`` = N), per step, the same way;
- ``matmul_floor_ms``: the weight matrix products of one decode step alone (q, k, v, o, gate, up, down
  of every layer and the LM head, at ``--rows`` rows), with the model's own weights, timed in this run;
- ``greedy_thoughts_equal``: the static loop's thoughts equal the generic loop's (and ``generate``'s);
- ``min_cosine``: the lowest cosine between the static and the generic ``<emb>`` vectors.

``--controls`` adds a row per thought control of ``ThinkConfig`` (model/repetition.py,
model/earlyexit.py), each on the static loop and timed the same way, so its per-step cost is the
difference to ``decode_step_ms``: ``repetition_penalty`` 1.2, ``no_repeat_ngram_size`` 3, and the
early-exit checks (every 8 steps, ``exit_eps`` 1e-9 so that no row stops and every step is paid:
``controls.exit_stopped_rows`` says whether that held). Off by default (the figures above unchanged).

Times are medians of ``--reps`` interleaved rounds. ``--profile`` adds the torch profiler's top
operators of one static and one generic run. Writes ``benchmarks/results/bench_decode.json``.
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import interleaved, median, report, smollm2_config

from o1embedder.model.settings import ThinkConfig
from o1embedder.model.thinking import Thinker


def smollm2_shaped(dtype: torch.dtype) -> torch.nn.Module:
    from transformers import LlamaForCausalLM

    config = smollm2_config(max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
                            bos_token_id=1, eos_token_id=2, pad_token_id=2)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).to(dtype).eval()


def synced(fn, device: torch.device):
    """``fn`` followed by a wait for the device (CUDA runs asynchronously: time the work, not the launch)."""
    if device.type != "cuda":
        return fn

    def run():
        out = fn()
        torch.cuda.synchronize(device)
        return out

    return run


def matmul_floor(model: torch.nn.Module, rows: int) -> float:
    """Seconds of one decode step's weight matrix products at ``rows`` rows."""
    weights = []
    for layer in model.model.layers:
        a, m = layer.self_attn, layer.mlp
        weights += [a.q_proj.weight, a.k_proj.weight, a.v_proj.weight, a.o_proj.weight,
                    m.gate_proj.weight, m.up_proj.weight, m.down_proj.weight]
    weights.append(model.lm_head.weight)
    dtype = weights[0].dtype
    device = weights[0].device
    inputs = {w.shape[1]: torch.randn(rows, w.shape[1], dtype=dtype, device=device) for w in weights}

    def step() -> None:
        with torch.inference_mode():
            for w in weights:
                torch.nn.functional.linear(inputs[w.shape[1]], w)

    return median(interleaved({"floor": synced(step, device)}, 7, warmup=2)["floor"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=24)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=40)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--controls", action="store_true", help="add a row per thought control (per-step cost)")
    args = parser.parse_args()
    dtype, device = getattr(torch, args.dtype), torch.device(args.device)
    model = smollm2_shaped(dtype).to(device)
    decoder, head = model.model, model.lm_head
    gen = torch.Generator().manual_seed(1)
    prompts = torch.randint(3, 49152, (args.rows, args.prompt_tokens), generator=gen)
    prompt_lists = prompts.tolist()
    prompts = prompts.to(device)
    keys = torch.arange(args.rows)
    thinkers = {mode: Thinker(decoder, head, eos_id=2, emb_id=3, pad_id=2, decode=mode)
                for mode in ("static", "fast", "generic")}

    def think(mode: str, new: int, **controls):
        cfg = ThinkConfig(n_thoughts=1, temperature=0.0, max_new_tokens=new, **controls)
        return thinkers[mode].run(prompt_lists, [new] * args.rows, cfg, keys, embed=True)

    controls = {"repetition_penalty 1.2": {"repetition_penalty": 1.2},
                "no_repeat_ngram_size 3": {"no_repeat_ngram_size": 3},
                "early-exit checks every 8": {"exit_eps": 1e-9, "exit_every": 8}} if args.controls else {}

    def generate(new: int):
        with torch.inference_mode():
            return model.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=new,
                                  min_new_tokens=new, do_sample=False, eos_token_id=None, pad_token_id=2)

    n = args.new_tokens
    fns = {"static": lambda: think("static", n), "static-0": lambda: think("static", 0),
           "fast": lambda: think("fast", n), "fast-0": lambda: think("fast", 0),
           "generic": lambda: think("generic", n), "generic-0": lambda: think("generic", 0),
           "generate": lambda: generate(n), "generate-1": lambda: generate(1)}
    for name, kw in controls.items():
        fns[name] = lambda kw=kw: think("static", n, **kw)
        fns[name + "-0"] = lambda kw=kw: think("static", 0, **kw)
    fns = {k: synced(f, device) for k, f in fns.items()}
    times = {k: median(v) for k, v in interleaved(fns, args.reps).items()}
    static_ms = (times["static"] - times["static-0"]) / n * 1000
    generic_ms = (times["generic"] - times["generic-0"]) / n * 1000
    fast_ms = (times["fast"] - times["fast-0"]) / n * 1000
    generate_ms = (times["generate"] - times["generate-1"]) / (n - 1) * 1000
    floor_ms = matmul_floor(model, args.rows) * 1000

    static, generic, fast = think("static", n), think("generic", n), think("fast", n)
    generated = generate(n)[:, args.prompt_tokens:].tolist()
    steps = max(len(t) for t in static.thought_ids)
    equal = static.thought_ids == generic.thought_ids
    cut = [[t for t in row[:n]] for row in generated]
    equal_generate = all(row[:len(ours)] == ours for row, ours in zip(cut, static.thought_ids, strict=True))
    cos = torch.nn.functional.cosine_similarity(static.vectors.float(), generic.vectors.float(), dim=-1)
    fast_cos = torch.nn.functional.cosine_similarity(fast.vectors.float(), generic.vectors.float(), dim=-1)
    fast_equal = fast.thought_ids == generic.thought_ids

    extra = {
        "model_shape": "SmolLM2-135M (hidden 576, 30 layers, 9/3 heads, MLP 1536, vocab 49152), random weights",
        "dtype": args.dtype, "device": str(device), "rows": args.rows, "new_tokens": n, "prompt_tokens": args.prompt_tokens,
        "steps_taken": steps, "decode_step_ms": round(static_ms, 2), "generic_step_ms": round(generic_ms, 2),
        "hf_generate_step_ms": round(generate_ms, 2), "matmul_floor_ms": round(floor_ms, 2),
        "decode_over_floor": round(static_ms / floor_ms, 3), "generate_over_decode": round(generate_ms / static_ms, 3),
        "generic_over_decode": round(generic_ms / static_ms, 3),
        "fast_step_ms": round(fast_ms, 2), "fast_over_floor": round(fast_ms / floor_ms, 3),
        "generate_over_fast": round(generate_ms / fast_ms, 3), "fast_greedy_equal": bool(fast_equal),
        "fast_min_cosine": round(float(fast_cos.min()), 6),
        "greedy_thoughts_equal": bool(equal), "greedy_equal_to_generate": bool(equal_generate),
        "min_cosine": round(float(cos.min()), 6),
        "goals": {"decode_step_ms <= 1.5 x matmul_floor_ms": static_ms <= 1.5 * floor_ms,
                  "hf_generate_step_ms / decode_step_ms >= 2": generate_ms / static_ms >= 2,
                  "greedy_thoughts_equal": bool(equal), "min_cosine >= 0.9999": float(cos.min()) >= 0.9999,
                  "fast: step <= 1.5 x floor": fast_ms <= 1.5 * floor_ms,
                  "fast: generate / step >= 2": generate_ms / fast_ms >= 2,
                  "fast: greedy equal": bool(fast_equal), "fast: min_cosine >= 0.9999": float(fast_cos.min()) >= 0.9999},
        "seconds": {k: round(v, 3) for k, v in times.items()},
    }
    if args.profile:
        extra["profile"] = {mode: _profile(lambda m=mode: think(m, n)) for mode in ("static", "fast", "generic")}
    rows = [{"path": "ours (static)", "step_ms": round(static_ms, 2), "x_floor": round(static_ms / floor_ms, 2)},
            {"path": "ours (fast)", "step_ms": round(fast_ms, 2), "x_floor": round(fast_ms / floor_ms, 2)},
            {"path": "ours (generic)", "step_ms": round(generic_ms, 2), "x_floor": round(generic_ms / floor_ms, 2)},
            {"path": "HF generate", "step_ms": round(generate_ms, 2), "x_floor": round(generate_ms / floor_ms, 2)},
            {"path": "matmul floor", "step_ms": round(floor_ms, 2), "x_floor": 1.0}]
    for name in controls:
        ms = (times[name] - times[name + "-0"]) / n * 1000
        rows.insert(-2, {"path": f"ours (static) + {name}", "step_ms": round(ms, 2), "x_floor": round(ms / floor_ms, 2)})
        extra.setdefault("controls", {})[f"{name}: step_ms over decode_step_ms"] = round(ms / static_ms, 3)
    if controls:
        extra["controls"]["exit_stopped_rows"] = sum(think("static", n, **controls["early-exit checks every 8"]).stopped)
    report("bench_decode", rows, extra)
    for key in ("greedy_thoughts_equal", "greedy_equal_to_generate", "min_cosine", "fast_greedy_equal",
                "fast_min_cosine", "goals"):
        print(f"{key}: {extra[key]}")


def _profile(fn) -> list[dict[str, float | str]]:
    """The 15 operators with the most self CPU time in one call of ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    wall = time.perf_counter() - start
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    return [{"op": e.key, "self_ms": round(e.self_cpu_time_total / 1000, 1), "calls": e.count,
             "share_of_wall": round(e.self_cpu_time_total / 1e6 / wall, 3)} for e in events]


if __name__ == "__main__":
    main()
