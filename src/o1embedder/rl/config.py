"""``RLConfig``: every setting of ``o1emb rl``, with help text; saved beside the output as ``o1emb_rl.json``.

Filled like every command's settings (:mod:`o1embedder.options`): ``--config FILE``, a flag per
setting, ``--set KEY=VALUE``, ``--print-config``. No torch here: the parser imports this module.
"""

from __future__ import annotations

import typing
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..errors import InputError
from ..options import Dtype, MixedPrecision, Origin, build, setting
from ..training.config import TRAIN_DTYPE_HELP, AdapterConfig

CONFIG_FILE = "o1emb_rl.json"
Reward = Literal["logprob", "rr"]
"""The rewards of :func:`o1embedder.rl.objective.retrieval_reward` (its ``REWARDS``)."""


@dataclass
class RLAdapterConfig(AdapterConfig):
    """LoRA (default) or full fine-tuning; RL's LoRA has no dropout by default."""

    dropout: float = setting("LoRA dropout (0: the rollouts' policy and the trained one are the same function)",
                             0.0, flag="lora-dropout")


@dataclass
class RLConfig:
    """GRPO on thoughts with a retrieval reward, run on an O1 model after ``o1emb train``."""

    model: str = setting("the O1 model to improve (an o1emb train output, OUT/final)", "", required=True)
    data: str = setting("training rows (JSONL: query, pos, neg; thoughts are not needed)", "", required=True)
    out: str = setting("output folder: checkpoints, rl_log.jsonl, OUT/final (the merged model)", "", required=True)
    steps: int = setting("optimizer steps (one rollout each)", 100)
    rows_per_step: int = setting("training rows per step (B)", 8)
    samples: int = setting("thoughts sampled per row (G, the group of GRPO)", 4)
    group_size: int = setting("documents per row: 1 positive + (N-1) hard negatives; the batch's other "
                              "documents are candidates too", 4)
    rollout_temperature: float = setting("sampling temperature of the rollouts", 0.7)
    rollout_top_p: float = setting("nucleus mass of the rollouts", 1.0)
    max_new_tokens: int = setting("thought budget of a rollout (EOS appended when it runs out)", 48)
    resample: int = setting("rounds of drawing a row's G thoughts again while they are all the same (identical "
                            "thoughts get equal rewards, so the row has no advantage and no gradient); 0: off", 0)
    reward: Reward = setting("logprob (log-probability of the positive under the InfoNCE softmax at "
                             "temperature) or rr (reciprocal rank of the positive)", "logprob")
    temperature: float = setting("InfoNCE temperature of the reward and of the contrastive term (reference)", 0.02)
    length_penalty: float = setting("reward minus this x thought tokens / max_new_tokens", 0.0)
    kl_coef: float = setting("weight of the KL penalty to the model before RL (DeepSeekMath GRPO)", 0.04)
    clip: float = setting("PPO clip range of the ratio (used when updates > 1)", 0.2)
    updates: int = setting("optimizer updates per rollout (1: plain policy gradient, ratio 1)", 1)
    contrastive_weight: float = setting("weight of InfoNCE on the sampled thoughts' vectors (keeps the "
                                        "embedding aligned with the thoughts the policy writes)", 1.0)
    learning_rate: float = setting("AdamW learning rate (constant after a linear warm-up)", 5e-5)
    warmup_steps: int = setting("linear warm-up steps", 5)
    weight_decay: float = setting("AdamW weight decay", 0.0)
    max_grad_norm: float = setting("gradient clipping by global norm (0: none)", 1.0)
    dtype: Dtype = setting(TRAIN_DTYPE_HELP, "auto")
    device: str = setting("torch device: auto (CUDA when present, each torchrun rank its own GPU; else CPU), "
                          "cpu, cuda, cuda:1, ...", "auto")
    mixed_precision: MixedPrecision = setting("autocast: auto (bf16 where the hardware has native bf16, else "
                                              "none), bf16, fp16 (with loss scaling) or no", "auto")
    logprob_chunk: int = setting("thought tokens per chunk of the LM head's log-softmax in the policy and "
                                 "reference passes (0: as many as 64 MiB of float32 logits hold, 110 at a "
                                 "152k vocabulary); memory and speed only: results equal to float rounding", 0)
    save_steps: int = setting("write a resumable checkpoint every N steps (0: only at the end)", 25)
    seed: int = setting("seed of the row order and of the rollouts", 0)
    export_merged: bool = setting("after RL, write the merged O1 model to OUT/final (--no-export: skip it)", True,
                                  flag="export")
    adapter: RLAdapterConfig = field(default_factory=RLAdapterConfig)

    def validate(self) -> RLConfig:
        for name in ("model", "data", "out"):
            if not getattr(self, name):
                raise InputError(f"'{name}' is required")
        positive = ("steps", "rows_per_step", "samples", "group_size", "updates")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be an integer >= 1, got {value!r}")
        if self.samples < 2:
            raise InputError("samples must be >= 2: GRPO's advantage compares a row's samples with each other")
        if self.reward not in typing.get_args(Reward):
            raise InputError(f"reward must be one of {typing.get_args(Reward)}, got {self.reward!r}")
        if self.rollout_temperature <= 0:
            raise InputError("rollout_temperature must be > 0 (greedy rollouts are all alike)")
        if not 0 < self.rollout_top_p <= 1:
            raise InputError(f"rollout_top_p must be in (0, 1], got {self.rollout_top_p}")
        if self.temperature <= 0 or self.learning_rate <= 0:
            raise InputError("temperature and learning_rate must be > 0")
        if min(self.kl_coef, self.clip, self.contrastive_weight, self.length_penalty, self.max_grad_norm) < 0:
            raise InputError("kl_coef, clip, contrastive_weight, length_penalty and max_grad_norm must be >= 0")
        if self.mixed_precision not in typing.get_args(MixedPrecision):
            raise InputError(f"mixed_precision must be one of {typing.get_args(MixedPrecision)}, "
                             f"got {self.mixed_precision!r}")
        if self.max_new_tokens < 1:
            raise InputError("max_new_tokens must be >= 1")
        if not isinstance(self.resample, int) or self.resample < 0:
            raise InputError(f"resample must be an integer >= 0, got {self.resample!r}")
        if not isinstance(self.logprob_chunk, int) or self.logprob_chunk < 0:
            raise InputError(f"logprob_chunk must be an integer >= 0 (0: automatic), got {self.logprob_chunk!r}")
        if self.dtype == "auto":
            self.dtype = "float32"   # master weights; the speed comes from mixed_precision
        self.adapter.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: Origin | None = None) -> RLConfig:
        """From a mapping (an ``o1emb_rl.json``, a test's settings); unknown keys and wrong types are
        :class:`InputError` naming the key (and, with ``origin``, the file and line)."""
        return build(cls, data, origin)
