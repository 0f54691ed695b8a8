"""Typed training configuration: one dataclass per concern, help text on every field, unknown keys rejected.

The settings of ``o1emb train`` (:mod:`o1embedder.options`: ``--config FILE``, a flag per setting,
``--set KEY=VALUE``, ``--print-config``). A config file (YAML or JSON) has the sections below;
``training_args`` is passed through to Hugging Face ``TrainingArguments`` unchanged. The effective
config is written beside the output and every checkpoint as ``o1emb_train.json``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from ..errors import InputError
from ..options import Dtype, MixedPrecision, Origin, build, load_file, setting
from ..templates import TemplateConfig

CONFIG_FILE = "o1emb_train.json"
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

TRAIN_DTYPE_HELP = ("weights dtype while training; auto: float32 master weights (the safe choice, the "
                    "speed comes from mixed_precision)")
TRAIN_DEVICE_HELP = ("auto: CUDA when present (each torchrun rank its own GPU), else CPU; cpu: train on the "
                     "CPU even with a GPU (choose GPUs with CUDA_VISIBLE_DEVICES)")


@dataclass
class DataConfig:
    """How training rows become batches."""

    group_size: int = setting("documents per query: 1 positive + (group_size - 1) hard negatives (reference)", 16,
                              flag="group-size")
    thought_dropout: float = setting("probability that a row is trained without its thought (reference)", 0.1,
                                     flag="thought-dropout")
    require_hard_negatives: bool = setting("a row with an empty 'neg' is an error when group_size > 1 "
                                           "(--no-require-hard-negatives: fill with other rows' positives)",
                                           True, flag="require-hard-negatives")
    max_query_tokens: int = setting("query text cut to this many tokens (reference)", 32, flag="max-query-tokens")
    max_query_thought_tokens: int = setting("query + thought sequence length; the thought is cut (reference)", 256,
                                            flag="max-query-thought-tokens")
    max_passage_tokens: int = setting("document sequence length (reference)", 192, flag="max-passage-tokens")
    seed: int = setting("seed of negative sampling and thought dropout (--set data_cfg.seed=N)", 0, no_flag=True)

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

    temperature: float = setting("InfoNCE temperature (reference)", 0.02, flag="temperature")
    lam: float = setting("weight of the contrastive part; (1 - lam) weighs the thought LM loss (reference)", 0.8,
                         flag="lam")
    in_batch: bool = setting("use every document of the batch as a negative, not only the query's group "
                             "(--no-in-batch: the group only)", True, flag="in-batch")
    cross_device: bool = setting("with several processes, also use every other rank's documents "
                                 "(--no-cross-device: this rank's only)", True, flag="cross-device")
    distill: bool = setting("add soft-target distillation from pos_scores/neg_scores (needed in every row)", False,
                            flag="distill")
    distill_weight: float = setting("weight of the distillation term inside the contrastive part", 1.0,
                                    flag="distill-weight")
    teacher_temperature: float = setting("temperature applied to teacher scores before their softmax", 1.0,
                                         flag="teacher-temperature")
    lm_warmup_steps: int = setting("for the first N optimizer steps the loss is the thought LM loss alone (lam "
                                   "taken as 0), then the joint loss (default 0: no warm-up)", 0,
                                   flag="lm-warmup-steps")
    lm_lr_scale: float = setting("learning rate of the parameters only the thought LM loss trains (the LM head "
                                 "when it is not tied to the input embedding), as a multiple of the learning "
                                 "rate (default 1.0: the same)", 1.0, flag="lm-lr-scale")

    def validate(self) -> LossConfig:
        if not 0.0 <= self.lam <= 1.0:
            raise InputError(f"lam must be in [0, 1], got {self.lam}")
        if self.temperature <= 0 or self.teacher_temperature <= 0:
            raise InputError("temperatures must be > 0")
        if self.lm_warmup_steps < 0:
            raise InputError(f"lm_warmup_steps must be >= 0, got {self.lm_warmup_steps}")
        if self.lm_lr_scale < 0:
            raise InputError(f"lm_lr_scale must be >= 0, got {self.lm_lr_scale}")
        return self


@dataclass
class AdapterConfig:
    """LoRA (default) or full fine-tuning."""

    mode: Literal["lora", "full"] = setting("lora: adapters + the four special-token rows; full: every weight",
                                            "lora", flag="adapter-mode", aliases={"lora": "lora", "full": "full"})
    r: int = setting("LoRA rank (reference)", 32, flag="lora-r")
    alpha: int = setting("LoRA alpha (reference)", 64, flag="lora-alpha")
    dropout: float = setting("LoRA dropout (on CPU, 0 makes a step about a third faster: drawing the dropout "
                             "masks costs as much as the matrix products there)", 0.05, flag="lora-dropout")
    target_modules: list[str] = setting("projections that get adapters (all attention and MLP ones)",
                                        factory=lambda: list(PROJECTIONS), flag="lora-target-modules")
    train_special_tokens: bool = setting("make the embedding and LM-head rows of the special tokens trainable "
                                         "(--no-train-special-tokens: keep them frozen)", True,
                                         flag="train-special-tokens")

    def validate(self) -> AdapterConfig:
        if self.mode not in {"lora", "full"}:
            raise InputError(f"mode must be 'lora' or 'full', got {self.mode!r}")
        if self.r < 1 or self.alpha < 1:
            raise InputError("LoRA r and alpha must be >= 1")
        return self


@dataclass
class GradCacheConfig:
    """Chunked contrastive training (Gao et al. 2021): big batches in small memory, same gradients."""

    enabled: bool = setting("run the GradCache path (no graph for the whole batch at once)", False,
                            flag="gradcache")
    query_chunk: int = setting("GradCache: queries per chunk in the forward/backward passes", 8, flag="query-chunk")
    doc_chunk: int = setting("GradCache: documents per chunk in the forward/backward passes", 32, flag="doc-chunk")


@dataclass
class TrainConfig:
    """Everything ``o1emb train`` needs; saved as ``o1emb_train.json`` beside the output."""

    model: str = setting("base model: a causal LM folder or hub id (the four tokens are added if missing)", "",
                         required=True)
    data: str = setting("training rows (JSONL: query, pos, neg, thought, optional pos_scores/neg_scores)", "",
                        required=True)
    out: str = setting("output folder: checkpoints, the merged O1 model (OUT/final) and this config", "",
                       required=True)
    dtype: Dtype = setting(TRAIN_DTYPE_HELP, "auto")
    mixed_precision: MixedPrecision = setting(
        "autocast while training: auto (bf16 on CUDA with bf16 and on CPUs with native bf16: about 3x a float32 "
        "LoRA step on an AVX512-BF16 CPU), bf16, fp16 or no; a bf16/fp16 flag in training_args wins", "auto")
    device: str = setting(TRAIN_DEVICE_HELP, "auto")
    export_merged: bool = setting("after training, write the merged O1 model to OUT/final (--no-export: skip it)",
                                  True, flag="export")
    eval_thoughts: str = setting("held-out rows with thoughts (JSONL, kept out of 'data'): their thought LM loss is "
                                 "recorded before the first step and after the last (OUT/thought_lm.json)", "")
    eval_thoughts_steps: int = setting("with eval_thoughts: also every N optimizer steps (default 0: before and "
                                       "after only)", 0)
    data_cfg: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    gradcache: GradCacheConfig = field(default_factory=GradCacheConfig)
    training_args: dict[str, Any] = setting("passed to transformers.TrainingArguments as they are (o1emb train "
                                            "also takes them as flags: --max_steps 100 --bf16 ...)",
                                            factory=dict, no_flag=True)

    def __post_init__(self) -> None:
        if self.device == "cpu":     # the Trainer places the model; it is told so through use_cpu
            self.training_args.setdefault("use_cpu", True)

    def validate(self) -> TrainConfig:
        for name in ("model", "data", "out"):
            if not getattr(self, name):
                raise InputError(f"'{name}' is required")
        if self.mixed_precision not in {"auto", "bf16", "fp16", "no"}:
            raise InputError(f"mixed_precision must be 'auto', 'bf16', 'fp16' or 'no', got {self.mixed_precision!r}")
        if self.device not in {"auto", "cpu"}:
            raise InputError(f"device must be 'auto' or 'cpu' for training, got {self.device!r}: the Trainer "
                             "puts each process on its own GPU (choose GPUs with CUDA_VISIBLE_DEVICES)")
        if self.dtype == "auto":
            self.dtype = "float32"   # master weights; the speed comes from mixed_precision
        if self.eval_thoughts_steps < 0:
            raise InputError(f"eval_thoughts_steps must be >= 0, got {self.eval_thoughts_steps}")
        self.data_cfg.validate()
        self.loss.validate()
        self.adapter.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: Origin | None = None) -> TrainConfig:
        """From a mapping; unknown keys and wrong types are :class:`InputError` naming the key (and,
        with ``origin``, the file and line)."""
        return build(cls, data, origin)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """From a YAML or JSON file; every error names ``FILE:LINE`` and the key."""
        data, lines = load_file(path)
        return build(cls, data, Origin(file=str(path), lines=lines))


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON or YAML config file into a dict (validated later by :meth:`TrainConfig.from_dict`;
    :meth:`TrainConfig.from_file` does both and names the line of a bad value)."""
    return load_file(path)[0]


def field_help(cls: type) -> dict[str, str]:
    """``{field name: help text}`` of a config dataclass (used by the CLI and the docs)."""
    return {f.name: f.metadata.get("help", "") for f in fields(cls)}
