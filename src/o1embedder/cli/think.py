"""``o1emb think``: show the thoughts a model writes for queries (and optionally their vectors)."""

from __future__ import annotations

import argparse
import json
import sys

from ._common import add_generation_options, add_model_options, load_model, think_kwargs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("think", help="generate thoughts for queries", description=__doc__)
    p.add_argument("queries", nargs="+", help="query texts")
    add_model_options(p)
    add_generation_options(p, embeds=False)
    p.add_argument("--json", action="store_true", help="print JSON lines {query, thoughts}")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engines import attach

    model = attach(load_model(args), args.think_engine)
    thoughts = model.generate_thoughts(args.queries, **think_kwargs(args))
    for query, ts in zip(args.queries, thoughts):
        if args.json:
            print(json.dumps({"query": query, "thoughts": ts}, ensure_ascii=False))
        else:
            print(f"query: {query}")
            for i, t in enumerate(ts, 1):
                print(f"  thought {i}: {t}")
    sys.stdout.flush()
    return 0
