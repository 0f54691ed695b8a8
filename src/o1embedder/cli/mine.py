"""``o1emb mine``: hard negatives for a BEIR split's queries (BM25, a dense model or an O1 model),
sampled from a rank range and never a positive; writes training rows (JSONL)."""

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
    p = sub.add_parser("mine", help="mine hard negatives into training rows", description=__doc__)
    p.add_argument("--data", required=True, help="BEIR folder")
    p.add_argument("--split", default="train", help="qrels split (default train)")
    p.add_argument("--out", required=True, help="training rows JSONL to write")
    p.add_argument("--retriever", default="bm25", help="'bm25' (default), 'st:PATH' or an O1 model")
    add_stem_option(p)
    p.add_argument("--negatives", type=int, default=15, help="negatives per query (default 15)")
    p.add_argument("--ranks", default="10-100", help="rank range to sample from, 1-based inclusive (default 10-100)")
    p.add_argument("--mine-seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--index", default=None, help="keep/reuse the corpus index in this folder")
    p.add_argument("--strict", action="store_true",
                   help="refuse qrels naming documents or queries the data lacks (default: warn; such "
                        "documents count as relevant and never retrieved)")
    p.add_argument("--lenient", action="store_true", help=argparse.SUPPRESS)   # the default since 0.2
    add_think_options(p)
    add_backend_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    args.retriever = bm25_spec(args.retriever, args.no_stem)
    from ..formats import load_beir, write_jsonl
    from ..retrieval.encoders import parse_backend
    from ..retrieval.mining import MiningConfig, mine_negatives, parse_ranks
    from ..retrieval.search import corpus_retriever

    lo, hi = parse_ranks(args.ranks)
    config = MiningConfig(negatives=args.negatives, rank_lo=lo, rank_hi=hi, seed=args.mine_seed).validate()
    if args.batch_size < 1:
        raise InputError("--batch-size must be >= 1")
    dataset = load_beir(args.data, args.split, strict=args.strict)
    writer = join_launch(args)     # torchrun: ranks share the corpus and the queries; rank 0 writes
    build = {} if parse_backend(args.retriever)[0] == "bm25" else {"batch_size": args.batch_size}
    think, margin = think_mode(args)
    retriever = corpus_retriever(args.retriever, dataset.corpus, index_dir=args.index, device=args.device,
                                 dtype=args.dtype, think=think, auto_margin=margin,
                                 think_options=generation_overrides(args), cache_dir=cache_dir(args), **build)
    rows = mine_negatives(dataset, retriever, config, batch_size=args.batch_size, show_progress=progress(args))
    if not writer:
        return 0
    count = write_jsonl(args.out, (row.to_dict() for row in rows))
    print(f"wrote {count} training rows ({config.negatives} negatives from ranks {lo}-{hi}) to {args.out}")
    return 0
