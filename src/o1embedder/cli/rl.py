"""``o1emb rl``: GRPO on thoughts with a retrieval reward, after ``o1emb train`` (docs/rl.md).

Each step samples G thoughts per training query, rewards each by how well its one-pass vector
retrieves the positive, and moves the policy toward the better thoughts (group-relative advantages),
with a KL penalty to the model before RL and the contrastive loss kept. Resumes from OUT/checkpoint-*
made with the same settings (another setting: exit 2); a finished run is not redone. Several processes:
torchrun --nproc_per_node N -m o1embedder rl ... runs one job (DDP), written by rank 0.

Settings: ``RLConfig``, from a ``--config FILE`` (YAML or JSON), a flag per setting and ``--set
KEY=VALUE`` (``--set adapter.r=16``); ``--print-config`` prints the result and exits.
"""

from __future__ import annotations

import argparse

from .. import options
from ..rl.config import RLConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rl", help="GRPO on thoughts with a retrieval reward (after train)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_options(p, RLConfig, title="settings (also keys of --config and --set; see docs/rl.md)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = options.resolve(RLConfig, args)
    if options.print_and_exit(config, args):
        return 0
    from .. import distributed
    from ..rl import rl

    out = rl(config.validate())
    if distributed.is_main_process():
        print(f"RL model: {out}")
    return 0
