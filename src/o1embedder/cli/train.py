"""``o1emb train``: joint training (thought LM + contrastive) of an O1 model; LoRA by default.

Settings: ``TrainConfig`` (docs/training.md): a ``--config FILE`` (YAML or JSON, the sections below as
keys), a flag per setting, ``--set KEY=VALUE`` (``--set adapter.r=16``, ``--set
training_args.warmup_ratio=0.1``); ``--print-config`` prints the result and exits. Precedence:
built-in defaults < ``--config`` < flags < ``--set``.

Any other ``--flag`` is a Hugging Face ``TrainingArguments`` flag and goes into ``training_args``
(``--max_steps 100 --bf16 --gradient_accumulation_steps 4 --resume_from_checkpoint DIR``).
"""

from __future__ import annotations

import argparse
import types
from typing import Any

from .. import options
from ..errors import InputError
from ..training.config import TrainConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train an O1 model (joint thought LM + contrastive)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_options(p, TrainConfig)
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
    if not flags:
        return {}
    from transformers import HfArgumentParser, TrainingArguments

    names = {f.split("=", 1)[0].lstrip("-").replace("-", "_") for f in flags if f.startswith("--")}
    parser = HfArgumentParser(TrainingArguments)
    try:
        ns, unknown = parser.parse_known_args([*flags, "--output_dir", "unused"])
    except SystemExit:
        raise InputError(f"bad Trainer flags: {' '.join(flags)}") from None
    if unknown:
        raise InputError(f"unknown options {unknown} (neither o1emb train's nor TrainingArguments')")
    return {n: getattr(ns, n) for n in names if hasattr(ns, n)}


def build_config(args: argparse.Namespace) -> TrainConfig:
    """The run's ``TrainConfig``: file < flags (the Trainer's among them, into ``training_args``) < ``--set``."""
    extra = {f"training_args.{k}": v for k, v in hf_training_args(args.hf_args).items()}
    return options.resolve(TrainConfig, args, extra=extra)


def run(args: argparse.Namespace) -> int:
    config = build_config(args)
    if options.print_and_exit(config, args):
        return 0
    from .. import distributed
    from ..training import train

    final = train(config.validate())
    if distributed.is_main_process():
        print(f"trained model: {final}")
    return 0
