"""``OUT/final``: the merged O1 model after RL, with its config and the run record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from .. import resume
from ..provenance import Record
from ..training.adapters import export_merged
from .config import CONFIG_FILE
from .runlog import write_text

if TYPE_CHECKING:
    from .parts import RLParts


def export(parts: RLParts, final: Path, record: Record) -> None:
    """The merged model, its config and record into ``final``, filled under a temporary name and
    renamed (:func:`resume.staged`), so a run killed while exporting leaves no ``final`` that looks
    finished. Rank 0 only."""
    lm = parts.lm
    for param in lm.parameters():
        param.requires_grad_(False)
    with resume.staged(final, record) as tmp:
        export_merged(lm, parts.o1.tokenizer, parts.o1.settings, tmp)
        write_text(tmp / CONFIG_FILE, json.dumps(parts.config.to_dict(), indent=2) + "\n")
