"""The recipe's cache: which settings each stage depends on, and the provenance record of every output.

Every cached output (a file or a folder) has a record beside it (``OUTPUT.provenance.json``, see
:mod:`o1embedder.provenance`): the :class:`~.config.RealConfig` fields of :data:`SETTINGS` for its
kind, the resolved ``device`` and ``dtype`` where a model runs, and the fingerprints of its inputs
(upstream records, data files, models). An output is reused only when its record matches; otherwise
the output and its partial state (journals, Trainer or RL checkpoints, index shards) are removed and
remade, and every stage below it follows because its record lists the changed fingerprint. A stage
killed midway finds its own pending record (same fingerprint) and resumes its partial state.

Where each setting acts (the rest of the recipe does not see it):

- ``steps``, ``learning_rate``, LoRA, loss and batch settings, ``passage_tokens``,
  ``query_thought_tokens``: training (all three models) and everything evaluated from the models;
  ``passage_tokens`` also every SmolLM2 index (the untrained ``base`` model's too).
- ``k`` and the expert's settings: synthesis, then refinement and the two O1 models (not
  ``contrastive-only``, which trains on the mined rows); the expert's sampling settings (not ``k``)
  also its bolted-on thoughts for evaluation queries.
- ``n_thoughts``, ``think_*``: the O1 models' thinking (k1/k3 rows), the contrastive-only model given
  those thoughts, and latency; ``think_max_new_tokens`` also the RL rollouts.
- mining settings (``negatives``, ``doc_words``, ``seed``, ...): everything but the BM25 / MiniLM
  baselines and the ``base`` model's rows; ``bm25`` also the BM25 index and the committee.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .. import provenance
from ..log import get_logger
from .config import RealConfig

logger = get_logger(__name__)
T = TypeVar("T")

_EXPERT = ("expert_max_tokens", "expert_temperature", "expert_top_p", "expert_batch", "paper_shots",
           "shot_words", "seed", "device", "dtype")
_THINK = ("n_thoughts", "think_temperature", "think_top_p", "think_max_new_tokens", "device", "dtype")
SETTINGS: dict[str, tuple[str, ...]] = {
    "convert": (),
    "mine": ("seed", "negatives", "doc_words", "nfcorpus_train_queries", "scifact_validation", "bm25"),
    "validation": ("seed", "scifact_validation", "nfcorpus_validation"),
    "no-thoughts": (),
    "synthesize": ("k", *_EXPERT),
    "refine": ("committee_policy", "committee_max_length", "bm25", "device"),
    "train": ("steps", "batch_size", "group_size", "learning_rate", "lam", "temperature", "thought_dropout",
              "lora_r", "lora_alpha", "lora_dropout", "passage_tokens", "query_thought_tokens", "seed",
              "device", "dtype"),
    "rl": ("rl_steps", "rl_rows_per_step", "rl_samples", "rl_rollout_temperature", "rl_learning_rate",
           "rl_kl_coef", "rl_contrastive_weight", "group_size", "temperature", "think_max_new_tokens",
           "lora_r", "lora_alpha", "seed", "device", "dtype"),
    "index-o1": ("passage_tokens", "device", "dtype"),
    "index-bm25": ("bm25",),
    "index-st": ("device",),
    "expert-thoughts": _EXPERT,
    "thoughts": _THINK,
    "result": ("device", "dtype"),
    "latency": ("latency_queries", *_THINK),
}
"""Stage kind -> the settings it depends on itself (its inputs carry the rest)."""


class Stage:
    """One cached output and its record. ``upstream`` stages are inputs by their fingerprints (and
    pass on their lineage); ``inputs`` adds other fingerprints (data files, models); ``extras`` are
    the stage's other files and partial state, removed with the output when the record differs."""

    def __init__(self, config: RealConfig, kind: str, output: Path, *, name: str | None = None,
                 upstream: Iterable[Stage] = (), inputs: dict[str, str] | None = None,
                 extras: Iterable[Path] = ()) -> None:
        self.output, self.extras, self.name, self.kind = Path(output), [Path(p) for p in extras], name or kind, kind
        settings = {key: runtime(config, key) for key in SETTINGS[kind]}
        found, lineage = dict(inputs or {}), {}
        for stage in upstream:
            found[stage.name] = stage.fingerprint
            lineage.update(stage.record.lineage)
        self.record = provenance.Record(self.name, settings, found, {**lineage, **settings})

    @property
    def fingerprint(self) -> str:
        return self.record.fingerprint

    def stored(self) -> dict[str, Any] | None:
        return provenance.read(self.output)

    def fresh(self) -> bool:
        """Finished with these very settings and inputs, and its output is there."""
        old = self.stored()
        return bool(old and old.get("complete") and old.get("fingerprint") == self.fingerprint
                    and self.output.exists())

    def begin(self) -> None:
        """Before the work: keep a partial state made with the same record (resume it), remove any
        other; then record the stage as pending."""
        old = self.stored()
        if old is None or old.get("fingerprint") != self.fingerprint:
            if self.output.exists() or any(p.exists() for p in self.extras):
                logger.log(logging.DEBUG if self.kind == "result" else logging.INFO,
                           "%s: made with other settings or inputs (%s): removed, recomputed", self.name,
                           "; ".join(provenance.differences(old, self.record)[:4]))
            provenance.remove(self.output, *self.extras)
        provenance.write(self.output, self.record, complete=False)

    def finish(self, **outputs: Any) -> None:
        provenance.write(self.output, self.record, complete=True, outputs=outputs)

    def outputs(self) -> dict[str, Any]:
        return (self.stored() or {}).get("outputs") or {}

    def run(self, work: Callable[[], T], outputs: Callable[[T], dict[str, Any]] | None = None) -> T | Path:
        """The output if fresh; else ``begin``, ``work()``, ``finish`` (with ``outputs(result)``)."""
        if self.fresh():
            return self.output
        self.begin()
        result = work()
        self.finish(**(outputs(result) if outputs else {}))
        return result


