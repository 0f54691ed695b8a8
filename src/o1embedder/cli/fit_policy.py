"""``o1emb fit-policy``: fit an O1 model's learned when-to-think policy (``think="auto"``) on training rows
and write it into the model folder (``think_policy.json`` + ``think_policy.safetensors``), printing the
fit's figures: label balance, calibration AUC and the share-vs-gain curve of the held-out rows. The
rows are training queries; each is labelled by whether the model's own thinking retrieves its positive
better than its no-thinking vector (docs/retrieval.md, "Learned when-to-think policy"). Settings also
from ``--config FILE`` and ``--set KEY=VALUE``; ``--print-config`` prints them and exits."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import options
from ..errors import InputError
from ..retrieval.settings import FitPolicySettings, torch_device


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit-policy", help="fit the learned when-to-think policy of think=auto",
                       description=__doc__)
    options.add_options(p, FitPolicySettings)
    p.set_defaults(func=run)


def _print(figures: dict[str, Any]) -> None:
    labels, auc, predictor = figures["labels"], figures["auc"], figures["predictor"]
    print(f"rows {figures['rows']} ({figures['fit_rows']} fit, {figures['calibration_rows']} calibration); "
          f"features scored against {figures['pool']}")
    print(f"labels: thinking helps {labels['thinking_helps']} of {figures['rows']} rows ({labels['share']:.1%}; "
          f"fit {labels['fit_share']:.1%}, calibration {labels['calibration_share']:.1%}); "
          f"mean gain {figures['gain']['mean']:+.4f} nats")

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    print(f"calibration AUC {fmt(auc['calibration'])} (fit {fmt(auc['fit'])}); logistic regression over "
          f"{predictor['features']} features, l2 {predictor['l2']:g}, {predictor['iterations']} Newton steps")
    print("share-vs-gain on the calibration rows (mean gain per row, never thinking = 0):")
    print("  share  thought  gain      helped  oracle    chance")
    for p in figures["curve"]:
        helped = "-" if p["helped"] is None else f"{p['helped']:.2f}"
        print(f"  {p['share']:5.2f}  {p['thought']:7d}  {p['mean_gain']:+.4f}  {helped:>6}  "
              f"{p['oracle_gain']:+.4f}  {p['chance_gain']:+.4f}")


def read_queries(path: str) -> list[str]:
    """Query texts from a BEIR ``queries.jsonl`` (or a folder holding one) or a text file, one a line."""
    from ..formats.beir import read_beir_queries

    source = Path(path).expanduser()
    if source.is_dir():
        source = source / "queries.jsonl"
    if not source.is_file():
        raise InputError(f"--calibrate-on {path}: no such file")
    if source.suffix == ".jsonl":
        return list(read_beir_queries(source).values())
    return [line.strip() for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]


def run(args: argparse.Namespace) -> int:
    opts = options.resolve(FitPolicySettings, args)
    if options.print_and_exit(opts, args):
        return 0
    opts.check()
    source = Path(opts.model).expanduser()
    if not opts.out and not source.is_dir():
        raise InputError(f"--out is required: {opts.model} is not a model folder to write the policy into")
    out = Path(opts.out).expanduser() if opts.out else source
    if opts.calibrate_on and not opts.index:
        raise InputError("--calibrate-on needs --index: the queries' features are scored against the index they search")
    calibrate_on = read_queries(opts.calibrate_on) if opts.calibrate_on else None
    from ..formats import read_training_rows
    from ..model import O1Embedder
    from ..retrieval.index import DenseIndex, load_index
    from ..retrieval.policy import fit_policy

    rows = read_training_rows(opts.data)[:opts.max_rows]
    from ..engines import attach

    model = O1Embedder.from_pretrained(opts.model, device=torch_device(opts.device), dtype=opts.dtype)
    attach(model, opts.engine)                        # who writes the labels' thoughts (one-pass: the model)
    index = None
    if opts.index:
        index = load_index(opts.index, expect_fingerprint=model.fingerprint())
        if not isinstance(index, DenseIndex):
            raise InputError(f"--index {opts.index}: a bm25 index; fit-policy needs a dense index of this model")
    fit = fit_policy(model, rows, calibration=opts.calibration, calibrate_on=calibrate_on, sample=opts.sample,
                     features=opts.features, l2=opts.l2, seed=opts.seed, temperature=opts.temperature, index=index,
                     batch_size=opts.batch_size, cache_dir=False if opts.no_cache else opts.cache,
                     show_progress=opts.progress())
    model.think_policy = fit.policy
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        fit.policy.save(out)
    else:
        model.save_pretrained(out)                 # the model and its policy, in a new folder
    _print(fit.figures)
    on = fit.figures["calibrated_on"]
    print(f"think.share calibrated on {on['queries']} {on['kind']}")
    print(f"wrote the think policy to {out} (think_policy.json, think_policy.safetensors)")
    return 0
