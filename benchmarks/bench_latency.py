"""Query latency as users see it: one query at a time, p50 and p95, in-process and through `o1emb serve`.

    python benchmarks/bench_latency.py [--shape smollm2|toy|both] [--queries 20] [--new-tokens 64]
                                       [--dtype auto] [--decode auto] [--no-server]

Paths, for one query each (distinct query texts, no cache):
- ``no-think``: the no-thinking vector (one forward);
- ``think-k1``, ``think-k3``: thinking with k = 1 or 3 samples of ``--new-tokens`` tokens (the EOS
  row of the random LM head is zeroed, so no thought stops early: every one runs to the budget, the
  worst case and the same work on every query; ``thought_tokens`` reports it), then the vector at
  ``<emb>``.

In-process: ``O1Embedder.encode_queries([q], ...)``. Served: ``POST /v1/embeddings`` with
``input_type: query`` to an ``o1emb serve`` child process on a loopback port (query cache off), timed
at the client. Shapes: ``smollm2`` is a random model of SmolLM2-135M's shape (hidden 576, 30 layers,
9/3 heads, vocabulary 49,152, tied); ``toy`` is the demo's (Qwen2, hidden 128, 4 layers, 4 heads,
vocabulary 1,200). ``--decode`` picks the decode path in-process (``auto``: static for these shapes).
``--modes``: ``one-pass`` (that path), ``one-pass-fast`` (``decode="fast"``: one-row steps on fused float16
copies of the weights, model/onequery.py), ``one-pass-compiled`` (``decode="compiled"``: that step under
``torch.compile``; compiled in the warm-up, whose seconds each row reports as ``warmup_s``) and
``llama.cpp-TYPE`` (the llama.cpp engine on the model exported at TYPE) each get their thinking rows.
Each thinking row also gets ``ms_per_token`` (its p50 minus the no-think p50, over the thought tokens:
one decode step) and ``floor_ms_per_token``: the model's weight bytes (in the dtype it runs in; a tied
embedding counted once, as the LM head streams it every step) over the machine's memory bandwidth,
measured in the same run as a STREAM-like copy (``bandwidth_gbs``: bytes read + written per second,
over buffers of 2 x ``--stream-mib`` MiB, far beyond the last-level cache; best of 5 with this
process's threads). A decode step cannot be faster than reading every weight once. This machine's
bandwidth moves within minutes, so it is measured again just before each mode runs, and each row's
floor uses that figure (its ``bandwidth_gbs``); the top-level ``bandwidth_gbs`` is the first.
Writes ``benchmarks/results/bench_latency.json``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import torch
from _common import report, smollm2_config
from bench_serving import Server

from o1embedder.model import O1Embedder

LOOPS = {"one-pass-fast": "fast", "one-pass-compiled": "compiled"}
"""Modes that run our own loop with another ``decode`` mode."""
WORDS = ("tower river bridge designer castle museum painter city harbour novel opera garden station "
         "village mountain lake poet architect engineer composer").split()


def queries(n: int, offset: int = 0) -> list[str]:
    return [f"who was the {WORDS[(i * 7 + offset) % len(WORDS)]} of the {WORDS[(i * 3 + offset) % len(WORDS)]} "
            f"near {WORDS[(i * 5 + offset + 1) % len(WORDS)]} number {i + offset}" for i in range(n)]


def build(shape: str, folder: Path) -> Path:
    from transformers import AutoModelForCausalLM, Qwen2Config

    from o1embedder.toy import train_tokenizer

    if shape == "smollm2":
        tokenizer = train_tokenizer(vocab_size=4000, with_special_tokens=True, family="llama")
        config = smollm2_config(pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                bos_token_id=tokenizer.bos_token_id)
    else:
        tokenizer = train_tokenizer(vocab_size=1200, with_special_tokens=True, family="qwen2")
        config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                             num_attention_heads=4, num_key_value_heads=2, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():   # an EOS logit of 0 is never sampled at temperature 0.1: thoughts run to the budget
        model.get_output_embeddings().weight[tokenizer.eos_token_id] = 0
    out = folder / shape
    O1Embedder(model, tokenizer).save_pretrained(out)
    return out


PATHS = {"no-think": {"think": False}, "think-k1": {"n_thoughts": 1}, "think-k3": {"n_thoughts": 3}}


def bandwidth_gbs(mib: int = 512, repeats: int = 5) -> float:
    """Copy bandwidth (read + write, GB/s) of ``mib`` MiB float32 buffers, best of ``repeats``."""
    n = mib * 2**20 // 4
    src, dst = torch.rand(n), torch.empty(n)
    dst.copy_(src)                                                       # touch every page first
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return 2 * n * 4 / best / 1e9


def weight_bytes(path: Path, dtype: str) -> int:
    """Bytes a decode step streams: every parameter once (a tied embedding is the LM head) in ``dtype``."""
    model = O1Embedder.from_pretrained(path, device="cpu", dtype=dtype)
    seen, total = set(), 0
    for p in model.model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel() * p.element_size()
    return total


def engine_file(path: Path, mode: str, tmp: Path) -> Path:
    """The shape's model exported for ``mode`` (``llama.cpp-TYPE``) by o1emb export."""
    from o1embedder.export import export_gguf

    kind, _, qtype = mode.partition("-")
    if kind != "llama.cpp" or not qtype:
        raise SystemExit(f"unknown mode {mode!r}: one-pass or llama.cpp-TYPE (f16, bf16, q8_0, q4_0, ...)")
    return export_gguf(path, tmp / f"{path.name}-{qtype}.gguf", qtype=qtype)


