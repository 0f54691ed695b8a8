"""``o1emb refine``: a retrieval committee picks one thought per row among the candidates (refinement).

Writes the training rows (each with ``thought``, ``agreement`` and the committee's per-member scores)
to OUT, rows dropped by ``--policy drop`` to OUT.dropped.jsonl, and a summary to OUT.summary.json.
Resumable: run the same command again after an interruption. Exit codes: 0 done; 2 bad input.
The scoring and voting rules: o1embedder/committee/rules.py and docs/refinement.md. Settings also
from ``--config FILE`` and ``--set KEY=VALUE``; ``--print-config`` prints them and exits.
"""

from __future__ import annotations

import argparse

from .. import options
from ..committee.settings import RefineSettings
from ..retrieval.settings import torch_device


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("refine", help="pick one thought per row with a retrieval committee", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_options(p, RefineSettings)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    opts = options.resolve(RefineSettings, args)
    if options.print_and_exit(opts, args):
        return 0
    from ..committee import refine

    refine(opts.input, opts.out, opts.committee, config=opts.committee_config(), weights=opts.weights,
           corpus=opts.corpus or None, dropped_path=opts.dropped, device=torch_device(opts.device), dtype=opts.dtype)
    return 0
