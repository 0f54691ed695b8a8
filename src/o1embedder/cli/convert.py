"""``o1emb convert``: a ``.gguf`` file (or any causal-LM folder) as a plain safetensors checkpoint, once.

A GGUF file is dequantized on every load (SmolLM2-135M: about 20 s); the converted folder loads in a
few seconds, and works everywhere a model path does: ``o1emb train --model``, ``--expert hf:``,
``o1emb eval --model``. The folder holds the causal LM and its tokenizer (chat template included),
without the O1 special tokens (they are added, untrained, when an O1 model is first built from it).
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="write a .gguf file or model folder as a plain safetensors checkpoint",
                       description=__doc__)
    p.add_argument("src", help="a .gguf file or a Hugging Face model folder")
    p.add_argument("out", help="the folder to write (must not exist, or be empty)")
    p.add_argument("--dtype", default="float32", choices=["auto", "float32", "bfloat16", "float16"],
                   help="dtype of the written weights (default float32: GGUF values kept exactly)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow a model folder's own Python code to run (off by default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..checkpoints import convert

    out = convert(args.src, args.out, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
    print(f"wrote {out}")
    return 0
