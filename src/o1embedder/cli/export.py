"""``o1emb export``: a trained O1 model for the generation engines that can write its thoughts - a GGUF
file for llama.cpp (``--gguf``) and/or a plain Hugging Face folder for vLLM and other OpenAI-compatible
servers (``--hf``). The vector of a query still comes from the O1 model: the engine only thinks."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..export import TYPES

    p = sub.add_parser("export", help="write an O1 model as a GGUF file (llama.cpp) or a plain HF folder (vLLM)",
                       description=__doc__)
    p.add_argument("model", help="the O1 model folder (o1emb train's OUT/final)")
    p.add_argument("--gguf", metavar="FILE", help="write a GGUF file here")
    p.add_argument("--type", default="f16", choices=TYPES, help="GGUF tensor type of the weights (default f16)")
    p.add_argument("--pre", default="default",
                   help="llama.cpp's pre-tokenizer name: smollm for SmolLM2, qwen2, llama-bpe, ... (default "
                        "default; it only matters to text prompts, the engines are given token ids)")
    p.add_argument("--hf", metavar="DIR", help="write a plain Hugging Face folder here (must not exist or be empty)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..export import export_gguf, export_hf

    if not args.gguf and not args.hf:
        raise InputError("nothing to write: give --gguf FILE and/or --hf DIR")
    if args.gguf:
        print(f"wrote {export_gguf(args.model, args.gguf, qtype=args.type, pre=args.pre)}")
    if args.hf:
        print(f"wrote {export_hf(args.model, args.hf)}")
    return 0