def gguf_tensor_bytes(path: Path) -> int:
    """Bytes of a GGUF file's tensor data: what llama.cpp streams per decode step."""
    from gguf import GGUFReader

    return sum(int(t.n_bytes) for t in GGUFReader(str(path)).tensors)


def _row(shape: str, where: str, path: str, mode: str, values: dict[str, float], tokens: float, no_think: float,
         floor: float, bandwidth: float) -> dict[str, Any]:
    """A table row; ``ms_per_token`` is (p50 - the one-pass no-think p50) / thought tokens: for an engine
    it also carries the given-thoughts forward that makes the vector."""
    per_token = (values["p50_ms"] - no_think) / tokens if tokens else None
    return {"shape": shape, "where": where, "path": path, "mode": mode, "p50_ms": values["p50_ms"],
            "p95_ms": values["p95_ms"], "thought_tokens": tokens,
            "ms_per_token": None if per_token is None else round(per_token, 2),
            "floor_ms_per_token": round(floor, 2), "bandwidth_gbs": round(bandwidth, 1),
            "x_floor": None if per_token is None else round(per_token / floor, 2),
            **({"warmup_s": values["warmup_s"]} if "warmup_s" in values else {})}


def print_rows(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        per = "" if r["ms_per_token"] is None else f"  {r['ms_per_token']:7.2f} ms/token ({r['x_floor']}x floor " \
            f"{r['floor_ms_per_token']})"
        print(f"{r['shape']:<8} {r['where']:<11} {r['mode']:<15} {r['path']:<9} p50 {r['p50_ms']:8.1f} ms  "
              f"p95 {r['p95_ms']:8.1f} ms{per}", flush=True)


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return {"p50_ms": round(statistics.median(ms), 1), "p95_ms": round(p95, 1)}


def in_process(path: Path, n: int, new: int, dtype: str, decode: str, engine: str | None = None
               ) -> dict[str, dict[str, float]]:
    """Each path's p50/p95 over ``n`` single queries; ``engine`` (``llama.cpp:FILE``): its thinking rows."""
    from o1embedder.engines import attach

    model = attach(O1Embedder.from_pretrained(path, device="cpu", dtype=dtype), engine)
    model.decode = decode
    out: dict[str, dict[str, float]] = {}
    for name, options in PATHS.items():
        if engine and not options.get("think", True):
            continue                                                     # no thinking: no engine involved
        kwargs = {**options, "max_new_tokens": new, "temperature": 0.1, "top_p": 0.9, "seed": 0,
                  "show_progress": False}
        start = time.perf_counter()
        for q in queries(2, offset=1000):                                 # warm-up (compiles where compiled)
            model.encode_queries([q], **kwargs)
        warmup = time.perf_counter() - start
        times = []
        for q in queries(n, offset=100 * list(PATHS).index(name)):
            start = time.perf_counter()
            model.encode_queries([q], **kwargs)
            times.append(time.perf_counter() - start)
        out[name] = {**percentiles(times), "warmup_s": round(warmup, 1)}
        if options.get("think", True):
            found = model.think(queries(4, offset=2000), **{k: v for k, v in kwargs.items() if k != "think"})
            out[name]["thought_tokens"] = statistics.mean(len(t) for per in found.ids for t in per)
    return out


def served(path: Path, n: int, new: int, dtype: str, log: Path) -> dict[str, dict[str, float]]:
    server = Server(path, "--dtype", dtype, "--query-cache", "0", "--max-wait-ms", "0", log=log)
    try:
        server.wait()
        out = {}
        with httpx.Client(timeout=600) as http:
            for name, options in PATHS.items():
                body = {"input_type": "query", "max_new_tokens": new, "temperature": 0.1, "top_p": 0.9,
                        "seed": 0, **options}
                http.post(server.url + "/v1/embeddings", json={**body, "input": "warm up query"}).raise_for_status()
                times = []
                for q in queries(n, offset=100 * len(out) + 50):
                    start = time.perf_counter()
                    http.post(server.url + "/v1/embeddings", json={**body, "input": q}).raise_for_status()
                    times.append(time.perf_counter() - start)
                out[name] = percentiles(times)
        return out
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=["smollm2", "toy", "both"], default="both")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--decode", default="auto", choices=["auto", "static", "generic"])
    parser.add_argument("--no-server", action="store_true")
    parser.add_argument("--stream-mib", type=int, default=512, help="MiB per buffer of the bandwidth copy")
    parser.add_argument("--modes", default="one-pass,llama.cpp-f16,llama.cpp-q8_0,llama.cpp-q4_0",
                        help="thinking engines, comma-separated: one-pass, one-pass-fast (decode=\"fast\"), "
                             "one-pass-compiled (decode=\"compiled\") and/or "
                             "llama.cpp-TYPE (TYPE: a GGUF type of o1emb export; needs llama-cpp-python)")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bandwidth = bandwidth_gbs(args.stream_mib)
    print(f"memory bandwidth (copy, read + write): {bandwidth:.1f} GB/s")
    rows: list[dict[str, Any]] = []

    def now() -> float:
        """The copy bandwidth again, just before a mode runs (this machine's moves within minutes)."""
        found = bandwidth_gbs(args.stream_mib)
        print(f"memory bandwidth before the next mode: {found:.1f} GB/s")
        return found

    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        for shape in (["smollm2", "toy"] if args.shape == "both" else [args.shape]):
            path = build(shape, Path(tmp))
            size = weight_bytes(path, args.dtype)
            bw = now()
            floor = size / (bw * 1e9) * 1000
            where = {"in-process": in_process(path, args.queries, args.new_tokens, args.dtype, args.decode)}
            if not args.no_server:
                where["o1emb serve"] = served(path, args.queries, args.new_tokens, args.dtype, Path(tmp) / "serve.log")
            for place, found in where.items():
                for name, values in found.items():
                    tokens = where["in-process"][name].get("thought_tokens", 0)   # same queries, seed, settings
                    rows.append(_row(shape, place, name, "one-pass", values, tokens, found["no-think"]["p50_ms"],
                                     floor, bw))
            no_think = where["in-process"]["no-think"]["p50_ms"]
            for mode in (m for m in modes if m in LOOPS):   # our loop, other decode modes (model/onequery.py)
                bw = now()
                found = in_process(path, args.queries, args.new_tokens, args.dtype, LOOPS[mode])
                for name, values in found.items():
                    if name != "no-think":
                        rows.append(_row(shape, "in-process", name, mode, values, values["thought_tokens"],
                                         no_think, size / (bw * 1e9) * 1000, bw))
            for mode in (m for m in modes if m != "one-pass" and m not in LOOPS):
                gguf = engine_file(path, mode, Path(tmp))
                bw = now()
                found = in_process(path, args.queries, args.new_tokens, args.dtype, args.decode,
                                   engine=f"llama.cpp:{gguf}")
                for name, values in found.items():
                    rows.append(_row(shape, "in-process", name, mode, values, values.get("thought_tokens", 0),
                                     no_think, gguf_tensor_bytes(gguf) / (bw * 1e9) * 1000, bw))
            print_rows([r for r in rows if r["shape"] == shape])
    from o1embedder.checkpoints import resolve_dtype

    report("bench_latency", rows, {"bandwidth_gbs": round(bandwidth, 2), "stream_mib": args.stream_mib,
                                   "queries": args.queries, "new_tokens": args.new_tokens,
                                   "dtype": str(resolve_dtype(args.dtype, torch.device("cpu"))),
                                   "decode": args.decode,
                                   "shapes": {"smollm2": "Llama hidden 576, 30 layers, 9/3 heads, vocab 49152, random",
                                              "toy": "Qwen2 hidden 128, 4 layers, 4/2 heads, vocab ~1200, random"}})


if __name__ == "__main__":
    main()
