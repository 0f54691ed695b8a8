"""Setting types: the shared ones (:data:`Dtype`, :data:`MixedPrecision`), their names and choices,
and how a value from a file or the command line becomes one (:func:`coerce`)."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

Dtype = Literal["auto", "float32", "bfloat16", "float16"]


"""Weights dtype. ``auto``: for inference bf16 on CUDA and on CPUs with native bf16, else float32;
for training float32 master weights (the speed comes from ``mixed_precision``)."""


MixedPrecision = Literal["auto", "bf16", "fp16", "no"]


"""Autocast while training. ``auto``: bf16 on CUDA with bf16 and on CPUs with native bf16, else none."""


def _union_args(kind: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return typing.get_args(kind)
    return None


def _choices(kind: Any) -> tuple[Any, ...] | None:
    args = _union_args(kind)
    if args:
        found = [c for a in args if a is not type(None) for c in (_choices(a) or ())]
        return tuple(found) or None
    if typing.get_origin(kind) is Literal:
        return typing.get_args(kind)
    return None


def _type_name(kind: Any) -> str:
    args = _union_args(kind)
    if args:
        return " | ".join(_type_name(a) for a in args)
    if kind is type(None):
        return "None"
    origin = typing.get_origin(kind)
    if origin is Literal:
        return "Literal[" + ", ".join(map(repr, typing.get_args(kind))) + "]"
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(kind))}]"
    return getattr(kind, "__name__", str(kind))


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


class _Wrong(Exception):
    """A value that does not fit its type: the message says what was expected."""


def coerce(value: Any, kind: Any, *, text: bool = False) -> Any:
    """``value`` as ``kind``; ``text``: it came from the command line (``"3"`` may be an int there)."""
    args = _union_args(kind)
    if args:
        if value is None or (text and isinstance(value, str) and value.strip().lower() in {"null", "none", "~"}):
            if type(None) in args:
                return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(value, option, text=text)
            except _Wrong as exc:
                errors.append(str(exc))
        raise _Wrong(" or ".join(errors))
    origin = typing.get_origin(kind)
    if kind is Any:
        return value
    if origin is Literal:
        choices = typing.get_args(kind)
        for choice in choices:
            if value == choice or (text and isinstance(value, str) and value == str(choice)):
                return choice
        raise _Wrong(f"one of {', '.join(map(str, choices))}, got {value!r}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if text and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _Wrong(f"true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (kind is float or isinstance(value, int)):
            return kind(value)
        if isinstance(value, str) and (text or kind is float):     # YAML reads 1e-4 (no dot) as a string
            try:
                return kind(value.strip())
            except ValueError:
                pass
        raise _Wrong(f"{'an integer' if kind is int else 'a number'}, got {value!r}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise _Wrong(f"a string, got {value!r}")
    if origin in (list, tuple):
        item = (typing.get_args(kind) or (Any,))[0]
        if text and isinstance(value, str):
            value = _parse_text(value) if value.strip().startswith("[") else \
                [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise _Wrong(f"a list, got {value!r}")
        items = [coerce(v, item, text=text) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or kind is dict:
        if text and isinstance(value, str):
            value = _parse_text(value)
        if not isinstance(value, dict):
            raise _Wrong(f"a mapping, got {value!r}")
        return dict(value)
    return value


def _parse_text(value: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        raise _Wrong(f"YAML, got {value!r}") from None
