"""``o1emb refine``: a retrieval committee picks one thought per row among the candidates (refinement).

Writes the training rows (each with ``thought``, ``agreement`` and the committee's per-member scores)
to OUT, rows dropped by ``--policy drop`` to OUT.dropped.jsonl, and a summary to OUT.summary.json.
Resumable: run the same command again after an interruption. Exit codes: 0 done; 2 bad input.
The scoring and voting rules: o1embedder/committee/rules.py and docs/refinement.md.
"""

from __future__ import annotations

import argparse

from ._common import add_backend_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("refine", help="pick one thought per row with a retrieval committee", description=__doc__,
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--input", required=True, help="candidates JSONL (o1emb synthesize output)")
    p.add_argument("--out", required=True, help="output training rows JSONL (appended to and resumed)")
    p.add_argument("--committee", required=True, help="comma-separated members: bm25, st:PATH, o1:PATH")
    p.add_argument("--weights", default=None, help="comma-separated member weights (default: all 1)")
    p.add_argument("--scoring", choices=["retrieval", "similarity"], default="retrieval",
                   help="retrieval: rank of the positive among negatives; similarity: the reference rule")
    p.add_argument("--voting", choices=["soft", "hard", "borda"], default="soft")
    p.add_argument("--temperature", type=float, default=None,
                   help="soft-voting temperature (default: 0.1 retrieval, 1 similarity)")
    p.add_argument("--margin", type=float, default=0.0,
                   help="vote share by which the winner must beat the bare query")
    p.add_argument("--policy", choices=["keep-best", "empty", "drop"], default="empty",
                   help="when no candidate beats the bare query")
    p.add_argument("--query-mode", choices=["append", "alone"], default=None,
                   help="score query + candidate, or the candidate alone (default: append retrieval, alone similarity)")
    p.add_argument("--margin-weight", type=float, default=0.25,
                   help="retrieval rule: weight of the relative margin next to the reciprocal rank")
    p.add_argument("--other-positives", type=int, default=0,
                   help="retrieval rule: other rows' positives used as extra negatives")
    p.add_argument("--corpus", default=None, help="BEIR folder or corpus.jsonl: extra BM25 statistics source")
    p.add_argument("--rows-per-batch", type=int, default=256, help="rows scored together")
    p.add_argument("--dropped", default=None, help="dropped rows JSONL (default: OUT with .dropped.jsonl)")
    add_backend_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..committee import CommitteeConfig, refine

    config = CommitteeConfig(
        scoring=args.scoring, voting=args.voting, temperature=args.temperature, margin=args.margin,
        policy=args.policy, query_mode=args.query_mode, margin_weight=args.margin_weight,
        other_positives=args.other_positives, rows_per_batch=args.rows_per_batch, batch_size=args.batch_size,
        progress=not args.no_progress)
    refine(args.input, args.out, args.committee, config=config, weights=args.weights, corpus=args.corpus,
           dropped_path=args.dropped, device=args.device, dtype=args.dtype)
    return 0
