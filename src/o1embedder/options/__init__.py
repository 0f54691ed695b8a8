"""One way to configure every command: a typed dataclass per command, filled in this order from its
defaults, a YAML or JSON file (``--config FILE``), flags of the same names (``--batch-size 16``) and
``--set KEY=VALUE`` (dotted keys reach nested sections: ``--set adapter.r=16``,
``--set training_args.warmup_ratio=0.1``); ``--print-config`` prints the result as YAML and exits.

A setting is declared once, with :func:`setting` (help text, flag name, aliases); its type is its
annotation (``int``, ``float``, ``str``, ``bool``, ``X | None``, ``Literal[...]`` for choices,
``list``/``tuple``, ``dict``, or a nested dataclass: a section). Every error names the key, and for a
file its line: ``recipe.yaml:12: field 'training.steps': expected an integer, got 'many'``.

Settings shared by several commands are typed here once (:data:`Dtype`, :data:`MixedPrecision`), so
they have one name, type and set of choices everywhere (``tests/test_options.py`` checks it).
"""

from __future__ import annotations

from .build import Origin, build, to_dict, to_yaml
from .cli import add_options, print_and_exit, resolve
from .fields import Leaf, leaves, setting
from .files import load_file
from .types import Dtype, MixedPrecision, coerce

__all__ = ["Dtype", "Leaf", "MixedPrecision", "Origin", "add_options", "build", "coerce", "leaves", "load_file",
           "print_and_exit", "resolve", "setting", "to_dict", "to_yaml"]