def runtime(config: RealConfig, key: str) -> Any:
    """A setting's value as recorded: ``device`` and ``dtype`` resolved, tuples as lists."""
    if key == "device":
        return config.resolved_device()
    if key == "dtype":
        return config.inference_dtype()
    value = getattr(config, key)
    return list(value) if isinstance(value, tuple) else value


# -- fingerprints of inputs ------------------------------------------------------------------------
_DIGESTS: dict[tuple[str, int, int], str] = {}


def path_digest(path: str | os.PathLike[str]) -> str:
    """:func:`provenance.file_digest`, remembered per (path, size, mtime) within the process."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = provenance.file_digest(path)
    return _DIGESTS[key]


def data_digest(config: RealConfig, dataset: str, *files: str) -> str:
    """Fingerprint of some files of one BEIR dataset (``corpus.jsonl``, ``qrels/test.tsv``, ...)."""
    folder = config.beir(dataset)
    return provenance.digest({name: path_digest(folder / name) for name in files})


def model_fingerprint(path: Path) -> str | None:
    """An O1 model folder's fingerprint as saved in ``o1embedder.json`` (``None`` when it has none);
    :meth:`O1Embedder.fingerprint` returns the same value for the loaded weights."""
    try:
        data = json.loads((Path(path) / "o1embedder.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (data.get("identity") or {}).get("fingerprint")


# -- what the stages so far made ---------------------------------------------------------------------
@dataclass
class Model:
    """A model of the recipe: its folder, the stage that made it and its fingerprint."""

    path: Path
    stage: Stage
    fingerprint: str | None


@dataclass
class Run:
    """The recipe's state after training: what evaluation reads."""

    config: RealConfig
    base: Model
    mine: Stage
    validation: Stage
    minilm: str
    refined: dict[str, Stage]
    models: dict[str, Model] = field(default_factory=dict)
