"""The command line: flags for every setting, ``--config``/``--set``/``--print-config``, and
:func:`resolve`, which merges them in order."""

from __future__ import annotations

import argparse
import typing
from collections.abc import Iterable
from dataclasses import MISSING
from typing import Any

from ..errors import InputError
from .build import Origin, build, to_yaml
from .fields import Leaf, _is_section, _list_item, leaves
from .files import load_file
from .types import _choices, _parse_text, _type_name, _union_args, _Wrong


def add_options(parser: argparse.ArgumentParser, cls: type, *, skip: Iterable[str] = (),
                title: str | None = None) -> None:
    """``--config``, ``--set``, ``--print-config`` and one flag per setting of ``cls`` (not those in
    ``skip``: keys the command handles with its own flags). Flags default to nothing given, so a
    file's value stands unless a flag overrides it."""
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="settings file (YAML or JSON) with the keys below; flags and --set override it")
    parser.add_argument("--set", dest="o1opt_set", action="append", default=[], metavar="KEY=VALUE",
                        help="set any setting, dotted keys for sections (repeatable; applied last)")
    parser.add_argument("--print-config", dest="o1opt_print", action="store_true",
                        help="print the resolved settings as YAML and exit")
    group = parser.add_argument_group(title or "settings (also keys of --config and --set)")
    skipped = set(skip)
    for leaf in leaves(cls):
        if leaf.flag is None or leaf.key in skipped:
            continue
        text = leaf.help + _default_text(leaf)
        if leaf.kind is bool or leaf.kind == (bool | None):
            group.add_argument(f"--{leaf.flag}", dest=leaf.dest, action="store_const", const=True,
                               default=argparse.SUPPRESS, help=text)
            group.add_argument(f"--no-{leaf.flag}", dest=leaf.dest, action="store_const", const=False,
                               default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        else:
            choices = leaf.choices
            group.add_argument(f"--{leaf.flag}", dest=leaf.dest, default=argparse.SUPPRESS, help=text,
                               metavar="{" + ",".join(map(str, choices)) + "}" if choices else _metavar(leaf))
        for alias, value in leaf.aliases.items():
            group.add_argument(f"--{alias}", dest=leaf.dest, action="store_const", const=value,
                               default=argparse.SUPPRESS, help=f"same as {leaf.key}={value}")


def _metavar(leaf: Leaf) -> str:
    """``N``, ``X``, ``TEXT``; a list ``ITEM,...`` (``{a,b},...`` for a list of choices), as the
    command line reads it; a mapping or a list of sections ``YAML``."""
    kind = leaf.kind
    options = [a for a in _union_args(kind) or () if a is not type(None)]
    kind = options[0] if len(options) == 1 else kind
    item = _list_item(kind)
    if typing.get_origin(kind) is dict or kind is dict or _is_section(item):
        return "YAML"
    if item is not None:
        choices = _choices(item)
        return ("{" + ",".join(map(str, choices)) + "}" if choices else _scalar_metavar(item)) + ",..."
    return _scalar_metavar(kind)


def _scalar_metavar(kind: Any) -> str:
    name = _type_name(kind).replace(" | None", "")
    return {"int": "N", "float": "X", "str": "TEXT"}.get(name, name.upper())


def _default_text(leaf: Leaf) -> str:
    if leaf.required:
        return " (required)"
    if leaf.default is MISSING or leaf.default in ("", None, [], {}, ()):
        return ""
    return f" (default {leaf.default})"


def resolve(cls: type, args: argparse.Namespace, *, extra: dict[str, Any] | None = None) -> Any:
    """The configuration a command runs with: defaults < ``--config`` file < flags (and ``extra``,
    values a command's own flags decided) < ``--set``. Required settings are checked here."""
    data: dict[str, Any] = {}
    origin = Origin()
    config = getattr(args, "config", None)
    if config:
        data, origin.lines = load_file(config)
        origin.file = str(config)
    text: set[str] = set()
    by_key = {leaf.key: leaf for leaf in leaves(cls)}
    for leaf in by_key.values():
        if hasattr(args, leaf.dest):
            value = getattr(args, leaf.dest)
            _put(data, leaf.path, value)
            origin.given[leaf.key] = f"--{leaf.flag}"
            if isinstance(value, str):
                text.add(leaf.key)
    for key, value in (extra or {}).items():
        _put(data, tuple(key.split(".")), value)
    for item in getattr(args, "o1opt_set", None) or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"--set {item!r}: expected KEY=VALUE (dotted keys for sections)")
        path = tuple(key.split("."))
        if key not in by_key and not _inside_mapping(cls, path) and not _inside_list(cls, path, data):
            near = ", ".join(k for k in by_key if k.split(".")[-1] == path[-1]) or ", ".join(sorted(by_key))
            raise InputError(f"--set {item!r}: unknown setting {key!r} (known: {near})")
        _put(data, path, value if key in by_key else _parse_set(value, item))
        origin.given[key] = f"--set {key}"
        text.add(key)
    built = build(cls, data, origin, text=frozenset(text))
    if isinstance(getattr(built, "origin", None), Origin):      # kept for checks made later (paths)
        built.origin = origin
    for leaf in by_key.values():
        if leaf.required and _get(built, leaf.path) in ("", None):
            how = f"--{leaf.flag}, " if leaf.flag else ""
            raise InputError(f"{leaf.key} is required: give {how}--set {leaf.key}=... or put it in --config")
    return built


def _parse_set(value: str, item: str) -> Any:
    try:
        return _parse_text(value)
    except _Wrong:
        raise InputError(f"--set {item!r}: not valid YAML") from None


def _inside_mapping(cls: type, path: tuple[str, ...]) -> bool:
    """``path`` goes into a ``dict`` setting (``training_args.warmup_ratio``): any key is allowed there."""
    for leaf in leaves(cls):
        n = len(leaf.path)
        if len(path) > n and path[:n] == leaf.path and (leaf.kind is dict or typing.get_origin(leaf.kind) is dict):
            return True
    return False


def _inside_list(cls: type, path: tuple[str, ...], data: dict[str, Any]) -> bool:
    """``path`` names a setting of one item of a list of sections (``train_data.0.queries``) that the
    file already holds."""
    for leaf in leaves(cls):
        n = len(leaf.path)
        item = _list_item(leaf.kind)
        if len(path) > n + 1 and path[:n] == leaf.path and item is not None and _is_section(item):
            found = data
            for part in leaf.path:
                found = found.get(part) if isinstance(found, dict) else None
            if not (isinstance(found, list) and path[n].isdigit() and int(path[n]) < len(found)):
                return False
            return ".".join(path[n + 1:]) in {sub.key for sub in leaves(item)}
    return False


def _put(data: Any, path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        if isinstance(data, list):
            data = data[int(part)]
            continue
        nxt = data.get(part)
        if not isinstance(nxt, (dict, list)):
            nxt = data[part] = {}
        data = nxt
    if isinstance(data, list):
        data[int(path[-1])] = value
    else:
        data[path[-1]] = value


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    return obj


def print_and_exit(config: Any, args: argparse.Namespace) -> bool:
    """``--print-config``: print the resolved settings and say so (the command then returns 0)."""
    if getattr(args, "o1opt_print", False):
        print(to_yaml(config), end="")
        return True
    return False
