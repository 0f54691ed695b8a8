"""Settings files: YAML or JSON read with the line of every key (duplicate keys refused)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError


def load_file(path: str | Path) -> tuple[dict[str, Any], dict[str, int]]:
    """A YAML or JSON settings file -> (mapping, {dotted key: line}). Duplicate keys are refused."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError("settings file not found", path=path)
    from ..formats import read_text

    text = read_text(path)
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"not valid YAML/JSON ({getattr(exc, 'problem', None) or exc})", path=path,
                         line=None if mark is None else mark.line + 1) from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise InputError(f"a settings file must hold a mapping, got {type(data).__name__}", path=path, line=1)
    lines: dict[str, int] = {}
    _walk(node, (), lines, path)
    return data, lines


def _walk(node: Any, prefix: tuple[str, ...], lines: dict[str, int], path: Path) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = (*prefix, str(key_node.value))
            if key in seen:
                raise InputError(f"key {'.'.join(key)!r} given twice", path=path, line=key_node.start_mark.line + 1)
            seen.add(key)
            lines[".".join(key)] = key_node.start_mark.line + 1
            _walk(value_node, key, lines, path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[".".join((*prefix, str(i)))] = item.start_mark.line + 1
            _walk(item, (*prefix, str(i)), lines, path)
