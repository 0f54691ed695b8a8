"""``o1emb mine``: hard negatives for a BEIR split's queries (BM25, a dense model or an O1 model),
sampled from a rank range and never a positive; writes training rows (JSONL). Settings also from
``--config FILE`` and ``--set KEY=VALUE``; ``--print-config`` prints them and exits."""

from __future__ import annotations

import argparse

from .. import options
from ..retrieval.settings import MineSettings
from ._common import THINK_TITLE, add_auto_think, auto_think, bm25_spec, join_launch


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mine", help="mine hard negatives into training rows", description=__doc__)
    options.add_options(p, MineSettings, title=f"settings (also keys of --config and --set); {THINK_TITLE}")
    add_auto_think(p)
    p.add_argument("--lenient", action="store_true", help=argparse.SUPPRESS)   # the default since 0.2
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    opts = options.resolve(MineSettings, args, extra=auto_think(args, MineSettings))
    if options.print_and_exit(opts, args):
        return 0
    retriever_spec = bm25_spec(opts.retriever, opts.no_stem)
    from ..formats import load_beir, write_jsonl
    from ..retrieval.encoders import parse_backend
    from ..retrieval.mining import MiningConfig, mine_negatives, parse_ranks
    from ..retrieval.search import corpus_retriever

    lo, hi = parse_ranks(opts.ranks)
    config = MiningConfig(negatives=opts.negatives, rank_lo=lo, rank_hi=hi, seed=opts.mine_seed).validate()
    opts.check_batch_size()
    knobs = opts.think.auto_knobs()                # think.margin / share / threshold, checked before any work
    dataset = load_beir(opts.data, opts.split, strict=opts.strict)
    writer, device = join_launch(opts.device)     # torchrun: ranks share the corpus and the queries; rank 0 writes
    build = {} if parse_backend(retriever_spec)[0] == "bm25" else {"batch_size": opts.batch_size}
    think = opts.think
    retriever = corpus_retriever(retriever_spec, dataset.corpus, index_dir=opts.index, device=device,
                                 dtype=opts.dtype, think=think.think(), **knobs,
                                 think_options=think.overrides(), cache_dir=think.cache_dir(), **build)
    rows = mine_negatives(dataset, retriever, config, batch_size=opts.batch_size, show_progress=opts.progress())
    if not writer:
        return 0
    count = write_jsonl(opts.out, (row.to_dict() for row in rows))
    print(f"wrote {count} training rows ({config.negatives} negatives from ranks {lo}-{hi}) to {opts.out}")
    return 0
