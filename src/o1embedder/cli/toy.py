"""``o1emb toy``: build a tiny random O1-ready model (for trying the commands; it knows nothing)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("toy", help="build a tiny random model to try the commands", description=__doc__)
    p.add_argument("--out", required=True, help="folder to write the model to")
    p.add_argument("--family", choices=["qwen2", "llama"], default="qwen2", help="architecture (default qwen2)")
    p.add_argument("--hidden", type=int, default=64, help="hidden size (default 64)")
    p.add_argument("--layers", type=int, default=2, help="number of layers (default 2)")
    p.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..model import O1Embedder
    from ..toy import build_model, train_tokenizer

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise InputError("folder exists and is not empty", path=out)
    if args.hidden < 8 or args.hidden % 4 or args.layers < 1:
        raise InputError("--hidden must be a multiple of 4 (>= 8) and --layers >= 1")
    tokenizer = train_tokenizer(family=args.family, with_special_tokens=True)
    model = build_model(tokenizer, family=args.family, hidden=args.hidden, layers=args.layers, seed=args.seed)
    O1Embedder(model, tokenizer).save_pretrained(out)
    print(f"wrote a random {args.family} model (hidden {args.hidden}, {args.layers} layers) to {out}")
    return 0
