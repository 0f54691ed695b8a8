"""``o1emb``: the command line. Each subcommand parses its options and calls one library function.

Subcommands live in their own modules (``cli/<name>.py``, dashes as underscores), each with ``add_parser(subparsers)``
registering a ``run(args) -> int`` through ``set_defaults(func=...)``. Error convention: any
:class:`~o1embedder.errors.O1Error` becomes one line on stderr and exit code 2; bad options too.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import O1Error
from ..log import setup_logging

# In the order ``o1emb --help`` lists them; a module that does not exist (yet) is skipped.
COMMANDS = ("demo", "pipeline", "real", "index", "search", "eval", "mine", "fit-policy", "synthesize", "refine", "train",
            "rl", "serve", "think", "convert", "export", "toy")


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (plus where to find help) and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="o1emb", description="Retrievers that think before they retrieve (O1 Embedder).")
    parser.add_argument("--version", action="version", version=f"o1embedder {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging level (default: INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        module = f"{__name__}.{name.replace('-', '_')}"       # fit-policy: cli/fit_policy.py
        if importlib.util.find_spec(module) is None:
            continue
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(getattr(logging, args.log_level))
    ended = False
    try:
        code = int(args.func(args) or 0)
        ended = True
        return code
    except O1Error as exc:
        print(f"o1emb {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"o1emb {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        _leave_process_group(together=ended)


def _leave_process_group(together: bool) -> None:
    """End a torchrun job cleanly (torch warns about a process group left behind); only when torch
    was loaded by the command, so a light command stays light. ``together``: the command ended
    normally on this rank, so the ranks leave at one barrier."""
    if "torch.distributed" in sys.modules:
        from .. import distributed

        distributed.shutdown(together=together)
