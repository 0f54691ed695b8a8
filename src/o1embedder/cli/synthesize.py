"""``o1emb synthesize``: k candidate thoughts per training row from an expert LLM (exploration step).

Exit codes: 0 every row done; 1 finished, but some rows failed after all retries (listed in the
failures file; run the same command again to retry them); 2 bad input or an unusable expert.
Settings also from ``--config FILE`` and ``--set KEY=VALUE`` (``--set sampling.temperature=0.5``);
``--print-config`` prints them and exits.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import options
from ..errors import InputError
from ..options import leaves
from ..synthesis.settings import SynthesizeSettings

_WORDS = {"sampling.temperature": "default", "sampling.top_p": "default", "shots": "auto"}
"""Settings whose flag also takes a word, in any case: ``default`` (send none) or ``auto``."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synthesize", help="write candidate thoughts with an expert LLM", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_options(p, SynthesizeSettings)
    p.set_defaults(func=run)


def _words(args: argparse.Namespace) -> None:
    """``--temperature default`` / ``--top-p DEFAULT``: send none (``None``); ``--shots AUTO``: ``auto``."""
    for leaf in leaves(SynthesizeSettings):
        word = _WORDS.get(leaf.key)
        value: Any = getattr(args, leaf.dest, None)
        if word is None or not isinstance(value, str):
            continue
        if value.strip().lower() == word:
            setattr(args, leaf.dest, None if word == "default" else word)
        elif word == "default":
            try:
                float(value)
            except ValueError:
                raise InputError(f"--{leaf.flag}: expected a number or 'default', got {value!r}") from None


def run(args: argparse.Namespace) -> int:
    _words(args)
    opts = options.resolve(SynthesizeSettings, args)
    if options.print_and_exit(opts, args):
        return 0
    from ..synthesis import synthesize

    prompt = opts.prompt_template()
    report = synthesize(opts.input, opts.out, opts.expert, config=opts.synthesis_config(prompt),
                        options=opts.backend_options(), prompt=prompt)
    return 1 if report.failed else 0
