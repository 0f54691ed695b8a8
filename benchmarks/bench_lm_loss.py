"""Thought-position LM loss vs Hugging Face full-logits causal-LM loss: peak memory and time.

    python benchmarks/bench_lm_loss.py [--vocab 32768] [--hidden 256] [--layers 2] [--batch 8] [--reps 3]

Both variants run forward + backward over the same left-padded query batch (random ids; query 24
tokens, thought 32-200 tokens, so ~half of the padded positions carry labels, as in real batches):
- ``full``: ``model(input_ids, labels=...)``: ``[B, T, V]`` logits, labels -100 off the thought;
- ``ours``: decoder, select the M thought positions, LM head on ``[M, H]`` only.
Each run is a fresh subprocess; peak memory is the resident-set high-water mark (``VmHWM`` reset
via ``/proc/self/clear_refs``) of the step above the state before it; variants are interleaved,
the median over ``--reps`` is reported with the ratio. Random weights from a ``Qwen2Config`` (CPU).
Prints a table and writes ``benchmarks/results/bench_lm_loss.json``.
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


def _batch(args: argparse.Namespace):
    import torch

    g = torch.Generator().manual_seed(0)
    lens = torch.randint(32, 201, (args.batch,), generator=g).tolist()
    width = 24 + max(lens) + 1
    ids = torch.randint(10, args.vocab, (args.batch, width), generator=g)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for r, n in enumerate(lens):
        mask[r, width - (24 + n + 1):] = 1
        labels[r, width - n - 1:] = ids[r, width - n - 1:]          # thought + EOS positions
    return ids, mask, labels


def child(args: argparse.Namespace) -> dict:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from o1embedder.model.thinking import positions_from_mask

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    cfg = Qwen2Config(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                      num_attention_heads=4, num_key_value_heads=2, intermediate_size=2 * args.hidden,
                      tie_word_embeddings=False)
    model = Qwen2ForCausalLM(cfg).train()
    ids, mask, labels = _batch(args)
    pos = positions_from_mask(mask)
    reset_peak()
    before = rss_peak_kb()
    t0 = time.perf_counter()
    if args.variant == "full":
        loss = model(input_ids=ids, attention_mask=mask, position_ids=pos, labels=labels, use_cache=False).loss
    else:
        hidden = model.get_decoder()(input_ids=ids, attention_mask=mask, position_ids=pos,
                                     use_cache=False).last_hidden_state             # [B, T, H]
        rows, cols = (labels[:, 1:] != -100).nonzero(as_tuple=True)                 # state at c predicts c+1
        logits = model.lm_head(hidden[rows, cols]).float()                          # [M, V]
        loss = torch.nn.functional.cross_entropy(logits, labels[rows, cols + 1])
    loss.backward()
    seconds = time.perf_counter() - t0
    return {"variant": args.variant, "peak_mb": (rss_peak_kb() - before) / 1024, "seconds": seconds,
            "loss": float(loss), "tokens": int((labels != -100).sum()), "positions": int(ids.numel())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vocab", type=int, default=32768)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variant", choices=["full", "ours"], help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_lm_loss.json"))
    args = p.parse_args()
    if args.variant:
        print(json.dumps(child(args)))
        return
    runs: dict[str, list[dict]] = {"full": [], "ours": []}
    base = [sys.executable, __file__, "--vocab", str(args.vocab), "--hidden", str(args.hidden), "--layers",
            str(args.layers), "--batch", str(args.batch), "--threads", str(args.threads)]
    for _ in range(args.reps):
        for variant in ("full", "ours"):                                # interleaved
            out = subprocess.run([*base, "--variant", variant], capture_output=True, text=True, check=True)
            runs[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {v: {k: statistics.median(r[k] for r in rs) for k in ("peak_mb", "seconds")} for v, rs in runs.items()}
    result = {"config": {k: v for k, v in vars(args).items() if k not in {"variant", "out"}},
              "loss_full": runs["full"][0]["loss"], "loss_ours": runs["ours"][0]["loss"],
              "label_tokens": runs["ours"][0]["tokens"], "positions": runs["ours"][0]["positions"],
              "median": med, "peak_ratio_full_over_ours": med["full"]["peak_mb"] / med["ours"]["peak_mb"],
              "time_ratio_full_over_ours": med["full"]["seconds"] / med["ours"]["seconds"], "runs": runs}
    print(f"vocab {args.vocab}, hidden {args.hidden}, {args.layers} layers, batch {args.batch}: "
          f"{result['label_tokens']} label tokens of {result['positions']} positions (CPU, random weights)")
    print(f"{'variant':8} {'peak MB':>10} {'seconds':>9}")
    for v in ("full", "ours"):
        print(f"{v:8} {med[v]['peak_mb']:10.1f} {med[v]['seconds']:9.3f}")
    print(f"peak ratio full/ours {result['peak_ratio_full_over_ours']:.2f}; time ratio "
          f"{result['time_ratio_full_over_ours']:.2f}; |loss diff| {abs(result['loss_full'] - result['loss_ours']):.2e}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
