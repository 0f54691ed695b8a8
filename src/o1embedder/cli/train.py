"""``o1emb train``: joint training (thought LM + contrastive) of an O1 model; LoRA by default.

Any other ``--flag`` is a Hugging Face ``TrainingArguments`` flag and is passed through
(``--max_steps 100 --bf16 --gradient_accumulation_steps 4 --resume_from_checkpoint DIR``).
Precedence: built-in defaults < ``--config FILE`` (JSON/YAML, see docs/training.md) < flags given here.
"""

from __future__ import annotations

import argparse
import types
from typing import Any

from ..errors import InputError

# flag -> (section, field) of TrainConfig
_OURS = {
    "group_size": ("data_cfg", "group_size"), "thought_dropout": ("data_cfg", "thought_dropout"),
    "max_query_tokens": ("data_cfg", "max_query_tokens"),
    "max_query_thought_tokens": ("data_cfg", "max_query_thought_tokens"),
    "max_passage_tokens": ("data_cfg", "max_passage_tokens"),
    "temperature": ("loss", "temperature"), "lam": ("loss", "lam"), "distill": ("loss", "distill"),
    "lora_r": ("adapter", "r"), "lora_alpha": ("adapter", "alpha"),
    "gradcache": ("gradcache", "enabled"), "query_chunk": ("gradcache", "query_chunk"),
    "doc_chunk": ("gradcache", "doc_chunk"),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train an O1 model (joint thought LM + contrastive)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="base causal LM or O1 model (folder or hub id)")
    p.add_argument("--data", help="training rows JSONL (query, pos, neg, thought[, pos_scores, neg_scores])")
    p.add_argument("--out", help="output folder (checkpoints, OUT/final merged model, o1emb_train.json)")
    p.add_argument("--config", help="config file (JSON or YAML) with the TrainConfig sections")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--lora", dest="mode", action="store_const", const="lora", help="LoRA (default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full", help="full fine-tuning")
    g = p.add_argument_group("method (defaults: the reference settings)")
    g.add_argument("--group-size", type=int, help="1 positive + (N-1) hard negatives per query (16)")
    g.add_argument("--thought-dropout", type=float, help="rate of rows trained without thought (0.1)")
    g.add_argument("--max-query-tokens", type=int, help="query text limit (32)")
    g.add_argument("--max-query-thought-tokens", type=int, help="query + thought limit (256)")
    g.add_argument("--max-passage-tokens", type=int, help="passage limit (192)")
    g.add_argument("--temperature", type=float, help="InfoNCE temperature (0.02)")
    g.add_argument("--lam", type=float, help="contrastive weight lambda; LM gets 1 - lambda (0.8)")
    g.add_argument("--distill", action="store_const", const=True, help="add distillation from pos/neg_scores")
    g.add_argument("--lora-r", type=int, help="LoRA rank (32)")
    g.add_argument("--lora-alpha", type=int, help="LoRA alpha (64)")
    g.add_argument("--gradcache", action="store_const", const=True, help="chunked GradCache training")
    g.add_argument("--query-chunk", type=int, help="GradCache queries per chunk (8)")
    g.add_argument("--doc-chunk", type=int, help="GradCache documents per chunk (32)")
    g.add_argument("--no-export", action="store_true", help="skip writing the merged model to OUT/final")
    g.add_argument("--dtype", choices=["float32", "bfloat16", "float16"],
                   help="weights dtype while training (float32)")
    g.add_argument("--mixed-precision", choices=["auto", "bf16", "fp16", "no"],
                   help="autocast (auto: bf16 on CUDA with bf16 and on CPUs with native bf16)")
    p.set_defaults(func=run, hf_args=[])
    # Unknown --flags are Hugging Face TrainingArguments: keep them instead of failing (checked in run).
    known = p.parse_known_args

    def parse_known_args(self: argparse.ArgumentParser, args: Any = None, namespace: Any = None) -> Any:
        ns, extra = known(args, namespace)
        ns.hf_args = list(getattr(ns, "hf_args", [])) + list(extra)
        return ns, []

    p.parse_known_args = types.MethodType(parse_known_args, p)  # type: ignore[method-assign]


def hf_training_args(flags: list[str]) -> dict[str, Any]:
    """Parse pass-through flags with ``HfArgumentParser`` -> ``{field: typed value}`` for given fields only."""
    from transformers import HfArgumentParser, TrainingArguments

    if not flags:
        return {}
    names = {f.split("=", 1)[0].lstrip("-").replace("-", "_") for f in flags if f.startswith("--")}
    parser = HfArgumentParser(TrainingArguments)
    try:
        ns, unknown = parser.parse_known_args([*flags, "--output_dir", "unused"])
    except SystemExit:
        raise InputError(f"bad Trainer flags: {' '.join(flags)}") from None
    if unknown:
        raise InputError(f"unknown options {unknown} (neither o1emb train's nor TrainingArguments')")
    return {n: getattr(ns, n) for n in names if hasattr(ns, n)}


def build_config(args: argparse.Namespace) -> Any:
    from ..training.config import TrainConfig, read_config

    data = read_config(args.config) if args.config else {}
    for name in ("model", "data", "out"):
        if getattr(args, name):
            data[name] = getattr(args, name)
    if args.mode:
        data.setdefault("adapter", {})["mode"] = args.mode
    for flag, (section, key) in _OURS.items():
        value = getattr(args, flag)
        if value is not None:
            data.setdefault(section, {})[key] = value
    if args.no_export:
        data["export_merged"] = False
    for name in ("dtype", "mixed_precision"):
        if getattr(args, name):
            data[name] = getattr(args, name)
    data["training_args"] = {**data.get("training_args", {}), **hf_training_args(args.hf_args)}
    return TrainConfig.from_dict(data).validate()


def run(args: argparse.Namespace) -> int:
    from .. import distributed
    from ..training import train

    config = build_config(args)
    final = train(config)
    if distributed.is_main_process():
        print(f"trained model: {final}")
    return 0
