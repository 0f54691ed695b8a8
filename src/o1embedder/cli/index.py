"""``o1emb index``: encode a corpus with a model (O1, ``st:PATH`` or ``bm25``) into an index folder.

Dense encodes are written in shards: a killed run resumes where it stopped. Split a large corpus
across processes with ``--shard i/n`` (or ``torchrun``; worker 0 waits for the others' shards, then
builds the FAISS index). Settings also from ``--config FILE`` and ``--set KEY=VALUE``;
``--print-config`` prints them and exits.
"""

from __future__ import annotations

import argparse

from .. import options
from ..retrieval.settings import IndexSettings
from ._common import bm25_spec, join_launch


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="build a search index over a corpus", description=__doc__)
    options.add_options(p, IndexSettings)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    opts = options.resolve(IndexSettings, args)
    if options.print_and_exit(opts, args):
        return 0
    model = bm25_spec(opts.model, opts.no_stem)
    from ..formats import read_corpus
    from ..retrieval.building import build_index
    from ..retrieval.shards import ShardSpec

    opts.check_batch_size()
    corpus = read_corpus(opts.corpus)
    shard = ShardSpec.parse(opts.shard) if opts.shard else ShardSpec.from_env()
    writer, device = join_launch(opts.device)   # torchrun: every rank encodes its shards, rank 0 builds and prints
    index = build_index(model, corpus, opts.out, device=device, dtype=opts.dtype,
                        max_length=opts.max_length, factory=opts.factory, shard_size=opts.shard_size,
                        batch_size=opts.batch_size, shard=shard, wait_timeout_s=opts.wait,
                        show_progress=opts.progress())
    if index is None:
        print(f"worker {shard.index}/{shard.count}: shards written to {opts.out}/embeddings")
    elif writer:
        m = index.manifest
        print(f"indexed {m['count']} docs with {m['model']} ({m['kind']}"
              f"{', ' + m['factory'] if m.get('factory') else ''}) -> {opts.out}")
    return 0
