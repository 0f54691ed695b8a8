"""GradCache vs the plain joint-training step: peak memory and time at a large contrastive batch.

    python benchmarks/bench_gradcache.py [--queries 64] [--group 8] [--hidden 256] [--layers 4] [--reps 3]

One joint step (forward + backward, thought LM + InfoNCE with in-batch and hard negatives) over
``queries`` rows of ``group`` documents each (random token ids; queries ~24 + thought 48 tokens,
documents 96 tokens) on a random-weight Qwen2 (``--hidden``/``--layers``, vocab 4096, full fine-tuning).
- ``plain``: the whole batch in one graph;
- ``gradcache``: chunks of ``--query-chunk`` queries / ``--doc-chunk`` documents (no graph for the whole batch).
Each run is a fresh subprocess; peak memory = resident-set high-water mark of the step above the state
before it; variants interleaved, median over ``--reps``. The loss and the gradient difference between
the variants are reported too (same weights, same batch). Writes ``benchmarks/results/bench_gradcache.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import reset_peak, rss_peak_kb


def _batch(args: argparse.Namespace, emb_id: int) -> dict:
    import torch

    from o1embedder.training.data import JointCollator

    g = torch.Generator().manual_seed(0)
    rand = lambda n: torch.randint(10, 4000, (n,), generator=g).tolist()  # noqa: E731
    examples = []
    for _ in range(args.queries):
        thought = rand(48)
        examples.append({"query_ids": [*rand(24), *thought, 2, emb_id], "n_lm": len(thought) + 1,
                         "doc_ids": [[*rand(96), emb_id] for _ in range(args.group)]})
    return JointCollator(pad_id=0)(examples)


def child(args: argparse.Namespace) -> dict:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from o1embedder.training.config import GradCacheConfig, LossConfig
    from o1embedder.training.forward import JointModel, joint_parts
    from o1embedder.training.gradcache import gradcache_parts

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    cfg = Qwen2Config(vocab_size=4096, hidden_size=args.hidden, num_hidden_layers=args.layers,
                      num_attention_heads=4, num_key_value_heads=2, intermediate_size=2 * args.hidden,
                      tie_word_embeddings=False)
    model = JointModel(Qwen2ForCausalLM(cfg)).train()
    batch = _batch(args, emb_id=4095)
    loss_cfg = LossConfig()
    reset_peak()
    before = rss_peak_kb()
    t0 = time.perf_counter()
    if args.variant == "plain":
        out = model(**batch)
        parts = joint_parts(out["q"], out["d"], out["lm_sum"], out["lm_count"], None, loss_cfg)
    else:
        parts = gradcache_parts(model, batch, loss_cfg, GradCacheConfig(True, args.query_chunk, args.doc_chunk))
    parts["loss"].backward()
    seconds = time.perf_counter() - t0
    peak = (rss_peak_kb() - before) / 1024
    grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    if args.save_grad:
        torch.save(grad, args.save_grad)
    return {"variant": args.variant, "peak_mb": peak, "seconds": seconds,
            "loss": {k: float(v.detach()) for k, v in parts.items()}}


def _run(base: list[str], variant: str, save: str = "") -> dict:
    cmd = [*base, "--variant", variant] + (["--save-grad", save] if save else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queries", type=int, default=64)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--query-chunk", type=int, default=8)
    p.add_argument("--doc-chunk", type=int, default=32)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variant", choices=["plain", "gradcache"], help=argparse.SUPPRESS)
    p.add_argument("--save-grad", default="", help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_gradcache.json"))
    args = p.parse_args()
    if args.variant:
        print(json.dumps(child(args)))
        return
    import tempfile

    import torch

    base = [sys.executable, __file__] + [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in
                                         ("queries", "group", "hidden", "layers", "query_chunk", "doc_chunk",
                                          "threads")]
    runs: dict[str, list[dict]] = {"plain": [], "gradcache": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for variant in ("plain", "gradcache"):                       # interleaved
                runs[variant].append(_run(base, variant, f"{tmp}/{variant}.pt" if rep == 0 else ""))
        grad_diff = float((torch.load(f"{tmp}/plain.pt") - torch.load(f"{tmp}/gradcache.pt")).abs().max())
    med = {v: {k: statistics.median(r[k] for r in rs) for k in ("peak_mb", "seconds")} for v, rs in runs.items()}
    loss_diff = max(abs(runs["plain"][0]["loss"][k] - runs["gradcache"][0]["loss"][k])
                    for k in runs["plain"][0]["loss"])
    result = {"config": {k: v for k, v in vars(args).items() if k not in {"variant", "out", "save_grad"}},
              "median": med, "peak_ratio_plain_over_gradcache": med["plain"]["peak_mb"] / med["gradcache"]["peak_mb"],
              "time_ratio_gradcache_over_plain": med["gradcache"]["seconds"] / med["plain"]["seconds"],
              "max_loss_diff": loss_diff, "max_grad_diff_float32": grad_diff, "runs": runs}
    print(f"{args.queries} queries x {args.group} docs, hidden {args.hidden}, {args.layers} layers "
          f"(CPU, random weights, float32)")
    print(f"{'variant':10} {'peak MB':>10} {'seconds':>9}")
    for v in ("plain", "gradcache"):
        print(f"{v:10} {med[v]['peak_mb']:10.1f} {med[v]['seconds']:9.2f}")
    print(f"peak ratio plain/gradcache {result['peak_ratio_plain_over_gradcache']:.2f}; time ratio "
          f"gradcache/plain {result['time_ratio_gradcache_over_plain']:.2f}; max |loss diff| {loss_diff:.1e}; "
          f"max |grad diff| {grad_diff:.1e}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
