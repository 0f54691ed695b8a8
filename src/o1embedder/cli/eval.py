"""``o1emb eval``: evaluate a model on a BEIR split with pytrec_eval (nDCG, MRR, Recall, MAP, P).

Writes the report JSON (``--out``) with a markdown table (``.md``) and the TREC run (``.trec``)
beside it; ``--ablation`` also runs without thinking on the same index and writes
``.no-think.trec`` and a per-query comparison (``.per-query.jsonl``). Settings also from
``--config FILE`` and ``--set KEY=VALUE``; ``--print-config`` prints them and exits.
"""

from __future__ import annotations

import argparse

from .. import options
from ..evaluation.settings import EvalSettings
from ._common import THINK_TITLE, add_auto_think, auto_think, bm25_spec, join_launch


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate on a BEIR dataset", description=__doc__)
    options.add_options(p, EvalSettings, title=f"settings (also keys of --config and --set); {THINK_TITLE}")
    add_auto_think(p)
    p.add_argument("--lenient", action="store_true", help=argparse.SUPPRESS)   # the default since 0.2
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    opts = options.resolve(EvalSettings, args, extra=auto_think(args, EvalSettings))
    if options.print_and_exit(opts, args):
        return 0
    model = bm25_spec(opts.model, opts.no_stem)
    from ..evaluation.beir import evaluate_beir
    from ..evaluation.report import HEADLINE, write_outputs

    opts.check_batch_size()
    config = opts.eval_config()
    writer, config.device = join_launch(opts.device)   # torchrun: ranks share the corpus and the queries
    report, runs, comparison = evaluate_beir(model, opts.data, config, show_progress=opts.progress())
    if not writer:
        return 0
    if opts.out:
        write_outputs(report, opts.out, runs, comparison)
    names = [m for m in HEADLINE if m in report["metrics"]] or list(report["metrics"])[:4]
    line = "  ".join(f"{m} {report['metrics'][m]:.4f}" for m in names)
    print(f"{report['dataset']} {report['split']} ({report['num_queries']} queries, think={report['think']}): {line}")
    if "ablation" in report:
        plain = report["ablation"]["no_think"]["metrics"]
        print("  no think: " + "  ".join(f"{m} {plain[m]:.4f}" for m in names))
    if opts.out:
        print(f"report: {opts.out}")
    return 0
