"""``RLConfig``: every setting of ``o1emb rl``, with help text; saved beside the output as ``o1emb_rl.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import InputError
from ..training.config import PROJECTIONS, AdapterConfig, _help
from .objective import REWARDS

CONFIG_FILE = "o1emb_rl.json"


@dataclass
class RLConfig:
    """GRPO on thoughts with a retrieval reward, run on an O1 model after ``o1emb train``."""

    model: str = _help("the O1 model to improve (an ``o1emb train`` output, ``OUT/final``)", "")
    data: str = _help("training rows (JSONL: query, pos, neg; thoughts are not needed)", "")
    out: str = _help("output folder: checkpoints, the log, OUT/final (the merged model)", "")
    steps: int = _help("optimizer steps (one rollout each)", 100)
    rows_per_step: int = _help("training rows per step (B)", 8)
    samples: int = _help("thoughts sampled per row (G, the group of GRPO)", 4)
    group_size: int = _help("documents per row: 1 positive + (N-1) hard negatives; the batch's other "
                            "documents are candidates too", 4)
    rollout_temperature: float = _help("sampling temperature of the rollouts", 0.7)
    rollout_top_p: float = _help("nucleus mass of the rollouts", 1.0)
    max_new_tokens: int = _help("thought budget of a rollout (EOS appended when it runs out)", 48)
    reward: str = _help("'logprob' (log-probability of the positive under the InfoNCE softmax at "
                        "``temperature``) or 'rr' (reciprocal rank of the positive)", "logprob")
    temperature: float = _help("InfoNCE temperature of the reward and of the contrastive term (reference 0.02)", 0.02)
    length_penalty: float = _help("reward minus this x thought tokens / max_new_tokens", 0.0)
    kl_coef: float = _help("weight of the KL penalty to the model before RL (DeepSeekMath GRPO: 0.04)", 0.04)
    clip: float = _help("PPO clip range of the ratio (used when updates > 1)", 0.2)
    updates: int = _help("optimizer updates per rollout (1: plain policy gradient, ratio 1)", 1)
    contrastive_weight: float = _help("weight of InfoNCE on the sampled thoughts' vectors (keeps the "
                                      "embedding aligned with the thoughts the policy writes)", 1.0)
    learning_rate: float = _help("AdamW learning rate (constant after a linear warm-up)", 5e-5)
    warmup_steps: int = _help("linear warm-up steps", 5)
    weight_decay: float = _help("AdamW weight decay", 0.0)
    max_grad_norm: float = _help("gradient clipping by global norm (0: none)", 1.0)
    dtype: str = _help("weights dtype while training (float32 master weights)", "float32")
    device: str = _help("torch device; empty: CUDA when present (each torchrun rank its own GPU), else CPU", "")
    mixed_precision: str = _help("'auto' (bf16 autocast where the hardware has native bf16), 'bf16' or 'no'", "auto")
    logprob_chunk: int = _help("thought tokens per chunk of the LM head's log-softmax in the policy and "
                               "reference passes (0: as many as 64 MiB of float32 logits hold, 110 at a "
                               "152k vocabulary); memory and speed only: results equal to float rounding", 0)
    save_steps: int = _help("write a resumable checkpoint every N steps (0: only at the end)", 25)
    seed: int = _help("seed of the row order and of the rollouts", 0)
    export_merged: bool = _help("after RL, write the merged O1 model to OUT/final", True)
    adapter: AdapterConfig = field(default_factory=lambda: AdapterConfig(dropout=0.0, target_modules=list(PROJECTIONS)))

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
        if self.reward not in REWARDS:
            raise InputError(f"reward must be one of {REWARDS}, got {self.reward!r}")
        if self.rollout_temperature <= 0:
            raise InputError("rollout_temperature must be > 0 (greedy rollouts are all alike)")
        if not 0 < self.rollout_top_p <= 1:
            raise InputError(f"rollout_top_p must be in (0, 1], got {self.rollout_top_p}")
        if self.temperature <= 0 or self.learning_rate <= 0:
            raise InputError("temperature and learning_rate must be > 0")
        if min(self.kl_coef, self.clip, self.contrastive_weight, self.length_penalty, self.max_grad_norm) < 0:
            raise InputError("kl_coef, clip, contrastive_weight, length_penalty and max_grad_norm must be >= 0")
        if self.mixed_precision not in {"auto", "bf16", "no"}:
            raise InputError(f"mixed_precision must be 'auto', 'bf16' or 'no', got {self.mixed_precision!r}")
        if self.max_new_tokens < 1:
            raise InputError("max_new_tokens must be >= 1")
        if not isinstance(self.logprob_chunk, int) or self.logprob_chunk < 0:
            raise InputError(f"logprob_chunk must be an integer >= 0 (0: automatic), got {self.logprob_chunk!r}")
        self.adapter.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RLConfig:
        if not isinstance(data, dict):
            raise InputError(f"rl config: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"rl config: unknown keys {unknown} (known: {sorted(known)})")
        data = dict(data)
        if isinstance(data.get("adapter"), dict):
            adapter = {"dropout": 0.0, **data["adapter"]}
            try:
                data["adapter"] = AdapterConfig(**adapter)
            except TypeError as exc:
                raise InputError(f"rl config: adapter: {exc}") from None
        try:
            return cls(**data)
        except TypeError as exc:
            raise InputError(f"rl config: {exc}") from None
