"""``o1emb index``: encode a corpus with a model (O1, ``st:PATH`` or ``bm25``) into an index folder.

Dense encodes are written in shards: a killed run resumes where it stopped. Split a large corpus
across processes with ``--shard i/n`` (or ``torchrun``; worker 0 waits for the others' shards, then
builds the FAISS index).
"""

from __future__ import annotations

import argparse

from ..errors import InputError
from ._common import add_backend_options, add_stem_option, bm25_spec, join_launch, progress


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="build a search index over a corpus", description=__doc__)
    p.add_argument("--model", required=True, help="O1 model folder/hub id, 'bm25' or 'st:PATH'")
    add_stem_option(p)
    p.add_argument("--corpus", required=True, help="BEIR folder (its corpus.jsonl) or a corpus JSONL file")
    p.add_argument("--out", required=True, help="index folder to write (or resume)")
    p.add_argument("--factory", default="Flat",
                   help="FAISS factory string, inner product (default Flat = exact; e.g. HNSW32, IVF1024,PQ64)")
    p.add_argument("--shard-size", type=int, default=8192, help="docs per embeddings shard (default 8192)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="encode only worker I's share of N (default: from torchrun's RANK/WORLD_SIZE, else 0/1)")
    p.add_argument("--max-length", type=int, default=None, help="passage token limit (default: the model's)")
    p.add_argument("--wait", type=float, default=7 * 24 * 3600,
                   help="worker 0: seconds to wait for the other workers' shards (default a week)")
    add_backend_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    args.model = bm25_spec(args.model, args.no_stem)
    from ..formats import read_corpus
    from ..retrieval.building import build_index
    from ..retrieval.shards import ShardSpec

    if args.batch_size < 1:
        raise InputError("--batch-size must be >= 1")
    corpus = read_corpus(args.corpus)
    shard = ShardSpec.parse(args.shard) if args.shard else ShardSpec.from_env()
    writer = join_launch(args)          # torchrun: every rank encodes its shards, rank 0 builds and prints
    index = build_index(args.model, corpus, args.out, device=args.device, dtype=args.dtype,
                        max_length=args.max_length, factory=args.factory, shard_size=args.shard_size,
                        batch_size=args.batch_size, shard=shard, wait_timeout_s=args.wait,
                        show_progress=progress(args))
    if index is None:
        print(f"worker {shard.index}/{shard.count}: shards written to {args.out}/embeddings")
    elif writer:
        m = index.manifest
        print(f"indexed {m['count']} docs with {m['model']} ({m['kind']}"
              f"{', ' + m['factory'] if m.get('factory') else ''}) -> {args.out}")
    return 0
