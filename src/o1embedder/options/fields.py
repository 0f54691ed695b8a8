"""Declaring settings (:func:`setting`) and listing them, sections unfolded (:func:`leaves`)."""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import MISSING, dataclass, field
from typing import Any

from .types import _choices, _type_name


def setting(help: str, default: Any = MISSING, *, factory: Any = MISSING, flag: str | None = None,
            aliases: dict[str, Any] | None = None, required: bool = False, no_flag: bool = False) -> Any:
    """A dataclass field with its help text. ``flag``: the option's name without dashes (default:
    the field name with dashes, ``SECTION-NAME`` inside a section); ``aliases``: extra flags that set
    a fixed value (``{"no-think": False}``); ``required``: must be given (by a flag, the file or
    ``--set``); ``no_flag``: settable only from the file or ``--set``."""
    meta = {"help": help, "flag": flag, "aliases": dict(aliases or {}), "required": required, "no_flag": no_flag}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Leaf:
    """One setting of a configuration: its dotted key, annotation, default, help and flags."""

    path: tuple[str, ...]
    kind: Any
    default: Any
    help: str
    flag: str | None
    aliases: dict[str, Any]
    required: bool

    @property
    def key(self) -> str:
        return ".".join(self.path)

    @property
    def dest(self) -> str:
        return "o1opt__" + "__".join(self.path)

    @property
    def choices(self) -> tuple[Any, ...] | None:
        return _choices(self.kind)

    def type_name(self) -> str:
        return _type_name(self.kind)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


@functools.cache
def leaves(cls: type, prefix: tuple[str, ...] = ()) -> tuple[Leaf, ...]:
    """Every setting of ``cls``, sections unfolded (a section's own settings carry its name in their key)."""
    hints, out = _hints(cls), []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        kind, meta = hints[f.name], f.metadata
        if _is_section(kind):
            out += leaves(kind, (*prefix, f.name))
            continue
        flag = None
        if not meta.get("no_flag"):
            flag = meta.get("flag") or "-".join((*prefix, f.name)).replace("_", "-")
        out.append(Leaf((*prefix, f.name), kind, _default(f), meta.get("help", ""), flag,
                        dict(meta.get("aliases") or {}), bool(meta.get("required"))))
    return tuple(out)


def _list_item(kind: Any) -> Any:
    if typing.get_origin(kind) in (list, tuple):
        return (typing.get_args(kind) or (None,))[0]
    return None
