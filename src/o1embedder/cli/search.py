"""``o1emb search``: query an index folder (its manifest names the model; ``--model`` overrides it,
checked against the fingerprint)."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import InputError
from ._common import (
    add_backend_options,
    add_think_options,
    cache_dir,
    generation_overrides,
    progress,
    think_mode,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search an index", description=__doc__)
    p.add_argument("queries", nargs="+", help="query texts")
    p.add_argument("--index", required=True, help="index folder written by o1emb index")
    p.add_argument("--model", default=None, help="override the model named in the manifest (same fingerprint)")
    p.add_argument("--k", type=int, default=10, help="results per query (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object per query")
    add_think_options(p)
    add_backend_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..retrieval.search import open_retriever

    if args.k < 1:
        raise InputError(f"--k must be >= 1, got {args.k}")
    think, knobs = think_mode(args)
    retriever = open_retriever(args.index, model=args.model, device=args.device, dtype=args.dtype,
                               think=think, think_options=generation_overrides(args),
                               cache_dir=cache_dir(args), **knobs)
    results = retriever.search(args.queries, args.k, batch_size=args.batch_size, show_progress=progress(args))
    for result in results:
        if args.json:
            print(json.dumps(result.to_dict(), ensure_ascii=False))
            continue
        decided = (" (thought)" if result.thought else " (did not think)") if think == "auto" else ""
        print(f"query: {result.query}{decided}")
        for i, thought in enumerate(result.thoughts, 1):
            print(f"  thought {i}: {thought}")
        for rank, (doc_id, score) in enumerate(result.hits, 1):
            print(f"  {rank:>3}. {doc_id}\t{score:.4f}")
    sys.stdout.flush()
    return 0
