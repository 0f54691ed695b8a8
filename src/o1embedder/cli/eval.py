"""``o1emb eval``: evaluate a model on a BEIR split with pytrec_eval (nDCG, MRR, Recall, MAP, P).

Writes the report JSON (``--out``) with a markdown table (``.md``) and the TREC run (``.trec``)
beside it; ``--ablation`` also runs without thinking on the same index and writes
``.no-think.trec`` and a per-query comparison (``.per-query.jsonl``).
"""

from __future__ import annotations

import argparse

from ..errors import InputError
from ._common import (
    add_backend_options,
    add_stem_option,
    add_think_options,
    bm25_spec,
    cache_dir,
    generation_overrides,
    join_launch,
    progress,
    think_mode,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate on a BEIR dataset", description=__doc__)
    p.add_argument("--model", required=True, help="O1 model folder/hub id, 'bm25' or 'st:PATH'")
    add_stem_option(p)
    p.add_argument("--data", required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    p.add_argument("--split", default="test", help="qrels split (default test)")
    p.add_argument("--out", default=None, help="report JSON path (siblings: .md, .trec, ...)")
    p.add_argument("--ablation", action="store_true", help="O1: think and no-think side by side on one index")
    p.add_argument("--k-values", default="1,3,5,10,100,1000", help="metric cut-offs (default 1,3,5,10,100,1000)")
    p.add_argument("--keep-self-hits", action="store_true",
                   help="keep a retrieved doc whose id equals the query id (BEIR skips it; default skip)")
    p.add_argument("--max-queries", type=int, default=None, help="only the first N judged queries (quick check)")
    p.add_argument("--strict", action="store_true",
                   help="refuse qrels naming documents or queries the data lacks (default: warn; such "
                        "documents count as relevant and never retrieved)")
    p.add_argument("--lenient", action="store_true", help=argparse.SUPPRESS)   # the default since 0.2
    p.add_argument("--index", default=None, help="keep/reuse the corpus index in this folder")
    p.add_argument("--factory", default="Flat", help="FAISS factory for dense models (default Flat)")
    p.add_argument("--max-length", type=int, default=None, help="passage token limit (default: the model's)")
    add_think_options(p)
    add_backend_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    args.model = bm25_spec(args.model, args.no_stem)
    from ..evaluation.beir import EvalConfig, evaluate_beir
    from ..evaluation.metrics import parse_k_values
    from ..evaluation.report import HEADLINE, write_outputs

    if args.batch_size < 1:
        raise InputError("--batch-size must be >= 1")
    think, margin = think_mode(args)
    writer = join_launch(args)     # torchrun: ranks share the corpus and the queries; rank 0 writes
    config = EvalConfig(split=args.split, think=think, auto_margin=margin, ablation=args.ablation,
                        think_options=generation_overrides(args), k_values=parse_k_values(args.k_values),
                        skip_self=not args.keep_self_hits, max_queries=args.max_queries, strict=args.strict,
                        index_dir=args.index, factory=args.factory, batch_size=args.batch_size,
                        max_length=args.max_length, device=args.device, dtype=args.dtype,
                        cache_dir=cache_dir(args))
    report, runs, comparison = evaluate_beir(args.model, args.data, config, show_progress=progress(args))
    if not writer:
        return 0
    if args.out:
        write_outputs(report, args.out, runs, comparison)
    names = [m for m in HEADLINE if m in report["metrics"]] or list(report["metrics"])[:4]
    line = "  ".join(f"{m} {report['metrics'][m]:.4f}" for m in names)
    print(f"{report['dataset']} {report['split']} ({report['num_queries']} queries, think={report['think']}): {line}")
    if "ablation" in report:
        plain = report["ablation"]["no_think"]["metrics"]
        print("  no think: " + "  ".join(f"{m} {plain[m]:.4f}" for m in names))
    if args.out:
        print(f"report: {args.out}")
    return 0
