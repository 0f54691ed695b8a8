"""A configuration from a (nested) mapping, every error naming its key and origin; and back to data."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from .fields import _default, _hints, _is_section, _list_item
from .types import _parse_text, _Wrong, coerce


@dataclass
class Origin:
    """Where values came from, for error messages: a file and its key lines, flags, ``--set``."""

    file: str | None = None
    lines: dict[str, int] = field(default_factory=dict)
    given: dict[str, str] = field(default_factory=dict)
    """dotted key -> how it was given on the command line (``--batch-size``, ``--set``)."""

    def error(self, key: str, message: str) -> InputError:
        if key in self.given:
            return InputError(f"{self.given[key]}: {message}")
        line = self._line(key)
        if self.file is not None and line is not None:
            return InputError(message, path=self.file, line=line, field=key)
        return InputError(message, field=key)

    def _line(self, key: str) -> int | None:
        parts = key.split(".")
        while parts:
            found = self.lines.get(".".join(parts))
            if found is not None:
                return found
            parts.pop()
        return None


def build(cls: type, data: dict[str, Any], origin: Origin | None = None, *, prefix: str = "",
          text: frozenset[str] = frozenset(), start: Any = None) -> Any:
    """An instance of ``cls`` from a (nested) mapping: unknown keys and wrong types are refused with
    the key and its origin; absent keys keep their defaults - a section's those of the field that holds
    it (``start``, its ``default_factory``'s value), not its class's. ``text``: keys given as
    command-line text."""
    origin = origin or Origin()
    if not isinstance(data, dict):
        raise origin.error(prefix.rstrip(".") or "(top)", f"expected a mapping, got {type(data).__name__}")
    hints = _hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in known:
            raise origin.error(f"{prefix}{key}", f"unknown setting {key!r}"
                               f"{' in ' + prefix.rstrip('.') if prefix else ''} (known: {', '.join(sorted(known))})")
    kwargs = {} if start is None or start is dataclasses.MISSING else {n: getattr(start, n) for n in known}
    for name, value in data.items():
        kind, key = hints[name], f"{prefix}{name}"
        if _is_section(kind):
            kwargs[name] = build(kind, value, origin, prefix=f"{key}.", text=text, start=_default(known[name]))
            continue
        item = _list_item(kind)
        if item is not None and _is_section(item) and key in text and isinstance(value, str):
            try:                # --set 'experts=[{name: paper, ...}]': a list of sections as YAML text
                value = _parse_text(value)
            except _Wrong as exc:
                raise origin.error(key, f"expected {exc}") from None
        if item is not None and _is_section(item) and isinstance(value, list):
            kwargs[name] = [_required(build(item, v, origin, prefix=f"{key}.{i}.", text=text), origin, f"{key}.{i}.")
                            for i, v in enumerate(value)]
            continue
        try:
            kwargs[name] = coerce(value, kind, text=key in text)
        except _Wrong as exc:
            raise origin.error(key, f"expected {exc}") from None
    return cls(**kwargs)


def _required(item: Any, origin: Origin, prefix: str) -> Any:
    """An item of a list of sections with its required settings given."""
    for f in dataclasses.fields(item):
        if f.metadata.get("required") and getattr(item, f.name) in ("", None):
            raise origin.error(f"{prefix}{f.name}", "required, not given")
    return item


def to_dict(config: Any) -> dict[str, Any]:
    """A configuration as plain data (tuples as lists), as files and records hold it."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(config)


def to_yaml(config: Any) -> str:
    import yaml

    return yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True, default_flow_style=False)
