"""Every ``o1emb COMMAND --help`` states the defaults its configuration has.

A default written in an option's help ("(16)", "(default 40)", "default: test") is compared with where
the command really takes it from: the configuration dataclass it fills (a command's settings class in
``COMMAND_SETTINGS``: ``TrainConfig``, ``RLConfig``, ``Recipe``, ...; ``DemoConfig``, ``ServeSettings``)
or, for options without one, the argparse default. Numbers must match; a word must match a string
default; prose ("the model's", "cuda if available") is not a stated value and is left alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any

import pytest

from o1embedder.cli import build_parser
from o1embedder.cli._common import COMMAND_SETTINGS, DEFAULT_MARGIN
from o1embedder.options import leaves
from o1embedder.retrieval.adaptive import DEFAULT_MARGIN as LIBRARY_MARGIN

STATED = re.compile(r"default[s]?:?\s+([^\s)]+)")
BARE = re.compile(r"\(([^()\s:;,]+)(?::[^()]*)?\)\s*$")          # "(16)", "(auto)", "(0: ...)" at the end
PROSE = {"the", "a", "an", "its", "from"}
"""Words that start a description of a default, not a value ("default: the model folder's name")."""
CONDITIONAL = {("refine", "o1opt__vote_temperature"): "0.1 with retrieval scoring, 1 with similarity (--scoring)"}
"""Defaults that depend on another option, written as such in the help."""


def _defaults(cls: type) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _config_defaults(command: str) -> dict[str, Any]:
    """Option dest -> the default of the configuration field it sets, per command."""
    if command in COMMAND_SETTINGS:                    # configured through o1embedder.options
        return {leaf.dest: leaf.default for leaf in leaves(COMMAND_SETTINGS[command])}
    if command == "demo":
        from o1embedder.demo.pipeline import DemoConfig

        return _defaults(DemoConfig)
    if command == "serve":
        from o1embedder.serving.settings import ServeSettings

        return _defaults(ServeSettings)
    return {}


def _stated(text: str) -> str | None:
    """The default a help text states, as written (``None`` when it states none)."""
    found = STATED.search(text)
    if found:
        return found.group(1).rstrip(",;:.")
    bare = BARE.search(text)
    if bare and bare.group(1) != "default":
        return bare.group(1)
    return None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _problems(command: str, parser: argparse.ArgumentParser) -> tuple[list[str], int]:
    config = _config_defaults(command)
    problems, checked = [], 0
    for action in parser._actions:
        if not action.help or action.help == argparse.SUPPRESS or action.dest in {"help", "func"}:
            continue
        text = action.help % {"default": action.default, "prog": parser.prog} if "%(" in action.help else action.help
        stated = _stated(text)
        if stated is None or (command, action.dest) in CONDITIONAL:
            continue
        expected = config.get(action.dest, action.default)
        if expected is None and action.nargs == "?":
            expected = action.const                               # "--auto-think [MARGIN]": the value it takes
            if expected is DEFAULT_MARGIN:                        # ... the library's margin, by a sentinel
                expected = LIBRARY_MARGIN
        number = _number(stated)
        if number is not None:
            checked += 1
            if isinstance(expected, bool) or not isinstance(expected, (int, float)) or float(expected) != number:
                problems.append(f"o1emb {command} {action.option_strings[0]}: help says {stated}, the default is "
                                f"{expected!r}")
        elif isinstance(expected, str) and expected and stated not in PROSE:
            checked += 1
            if stated != expected:
                problems.append(f"o1emb {command} {action.option_strings[0]}: help says {stated!r}, the default is "
                                f"{expected!r}")
    return problems, checked


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_help_states_the_defaults_the_command_uses(command: str) -> None:
    problems, _ = _problems(command, _subcommands()[command])
    assert not problems, "\n".join(problems)


def test_the_check_reads_the_help_texts_it_is_meant_to() -> None:
    """The parser of help texts finds the forms the commands use, and a wrong default fails it."""
    assert _stated("training steps per model (default 40)") == "40"
    assert _stated("weights dtype while training (float32)") == "float32"
    assert _stated("thought tokens per chunk (0: 64 MiB of logits)") == "0"
    assert _stated("qrels split (default: test)") == "test"
    assert _stated("logprob (InfoNCE log-probability) or rr (reciprocal rank)") is None
    assert _stated("LoRA (default)") is None
    pipeline = _subcommands()["pipeline"]
    assert _problems("pipeline", pipeline)[1] >= 20                # most recipe settings state theirs
    broken = argparse.ArgumentParser(prog="o1emb pipeline")
    broken.add_argument("--training-steps", dest="o1opt__training__steps", help="training steps per model (default 50)")
    assert _problems("pipeline", broken)[0] == ["o1emb pipeline --training-steps: help says 50, the default is 40"]
    total = sum(_problems(c, p)[1] for c, p in _subcommands().items())
    assert total >= 60                                            # most stated defaults are really checked


def test_the_thinking_defaults_in_group_titles_are_the_models() -> None:
    """``search``/``eval``/``mine`` name the reference thinking settings in a group title."""
    from o1embedder.model import ThinkConfig

    think = ThinkConfig()
    expected = f"reference {think.n_thoughts} / {think.temperature} / {think.top_p} / {think.max_new_tokens}"
    titles = [(c, g.title) for c, p in _subcommands().items() for g in p._action_groups
              if g.title and re.search(r"reference \S+ / ", g.title)]
    assert len(titles) >= 3
    for command, title in titles:
        assert expected in title, (command, title)
