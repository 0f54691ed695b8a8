"""``o1emb rl``: GRPO on thoughts with a retrieval reward, after ``o1emb train`` (docs/rl.md).

Each step samples G thoughts per training query, rewards each by how well its one-pass vector
retrieves the positive, and moves the policy toward the better thoughts (group-relative advantages),
with a KL penalty to the model before RL and the contrastive loss kept. Resumes from OUT/checkpoint-*
made with the same settings (another setting: exit 2); a finished run is not redone. Several processes:
torchrun --nproc_per_node N -m o1embedder rl ... runs one job (DDP), written by rank 0.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..rl.config import RLConfig

_FLAGS = {  # RLConfig field -> (type, help); the flag is --field-with-dashes
    "steps": (int, "optimizer steps, one rollout each (100)"),
    "rows_per_step": (int, "training rows per step, B (8)"),
    "samples": (int, "thoughts sampled per row, G (4)"),
    "group_size": (int, "1 positive + (N-1) hard negatives per row (4)"),
    "rollout_temperature": (float, "sampling temperature of the rollouts (0.7)"),
    "rollout_top_p": (float, "nucleus mass of the rollouts (1.0)"),
    "max_new_tokens": (int, "thought budget of a rollout (48)"),
    "reward": (str, "logprob (InfoNCE log-probability of the positive) or rr (reciprocal rank)"),
    "temperature": (float, "InfoNCE temperature of the reward and contrastive term (0.02)"),
    "length_penalty": (float, "reward minus this x thought tokens / max_new_tokens (0)"),
    "kl_coef": (float, "KL penalty to the model before RL (0.04)"),
    "clip": (float, "PPO clip range, used when --updates > 1 (0.2)"),
    "updates": (int, "optimizer updates per rollout (1)"),
    "contrastive_weight": (float, "weight of InfoNCE on the sampled thoughts' vectors (1.0)"),
    "learning_rate": (float, "AdamW learning rate (5e-5)"),
    "warmup_steps": (int, "linear warm-up steps (5)"),
    "save_steps": (int, "checkpoint every N steps (25)"),
    "seed": (int, "seed of the row order and the rollouts (0)"),
    "dtype": (str, "weights dtype while training (float32)"),
    "device": (str, "torch device (default: CUDA when present, each torchrun rank its own GPU; else CPU)"),
    "mixed_precision": (str, "auto, bf16 or no (auto)"),
    "logprob_chunk": (int, "thought tokens per chunk of the log-softmax; memory and speed only (0: 64 MiB of logits)"),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rl", help="GRPO on thoughts with a retrieval reward (after train)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the O1 model to improve (an o1emb train OUT/final)")
    p.add_argument("--data", required=True, help="training rows JSONL (query, pos, neg)")
    p.add_argument("--out", required=True, help="output folder (checkpoints, rl_log.jsonl, OUT/final)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--lora", dest="mode", action="store_const", const="lora", help="LoRA (default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full", help="full fine-tuning")
    p.add_argument("--lora-r", type=int, help="LoRA rank (32)")
    p.add_argument("--lora-alpha", type=int, help="LoRA alpha (64)")
    p.add_argument("--no-export", action="store_true", help="skip writing the merged model to OUT/final")
    g = p.add_argument_group("objective and schedule (defaults in parentheses; see docs/rl.md)")
    for name, (kind, text) in _FLAGS.items():
        g.add_argument("--" + name.replace("_", "-"), type=kind, help=text)
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> RLConfig:
    from ..rl.config import RLConfig
    from ..training.config import AdapterConfig

    known = {f.name for f in fields(RLConfig)}
    data = {name: getattr(args, name) for name in _FLAGS if getattr(args, name) is not None and name in known}
    data.update(model=args.model, data=args.data, out=args.out, export_merged=not args.no_export)
    adapter = AdapterConfig(dropout=0.0)
    if args.mode:
        adapter.mode = args.mode
    if args.lora_r is not None:
        adapter.r = args.lora_r
    if args.lora_alpha is not None:
        adapter.alpha = args.lora_alpha
    data["adapter"] = adapter
    config = RLConfig.from_dict(data)
    return config.validate()


def run(args: argparse.Namespace) -> int:
    from .. import distributed
    from ..rl import rl

    out = rl(build_config(args))
    if distributed.is_main_process():
        print(f"RL model: {out}")
    return 0
