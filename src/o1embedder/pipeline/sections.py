"""The stage sections of a recipe (:mod:`.recipe`): training, RL, thinking, the when-to-think policy,
indexing and latency. Each is a dataclass of :mod:`o1embedder.options` settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..options import MixedPrecision, setting
from ..training.config import AdapterConfig

HeldoutFrom = Literal["validation", "train"]


@dataclass
class Training:
    """Joint training of every model (contrastive-only and one O1 model per expert), same settings."""

    steps: int = setting("optimizer steps per model (0: 'epochs' decides)", 40)
    epochs: float = setting("passes over the rows when steps is 0", 1.0)
    batch_size: int = setting("queries per device per step", 16)
    group_size: int = setting("1 positive + (N-1) hard negatives per query", 2)
    learning_rate: float = setting("peak learning rate", 2e-4)
    warmup: float = setting("share of the steps warming up", 0.1)
    lam: float = setting("weight of the contrastive loss; 1 - lam weighs the thought LM loss", 0.8)
    temperature: float = setting("InfoNCE temperature", 0.02)
    thought_dropout: float = setting("share of rows trained without their thought", 0.1)
    lm_warmup_steps: int = setting("first N steps on the thought LM loss alone", 0)
    lm_lr_scale: float = setting("learning-rate multiple of the parameters only the LM loss trains (untied LM head)", 1.0)
    heldout_thoughts: int = setting("rows whose expert thoughts' LM loss is scored before and after training "
                                    "(a seeded sample; 0: none); heldout_from says where they come from", 0)
    heldout_from: HeldoutFrom = setting(
        "'validation': the experts write (and the committee refines) thoughts for validation queries, no training "
        "row is removed; 'train': training rows held out of every model", "validation")
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    """LoRA or full fine-tuning: the very section ``o1emb train`` and ``o1emb rl`` take (same keys)."""
    query_tokens: int = setting("query text cut to this many tokens", 32)
    query_thought_tokens: int = setting("query + thought length", 128)
    passage_tokens: int = setting("passage length (training and every index)", 96)
    mixed_precision: MixedPrecision = setting("autocast", "auto")
    gradient_checkpointing: bool = setting("recompute activations (less memory, slower)", False)
    save_steps: int = setting("checkpoint every N steps (a killed run resumes)", 20)
    processes: int = setting("training processes (GPUs); > 1 runs o1emb train under torchrun", 1)
    deepspeed: str = setting("DeepSpeed JSON config (ZeRO-2; relative to the recipe)", "")
    training_args: dict[str, Any] = setting("other transformers TrainingArguments", factory=dict, no_flag=True)


@dataclass
class RL:
    """Optional GRPO on thoughts after training one O1 model (docs/rl.md)."""

    enabled: bool = setting("add the RL stage and the o1-rl-* systems", False)
    expert: str = setting("which o1-EXPERT model RL starts from (default: the first expert)", "")
    steps: int = setting("RL steps", 20)
    rows_per_step: int = setting("training rows per step", 8)
    samples: int = setting("thoughts sampled per row", 4)
    rollout_temperature: float = setting("rollout sampling temperature", 0.7)
    learning_rate: float = setting("learning rate", 5e-5)
    kl_coef: float = setting("KL penalty to the model before RL", 0.04)
    contrastive_weight: float = setting("weight of InfoNCE on the sampled thoughts", 1.0)
    resample: int = setting("rounds of redrawing a row whose sampled thoughts are all the same (0: off)", 0)
    save_steps: int = setting("checkpoint every N steps", 5)


@dataclass
class Thinking:
    """How the O1 models think at evaluation (also recorded in each saved model)."""

    n_thoughts: int = setting("thoughts sampled per query (o1-think-kN averages the first N)", 3)
    temperature: float = setting("sampling temperature", 0.1)
    top_p: float = setting("nucleus mass", 0.9)
    max_new_tokens: int = setting("thought budget", 48)
    repetition_penalty: float = setting("as generate's: logits of tokens already in the sequence divided by it "
                                        "(1: off)", 1.0)
    no_repeat_ngram_size: int = setting("as generate's: no n-gram of this size twice (0: off)", 0)
    exit_eps: float = setting("early exit: stop a thought once its vector moves less than this (1 - cosine) "
                              "between checks (0: off)", 0.0)
    exit_every: int = setting("early exit: tokens between checks", 8)
    exit_patience: int = setting("early exit: converged checks in a row that stop a thought", 2)
    plain_weight: float = setting("weight of the query's no-thinking vector mixed into its thinking vector (0: the "
                                  "paper's vector; thoughts do not depend on it)", 0.0)
    batch_size: int = setting("queries per thinking batch", 16)

    def sampling(self) -> dict[str, Any]:
        """The settings a model thinks with (``ThinkConfig``'s names), without the batch size."""
        return {k: v for k, v in vars(self).items() if k != "batch_size"}


@dataclass
class Indexing:
    batch_size: int = setting("documents per encoding batch", 32)
    shard_size: int = setting("documents per embeddings shard (a killed build resumes per shard)", 2048)
    processes: int = setting("encoding processes; > 1 runs o1emb index under torchrun", 1)


@dataclass
class Latency:
    queries: int = setting("queries timed one at a time per query path (0: skip)", 8)
    model: str = setting("which model (default: the last expert's O1 model)", "")


@dataclass
class Policy:
    """The learned when-to-think policy of each O1 model (systems ``o1-auto``; docs/pipeline.md): fitted
    on the model's own training rows, its target share chosen on the validation queries."""

    rows: int = setting("training rows the policy is fitted on (a seeded sample of the expert's refined rows)", 200)
    negatives: int = setting("hard negatives per fitting row among the candidates that label it", 7)
    sample: int = setting("other rows' documents among each fitting row's candidates", 32)
    calibration: float = setting("share of the fitting rows held out to turn a target share into a threshold", 0.2)
    features: str = setting("feature groups: scores, vector, eos (comma-separated)", "scores,vector")
    l2: float = setting("L2 penalty of the logistic regression", 1.0)
    shares: list[float] = setting("target shares of thinking queries tried on validation (mean nDCG@10 over the "
                                  "validation sets; the best, the smaller on a tie)",
                                  factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    share: float = setting("a fixed target share instead of the validation choice (-1: choose on validation)", -1.0)
