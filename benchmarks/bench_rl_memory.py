"""RL's thought-token log-probabilities: peak memory of the unchunked path vs the chunked one.

    python benchmarks/bench_rl_memory.py [--vocab 151936] [--hidden 128] [--layers 2] [--rows 4]
                                         [--samples 4] [--thought 64 128 256] [--adapter both] [--reps 1]

What one RL step computes with the thought tokens' log-probabilities, at a real vocabulary (151,936,
Qwen2.5's) on a tiny random decoder (``Qwen2Config``, tied embeddings): ``rows x samples`` sampled
sequences of a 24-token prompt + ``thought`` thought tokens + EOS + ``<emb>``, every thought token a
target (M = rows x samples x thought: 1,024, 2,048 and 4,096 by default), the reference pass (no
gradient), the policy pass (with gradient), the GRPO policy term + 0.04 x KL, backward. Two paths, each
in a fresh subprocess:
- ``unchunked``: the code before chunking, kept here as the reference: the LM head on all M selected
  hidden states at once, ``[M, V]`` float32 logits and log-softmax, for the policy and the reference;
- ``chunked``: the library's ``policy_forward`` / ``reference_logprobs`` (``o1embedder.rl.logprobs``:
  ``--chunk`` tokens at a time, 0 = the default 64 MiB of float32 logits, each chunk recomputed in the
  backward).
``--adapter``: ``lora`` (the default of ``o1emb rl``: LoRA r 32 with trainable special-token rows,
reference = adapters off; the LoRA B matrices are set random so the policy differs from the
reference), ``full`` (every weight trains; reference = a frozen copy, the policy's weights perturbed),
or ``both``. Peak memory is the resident-set high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs``) during the step, above the resident set after set-up (model, batch); with
``--reps`` > 1 the runs are interleaved and the median is reported. Each child dumps its
log-probabilities and gradients after measuring, and the parent compares the two paths: the loss
difference, the largest log-prob and gradient differences. Prints a table and writes
``benchmarks/results/bench_rl_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, reset_peak, rss_peak_kb

PROMPT = 24
KL_COEF = 0.04


# -- the path before chunking (the reference) ------------------------------------------------------
def _unchunked_token_logprobs(logits, labels, temperature: float):
    import torch

    logp = torch.log_softmax(logits.float() / temperature, dim=-1)                  # [M, V] float32
    return logp.gather(1, labels[:, None]).squeeze(1)


def unchunked_reference_logprobs(parts, batch, temperature: float):
    import torch

    from o1embedder.training.forward import JointModel

    def run(lm):
        hidden = JointModel(lm)._hidden(batch.ids, batch.mask)                       # [S, T, H]
        logits = lm.get_output_embeddings()(hidden[batch.rows, batch.cols])          # [M, V]
        return _unchunked_token_logprobs(logits, batch.labels, temperature)

    with torch.no_grad():
        if parts.reference is not None:
            return run(parts.reference)
        with parts.lm.disable_adapter():
            return run(parts.lm)


def unchunked_policy_forward(parts, batch, temperature: float):
    from o1embedder.training.forward import JointModel

    hidden = parts.joint._hidden(batch.ids, batch.mask)                              # [S, T, H]
    logits = parts.lm.get_output_embeddings()(hidden[batch.rows, batch.cols])        # [M, V]
    return _unchunked_token_logprobs(logits, batch.labels, temperature), JointModel.pool(hidden)


# -- one child: set up, measure one step, dump --------------------------------------------------------
def _parts(args: argparse.Namespace):
    import copy
    from types import SimpleNamespace

    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from o1embedder.rl.config import RLConfig
    from o1embedder.rl.loop import RLParts
    from o1embedder.training.adapters import prepare_model
    from o1embedder.training.config import AdapterConfig
    from o1embedder.training.forward import JointModel

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                      num_attention_heads=4, num_key_value_heads=2, intermediate_size=2 * args.hidden,
                      tie_word_embeddings=True)
    lm = Qwen2ForCausalLM(cfg)
    reference = None
    g = torch.Generator().manual_seed(1)
    if args.adapter == "full":
        reference = copy.deepcopy(lm).eval().requires_grad_(False)
        lm = prepare_model(lm, None, AdapterConfig(mode="full"))
        with torch.no_grad():
            for p in lm.parameters():
                p.add_(0.01 * torch.randn(p.shape, generator=g))
    else:
        special = SimpleNamespace(special_ids={args.vocab - 4, args.vocab - 3, args.vocab - 2, args.vocab - 1})
        lm = prepare_model(lm, special, AdapterConfig(mode="lora", dropout=0.0))
        with torch.no_grad():
            for name, p in lm.named_parameters():
                if "lora_B" in name:
                    p.copy_(0.02 * torch.randn(p.shape, generator=g))
    config = RLConfig(logprob_chunk=args.chunk, kl_coef=KL_COEF)
    return RLParts(o1=None, joint=JointModel(lm), reference=reference, template=None, rows=None, config=config)


def _batch(args: argparse.Namespace):
    import torch

    from o1embedder.rl.rollout import PolicyBatch

    g = torch.Generator().manual_seed(2)
    s, width = args.rows * args.samples, PROMPT + args.thought + 2                   # + EOS + <emb>
    ids = torch.randint(10, args.vocab - 10, (s, width), generator=g)
    rows = torch.arange(s).repeat_interleave(args.thought)                             # [M]
    cols = torch.arange(PROMPT - 1, PROMPT - 1 + args.thought).repeat(s)             # state before each token
    labels = ids[rows, cols + 1]
    return PolicyBatch(ids, torch.ones_like(ids), rows, cols, labels, rows.clone())


def child(args: argparse.Namespace) -> dict:
    import torch
    from safetensors.torch import save_file

    from o1embedder.rl import objective
    from o1embedder.rl.logprobs import chunk_size
    from o1embedder.rl.loop import policy_forward, reference_logprobs

    torch.set_num_threads(args.threads)
    parts, batch = _parts(args), _batch(args)
    forward, reference = ((unchunked_policy_forward, unchunked_reference_logprobs) if args.path == "unchunked"
                          else (policy_forward, reference_logprobs))
    advantages = torch.randn(batch.ids.shape[0], generator=torch.Generator().manual_seed(3))
    parts.joint.train()
    reset_peak()
    before = rss_peak_kb()
    t0 = time.perf_counter()
    ref = reference(parts, batch, args.temperature)
    logp, _ = forward(parts, batch, args.temperature)
    terms = objective.grpo_terms(logp, logp.detach(), ref, advantages, batch.token_sample)
    loss = terms["policy"] + KL_COEF * terms["kl"]
    loss.backward()
    seconds = time.perf_counter() - t0
    peak_mb = (rss_peak_kb() - before) / 1024
    grads = {n: p.grad.contiguous() for n, p in parts.joint.named_parameters() if p.grad is not None}
    save_file({"logp": logp.detach(), "ref": ref, **grads}, args.dump)
    chunk = chunk_size(parts.lm.get_output_embeddings(), args.chunk) if args.path == "chunked" else len(batch.labels)
    return {"adapter": args.adapter, "path": args.path, "chunk": chunk, "peak_mb": peak_mb, "seconds": seconds,
            "loss": float(loss), "kl": float(terms["kl"]), "tokens": int(batch.labels.numel())}


# -- the parent: interleaved children, the comparison, the table -----------------------------------------
def _compare(a: str, b: str) -> dict:
    from safetensors.torch import load_file

    x, y = load_file(a), load_file(b)
    grads = [k for k in x if k not in ("logp", "ref")]
    assert set(x) == set(y), "the paths' gradients name different tensors"
    return {"max_logp_diff": float((x["logp"] - y["logp"]).abs().max()),
            "max_ref_diff": float((x["ref"] - y["ref"]).abs().max()),
            "max_grad_diff": max(float((x[k] - y[k]).abs().max()) for k in grads),
            "max_grad": max(float(x[k].abs().max()) for k in grads), "grad_tensors": len(grads)}


def _run_pair(args: argparse.Namespace, adapter: str, thought: int, tmp: str) -> tuple[dict, dict, dict]:
    """Both paths at one shape, ``--reps`` interleaved runs each; (median rows, comparison)."""
    keep = ("vocab", "hidden", "layers", "rows", "samples", "temperature", "chunk", "threads")
    base = [sys.executable, __file__, *(x for k in keep for x in (f"--{k}", str(getattr(args, k)))),
            "--thought", str(thought), "--adapter", adapter]
    runs: dict[str, list[dict]] = {"unchunked": [], "chunked": []}
    for rep in range(args.reps):
        for path in (("unchunked", "chunked") if rep % 2 == 0 else ("chunked", "unchunked")):
            dump = str(Path(tmp) / f"{path}.safetensors")
            out = subprocess.run([*base, "--path", path, "--dump", dump], capture_output=True, text=True, check=True)
            runs[path].append(json.loads(out.stdout.strip().splitlines()[-1]))
    same = _compare(str(Path(tmp) / "unchunked.safetensors"), str(Path(tmp) / "chunked.safetensors"))
    med = {path: {**rs[0], **{k: statistics.median(r[k] for r in rs) for k in ("peak_mb", "seconds")}}
           for path, rs in runs.items()}
    return med["unchunked"], med["chunked"], {**same, "loss_diff": abs(med["unchunked"]["loss"] - med["chunked"]["loss"]),
                                              "runs": runs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vocab", type=int, default=151936)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--thought", type=int, nargs="+", default=[64, 128, 256],
                   help="thought tokens per sample; one shape per value (M = rows x samples x thought)")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--chunk", type=int, default=0, help="tokens per chunk (0: the library's default)")
    p.add_argument("--adapter", choices=["lora", "full", "both"], default="both")
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--path", choices=["unchunked", "chunked"], help=argparse.SUPPRESS)
    p.add_argument("--dump", help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_rl_memory.json"))
    args = p.parse_args()
    if args.path:
        args.thought = args.thought[0]
        print(json.dumps(child(args)))
        return
    adapters = ["lora", "full"] if args.adapter == "both" else [args.adapter]
    rows, summary = [], []
    for adapter in adapters:
        for thought in args.thought:
            with tempfile.TemporaryDirectory() as tmp:
                old, new, same = _run_pair(args, adapter, thought, tmp)
            ratio = old["peak_mb"] / new["peak_mb"]
            summary.append({"adapter": adapter, "tokens": old["tokens"], "peak_ratio": ratio,
                            "time_ratio": new["seconds"] / old["seconds"], **same})
            for path, r in (("unchunked", old), ("chunked", new)):
                rows.append({"adapter": adapter, "tokens M": r["tokens"], "path": path, "chunk": r["chunk"],
                             "peak MB": f"{r['peak_mb']:.1f}", "seconds": f"{r['seconds']:.2f}",
                             "loss": f"{r['loss']:.9f}",
                             "peak ratio": f"{ratio:.2f}x" if path == "chunked" else ""})
    print(f"vocab {args.vocab}, hidden {args.hidden}, {args.layers} layers, {args.rows} rows x {args.samples} "
          f"samples x {args.thought} thought tokens; CPU, {args.threads} threads, random weights, float32")
    keys = list(rows[0])
    widths = [max(len(k), *(len(str(r[k])) for r in rows)) for k in keys]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths)))
    for r in rows:
        print("  ".join(str(r[k]).ljust(w) for k, w in zip(keys, widths)))
    for s in summary:
        print(f"{s['adapter']} M {s['tokens']}: |loss diff| {s['loss_diff']:.1e}; max |logp diff| "
              f"{s['max_logp_diff']:.1e} (reference pass {s['max_ref_diff']:.1e}); max |grad diff| "
              f"{s['max_grad_diff']:.1e} over {s['grad_tensors']} tensors (largest |grad| {s['max_grad']:.1e}); "
              f"time chunked/unchunked {s['time_ratio']:.2f}")
    result = {"benchmark": "bench_rl_memory", "machine": machine(),
              "config": {k: v for k, v in vars(args).items() if k not in ("path", "dump", "out")},
              "rows": rows, "summary": summary}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
