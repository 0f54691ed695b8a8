"""The demo's settings: sizes of the synthetic world and of the model, training, RL and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InputError


@dataclass
class DemoConfig:
    """Sizes and settings of the demo (defaults: about two minutes on two idle CPU cores)."""

    out: str = "o1emb-demo"
    seed: int = 0
    n_people: int = 20
    works_per_person: int = 3
    n_cities: int = 8
    negatives: int = 7
    """Hard negatives mined per training query (BM25, ranks 2-30: the world is small)."""
    candidates: int = 3
    committee: str = "bm25:nostem"
    """Mining and the committee use unstemmed BM25, as when the demo's settings were chosen; the
    BM25 baseline row is the library default (stemmed)."""
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    vocab_size: int = 1200
    """Large enough that every invented name is one or two tokens."""
    epochs: float = 60.0
    """60 epochs and 4 layers were chosen on the validation split (``--validation``; docs/demo.md)."""
    learning_rate: float = 2e-3
    batch_size: int = 32
    group_size: int = 4
    temperature: float = 0.05
    """InfoNCE temperature (the reference 0.02 is for pretrained LLMs; a model from scratch needs softer)."""
    lam: float = 0.5
    n_thoughts: int = 1
    """Thoughts per test query (their vectors are averaged)."""
    think_temperature: float = 0.0
    """0: greedy. Sampling is seeded per (seed, query, sample), so the demo stays deterministic either way."""
    max_new_tokens: int = 24
    examples: int = 3
    think_share: float = 0.9
    """o1-auto's target share of thinking queries: the learned policy (fitted on the training rows after
    training, saved with the model) thinks for the queries it ranks in that top share of the evaluated
    queries (its shares calibrated on their no-thinking pass, no labels: ``think_share``,
    docs/retrieval.md). 0.9 was chosen on the validation split of seeds 0-2 (``scripts/demo_auto.py --keep
    0.9``: the smallest share keeping 90 % of the thinking gain; docs/demo.md, "When to think")."""
    rl: bool = False
    """Add an RL stage after training (GRPO on thoughts with a retrieval reward, docs/rl.md) and
    evaluate the RL model beside the trained one."""
    rl_steps: int = 60
    rl_rows_per_step: int = 16
    rl_samples: int = 4
    rl_rollout_temperature: float = 1.0
    rl_learning_rate: float = 1e-4
    rl_kl_coef: float = 0.04
    rl_contrastive_weight: float = 1.0
    rl_reward: str = "logprob"
    rl_resample: int = 0
    """Rounds of redrawing a rollout row whose thoughts are all the same (RLConfig.resample; 0: off)."""
    device: str = "cpu"
    """Where the model trains, indexes and thinks (``cuda`` for the GPU check). The documented figures
    (docs/demo.md) are the CPU's."""
    dtype: str = "float32"
    """``float32`` everywhere (the documented figures), or ``bfloat16``: bf16 autocast in training and
    RL (float32 master weights) and bf16 weights for indexing and evaluation."""
    validation: bool = False
    """Evaluate on a validation split carved from the training works instead of the test split (see
    :meth:`~o1embedder.world.World.hold_out_validation`): how the demo's settings were chosen."""
    stage_times: dict[str, float] = field(default_factory=dict)

    @property
    def evaluated_on(self) -> str:
        """The split the held-out queries come from: ``"validation"`` or ``"test"``."""
        return "validation" if self.validation else "test"

    def validate(self) -> DemoConfig:
        if self.n_people < 2 or self.works_per_person < 2 or self.n_cities < 2:
            raise InputError("the world needs at least 2 people, 2 works per person and 2 cities")
        if self.epochs <= 0 or self.hidden < 16 or self.layers < 1:
            raise InputError("epochs must be > 0, hidden >= 16 and layers >= 1")
        if self.dtype not in ("float32", "bfloat16"):
            raise InputError(f"the demo runs in float32 or bfloat16, not {self.dtype!r}")
        if not 0 <= self.think_share <= 1:
            raise InputError(f"think_share must be from 0 to 1, got {self.think_share}")
        if self.device.split(":")[0] not in ("cpu", "cuda"):
            raise InputError(f"the demo runs on cpu or cuda, not {self.device!r}")
        return self

    @property
    def mixed_precision(self) -> str:
        """Training's autocast: none in float32, bf16 autocast (float32 master weights) in bfloat16."""
        return "bf16" if self.dtype == "bfloat16" else "no"
