"""Typed training configuration: one dataclass per concern, help text on every field, unknown keys rejected.

A config file (JSON, or YAML when PyYAML is installed) has the sections below; ``training_args`` is
passed through to Hugging Face ``TrainingArguments`` unchanged. The effective config is written beside
the output and every checkpoint as ``o1emb_train.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..formats import read_text
from ..templates import TemplateConfig

CONFIG_FILE = "o1emb_train.json"
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _help(text: str, default: Any = MISSING, factory: Any = MISSING) -> Any:
    if factory is not MISSING:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


@dataclass
class DataConfig:
    """How training rows become batches."""

    group_size: int = _help("documents per query: 1 positive + (group_size - 1) hard negatives (reference 16)", 16)
    thought_dropout: float = _help("probability that a row is trained without its thought (reference 0.1)", 0.1)
    require_hard_negatives: bool = _help("a row with an empty 'neg' is an error (when group_size > 1)", True)
    max_query_tokens: int = _help("query text cut to this many tokens (reference 32)", 32)
    max_query_thought_tokens: int = _help("query + thought sequence length; the thought is cut (reference 256)", 256)
    max_passage_tokens: int = _help("document sequence length (reference 192)", 192)
    seed: int = _help("seed of negative sampling and thought dropout", 0)

    def validate(self) -> DataConfig:
        if self.group_size < 1:
            raise InputError(f"group_size must be >= 1, got {self.group_size}")
        if not 0.0 <= self.thought_dropout <= 1.0:
            raise InputError(f"thought_dropout must be in [0, 1], got {self.thought_dropout}")
        return self

    def template(self) -> TemplateConfig:
        return TemplateConfig(max_query_tokens=self.max_query_tokens,
                              max_query_thought_tokens=self.max_query_thought_tokens,
                              max_passage_tokens=self.max_passage_tokens)


@dataclass
class LossConfig:
    """The joint objective lam * (InfoNCE [+ distillation]) + (1 - lam) * thought LM."""

    temperature: float = _help("InfoNCE temperature (reference 0.02)", 0.02)
    lam: float = _help("weight of the contrastive part; (1 - lam) weighs the thought LM loss (reference 0.8)", 0.8)
    in_batch: bool = _help("use every document of the batch as a negative, not only the query's group", True)
    cross_device: bool = _help("with several processes, also use every other rank's documents", True)
    distill: bool = _help("add soft-target distillation from pos_scores/neg_scores (needed in every row)", False)
    distill_weight: float = _help("weight of the distillation term inside the contrastive part", 1.0)
    teacher_temperature: float = _help("temperature applied to teacher scores before their softmax", 1.0)

    def validate(self) -> LossConfig:
        if not 0.0 <= self.lam <= 1.0:
            raise InputError(f"lam must be in [0, 1], got {self.lam}")
        if self.temperature <= 0 or self.teacher_temperature <= 0:
            raise InputError("temperatures must be > 0")
        return self


@dataclass
class AdapterConfig:
    """LoRA (default) or full fine-tuning."""

    mode: str = _help("'lora' (adapters + the four special-token rows) or 'full' (every weight)", "lora")
    r: int = _help("LoRA rank (reference 32)", 32)
    alpha: int = _help("LoRA alpha (reference 64)", 64)
    dropout: float = _help("LoRA dropout (on CPU, 0 makes a step about a third faster: drawing the "
                           "dropout masks costs as much as the matrix products there)", 0.05)
    target_modules: list[str] = _help("projections that get adapters (default: all attention and MLP)",
                                      factory=lambda: list(PROJECTIONS))
    train_special_tokens: bool = _help("make the embedding and LM-head rows of the special tokens trainable", True)

    def validate(self) -> AdapterConfig:
        if self.mode not in {"lora", "full"}:
            raise InputError(f"mode must be 'lora' or 'full', got {self.mode!r}")
        if self.r < 1 or self.alpha < 1:
            raise InputError("LoRA r and alpha must be >= 1")
        return self


@dataclass
class GradCacheConfig:
    """Chunked contrastive training (Gao et al. 2021): big batches in small memory, same gradients."""

    enabled: bool = _help("run the GradCache path (no graph for the whole batch at once)", False)
    query_chunk: int = _help("queries per chunk in the forward/backward passes", 8)
    doc_chunk: int = _help("documents per chunk in the forward/backward passes", 32)


@dataclass
class TrainConfig:
    """Everything ``o1emb train`` needs; saved as ``o1emb_train.json`` beside the output."""

    model: str = _help("base model: a causal LM folder or hub id (the four tokens are added if missing)", "")
    data: str = _help("training rows (JSONL: query, pos, neg, thought, optional pos_scores/neg_scores)", "")
    out: str = _help("output folder: checkpoints, the merged O1 model and this config", "")
    dtype: str = _help("weights dtype while training; float32 master weights are the safe choice, the "
                       "speed comes from mixed precision", "float32")
    mixed_precision: str = _help("'auto' (bf16 autocast on CUDA with bf16 and on CPUs with native bf16: "
                                 "about 3x a float32 LoRA step on an AVX512-BF16 CPU), 'bf16', 'fp16' or "
                                 "'no'; a bf16/fp16 flag in training_args wins", "auto")
    export_merged: bool = _help("after training, write the merged O1 model to OUT/final", True)
    data_cfg: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    gradcache: GradCacheConfig = field(default_factory=GradCacheConfig)
    training_args: dict[str, Any] = _help("passed to transformers.TrainingArguments as they are", factory=dict)

    def validate(self) -> TrainConfig:
        for name in ("model", "data", "out"):
            if not getattr(self, name):
                raise InputError(f"'{name}' is required")
        if self.mixed_precision not in {"auto", "bf16", "fp16", "no"}:
            raise InputError(f"mixed_precision must be 'auto', 'bf16', 'fp16' or 'no', got {self.mixed_precision!r}")
        self.data_cfg.validate()
        self.loss.validate()
        self.adapter.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _build(cls, data, "train config")


_SECTIONS = {"data_cfg": DataConfig, "loss": LossConfig, "adapter": AdapterConfig, "gradcache": GradCacheConfig}


def _build(cls: type, data: dict[str, Any], what: str) -> Any:
    if not isinstance(data, dict):
        raise InputError(f"{what}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"{what}: unknown keys {unknown} (known: {sorted(known)})")
    kwargs = {k: (_build(_SECTIONS[k], v, k) if k in _SECTIONS and cls is TrainConfig else v)
              for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InputError(f"{what}: {exc}") from None


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON or YAML config file into a dict (validated later by :meth:`TrainConfig.from_dict`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("config file not found", path=path)
    text = read_text(path)
    if path.suffix in {".yaml", ".yml"}:
        try:
            import yaml
        except ImportError:
            raise InputError("YAML config needs PyYAML (pip install pyyaml); or use JSON", path=path) from None
        data = yaml.safe_load(text) or {}
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON ({exc.msg})", path=path, line=exc.lineno) from None
    if not isinstance(data, dict):
        raise InputError("a config file must hold a mapping", path=path)
    return data


def field_help(cls: type) -> dict[str, str]:
    """``{field name: help text}`` of a config dataclass (used by the CLI and the docs)."""
    return {f.name: f.metadata.get("help", "") for f in fields(cls)}
