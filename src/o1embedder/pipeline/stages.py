"""The recipe's cache: which settings each stage depends on, and the provenance record of every output.

Every cached output (a file or a folder) has a record beside it (``OUTPUT.provenance.json``, see
:mod:`o1embedder.provenance`): the recipe settings of :data:`SETTINGS` for its kind (dotted keys),
the entries of the recipe's lists it reads (its training set, its expert), the resolved ``device``
and ``dtype`` where a model runs, and the fingerprints of its inputs (upstream records, data files,
models). An output is reused only when its record matches; otherwise the output and its partial
state (journals, checkpoints, index shards) are removed and remade, and every stage below it follows
because its record lists the changed fingerprint. A stage killed midway finds its own pending record
(same fingerprint) and resumes its partial state.

Where each setting acts (the rest of the recipe does not see it):

- ``training.*``: training (every model) and everything evaluated from the models;
  ``training.passage_tokens`` also every index of an LM (the untrained ``base`` model's too).
- ``synthesis.*`` and an expert's entry: its synthesis, then refinement and its O1 model (not
  ``contrastive-only``, which trains on the mined rows); the sampling settings (not ``k``) also the
  bolted-on thoughts for evaluation queries.
- ``thinking.*``: the O1 models' thinking (kN rows), the contrastive-only model given those
  thoughts, and latency; ``thinking.max_new_tokens`` also the RL rollouts. ``thinking.plain_weight``
  mixes vectors, not thoughts: it redoes the rows that embed with thoughts, the policies and latency,
  never the thoughts.
- ``mining.*``, ``seed`` and the training sets' entries: everything but the retriever baselines and
  the ``base`` model's rows; a retriever's spec, whatever reads it (its index, the committee, mining).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .. import provenance
from ..log import get_logger
from .recipe import Recipe

logger = get_logger(__name__)
T = TypeVar("T")

_SAMPLING = ("synthesis.max_tokens", "synthesis.temperature", "synthesis.top_p", "synthesis.batch_size", "seed",
             "device", "dtype")
_THINK = ("thinking.n_thoughts", "thinking.temperature", "thinking.top_p", "thinking.max_new_tokens",
          "thinking.repetition_penalty", "thinking.no_repeat_ngram_size", "thinking.exit_eps",
          "thinking.exit_every", "thinking.exit_patience", "thinking.batch_size", "device", "dtype")
_ADAPTER = ("training.adapter.mode", "training.adapter.r", "training.adapter.alpha", "training.adapter.target_modules",
            "training.adapter.train_special_tokens")
_TRAINING = ("training.steps", "training.epochs", "training.batch_size", "training.group_size",
             "training.learning_rate", "training.warmup", "training.lam", "training.temperature",
             "training.lm_warmup_steps", "training.lm_lr_scale", "training.heldout_thoughts",
             "training.thought_dropout", *_ADAPTER, "training.adapter.dropout", "training.query_tokens",
             "training.query_thought_tokens",
             "training.passage_tokens", "training.mixed_precision", "training.gradient_checkpointing",
             "training.processes", "training.training_args", "seed", "device", "dtype")
SETTINGS: dict[str, tuple[str, ...]] = {
    "convert": (),
    "mine": ("seed", "mining.negatives", "mining.doc_words"),
    "validation": ("seed",),
    "heldout-rows": ("seed", "mining.negatives", "mining.doc_words", "training.heldout_thoughts"),
    "heldout-lm": ("training.query_tokens", "training.query_thought_tokens", "device"),
    "no-thoughts": (),
    "synthesize": ("synthesis.k", *_SAMPLING),
    "refine": ("committee.policy", "committee.max_length", "device"),
    "train": _TRAINING,
    "rl": ("rl.steps", "rl.rows_per_step", "rl.samples", "rl.rollout_temperature", "rl.learning_rate",
           "rl.kl_coef", "rl.contrastive_weight", "rl.resample", "training.group_size", "training.temperature",
           "thinking.max_new_tokens", *_ADAPTER,
           "training.mixed_precision", "seed", "device", "dtype"),
    "index-o1": ("training.passage_tokens", "indexing.batch_size", "device", "dtype"),
    "index-bm25": (),
    "index-st": ("device",),
    "expert-thoughts": _SAMPLING,
    "thoughts": _THINK,
    "result": ("device", "dtype"),
    "latency": ("latency.queries", *_THINK, "thinking.plain_weight"),
    "policy": ("policy.rows", "policy.negatives", "policy.sample", "policy.calibration", "policy.features",
               "policy.l2", *_THINK, "thinking.plain_weight", "seed"),
    "auto-share": ("policy.shares", "policy.share"),
}
"""Stage kind -> the recipe settings it depends on itself (its inputs carry the rest; a stage adds the
entries of the recipe's lists it reads through ``settings=``)."""


class Stage:
    """One cached output and its record. ``upstream`` stages are inputs by their fingerprints (and
    pass on their lineage); ``inputs`` adds other fingerprints (data files, models); ``extras`` are
    the stage's other files and partial state, removed with the output when the record differs."""

    def __init__(self, recipe: Recipe, kind: str, output: Path, *, name: str | None = None,
                 upstream: Iterable[Stage] = (), inputs: dict[str, str] | None = None,
                 extras: Iterable[Path] = (), settings: dict[str, Any] | None = None) -> None:
        self.output, self.extras, self.name, self.kind = Path(output), [Path(p) for p in extras], name or kind, kind
        settings = {**{key: runtime(recipe, key) for key in SETTINGS[kind]}, **(settings or {})}
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


def runtime(recipe: Recipe, key: str) -> Any:
    """A setting's value as recorded: ``device`` and ``dtype`` resolved, sections as plain data."""
    from ..options import to_dict

    if key == "device":
        return resolved_device(recipe.device)
    if key == "dtype":
        return inference_dtype(recipe.device, recipe.dtype)
    value: Any = recipe
    for part in key.split("."):
        value = getattr(value, part)
    return to_dict(value) if not isinstance(value, (str, int, float, bool, type(None))) else value


@functools.cache
def resolved_device(device: str) -> str:
    """``cpu`` or ``cuda[:N]``: ``auto`` decided (CUDA when present)."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.cache
def inference_dtype(device: str, dtype: str = "auto") -> str:
    """The recipe's ``dtype`` with ``auto`` decided on the resolved device (bf16 on CUDA and on CPUs
    with native bf16, else float32)."""
    if dtype != "auto":
        return dtype
    import torch

    from ..checkpoints import auto_dtype, dtype_name

    return dtype_name(auto_dtype(torch.device(resolved_device(device))))


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


def data_digest(folder: Path, *files: str) -> str:
    """Fingerprint of some files of one BEIR folder (``corpus.jsonl``, ``qrels/test.tsv``, ...; a
    gzipped file stands for its name)."""
    def one(name: str) -> str:
        path = folder / name
        return path_digest(path if path.is_file() else folder / f"{name}.gz")

    return provenance.digest({name: one(name) for name in files})


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

    recipe: Recipe
    inputs: Any
    base: Model
    mine: Stage
    validation: Stage
    refined: dict[str, Stage]
    models: dict[str, Model] = field(default_factory=dict)
