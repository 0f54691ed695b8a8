"""A recipe: the whole method as data - base model, experts, committee, training and evaluation data,
the systems to compare, and the settings of every stage (docs/pipeline.md).

A recipe is a YAML file read by :func:`load_recipe` through :mod:`o1embedder.options`: an unknown key,
a wrong type or a bad path is refused with the key and its line. Nothing here names a dataset or a
model; the shipped recipes (``recipes/``) are instances.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import InputError
from ..options import Dtype, MixedPrecision, Origin, setting
from ..training.config import AdapterConfig

FIXED_SYSTEMS = ("base", "contrastive-only", "contrastive-only+thoughts", "contrastive-only+o1-thoughts",
                 "o1-no-think", "o1-rl-no-think")
THINK_SYSTEM = re.compile(r"^o1(-rl)?-think-k([1-9][0-9]*)$")


@dataclass
class Base:
    """The base causal LM every trained model starts from."""

    model: str = setting("a folder, a .gguf file, a hub id, or package:MODULE/FILE (a file shipped inside "
                         "an installed Python package)", "", required=True)
    trust_remote_code: bool = setting("allow the model's own Python code to run", False)


@dataclass
class Expert:
    """One expert setting: who writes the candidate thoughts, with which prompt."""

    name: str = setting("label of the setting: its O1 model is o1-NAME", "", required=True)
    model: str = setting("'base' (the base model through hf:), or hf:PATH, openai:URL[#MODEL], vllm:MODEL", "base")
    prompt: str = setting("prompt preset: paper (few-shot examples) or informed (sees the positive)", "paper")
    shots: int = setting("few-shot examples per prompt (the paper's m)", 2)
    context_words: int = setting("example responses (paper) or the shown passage (informed) cut to this many "
                                 "words (0: not cut)", 60)


@dataclass
class Synthesis:
    """How every expert samples its k candidates."""

    k: int = setting("candidate thoughts per training query", 3)
    max_tokens: int = setting("tokens per candidate", 48)
    temperature: float = setting("sampling temperature", 0.7)
    top_p: float = setting("nucleus mass", 0.9)
    batch_size: int = setting("prompts per expert call (local experts)", 16)
    bolted_expert: str = setting("the expert whose zero-shot thoughts are bolted onto contrastive-only "
                                 "(system contrastive-only+thoughts)", "")


@dataclass
class Committee:
    """Refinement: the retrievers that vote for the best candidate."""

    members: list[str] = setting("names from 'retrievers'", factory=list)
    policy: Literal["keep-best", "empty", "drop"] = setting(
        "what a row gets when no candidate beats the bare query (keep-best: the reference rule)", "empty")
    max_length: int = setting("word pieces a sentence-transformers member reads", 128)


@dataclass
class HeldOut:
    """A training set's validation queries: held out of its training split, or from another split."""

    split: str = setting("'' = held out of the training split; else a split of the same folder (dev)", "")
    queries: int = setting("how many (a seeded sample; 0 = none)", 0)


@dataclass
class TrainSet:
    """One BEIR folder whose queries become training rows."""

    path: str = setting("BEIR folder (relative paths are under 'data')", "", required=True)
    name: str = setting("label in reports and row ids (default: the folder's name)", "")
    split: str = setting("qrels split the rows come from", "train")
    queries: int = setting("a seeded subset of its judged queries (0 = all)", 0)
    validation: HeldOut = field(default_factory=HeldOut)
    fetch: str = setting("URL of a zip holding the folder, fetched when the folder is absent", "")


@dataclass
class EvalSet:
    """One BEIR folder and split every system is evaluated on."""

    path: str = setting("BEIR folder (relative paths are under 'data')", "", required=True)
    name: str = setting("label in reports (default: the folder's name)", "")
    split: str = setting("qrels split", "test")
    fetch: str = setting("URL of a zip holding the folder, fetched when the folder is absent", "")


@dataclass
class Mining:
    retriever: str = setting("name from 'retrievers' that mines the hard negatives", "bm25")
    negatives: int = setting("hard negatives per row", 15)
    doc_words: int = setting("training texts cut to this many words", 200)


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
    heldout_thoughts: int = setting("training rows held out of every model (seeded): their expert thoughts' LM loss "
                                    "is scored before and after training (0: none)", 0)
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
class Recipe:
    """Everything one run of the method needs; each stage is cached in ``out`` with its provenance."""

    title: str = setting("the report's title", "")
    out: str = setting("output folder, also the cache", "o1emb-pipeline")
    data: str = setting("root of relative dataset paths (default: $O1EMB_DATA, else ../shared/data)", "")
    seed: int = setting("seed of every sample and split", 0)
    device: str = setting("where every stage runs: auto (CUDA when present), cpu, cuda", "auto")
    dtype: Dtype = setting("weights dtype of every model that thinks, embeds or writes (training keeps float32 "
                           "master weights): auto = bf16 on CUDA and on CPUs with native bf16, else float32", "auto")
    base: Base = field(default_factory=Base)
    experts: list[Expert] = setting("the expert settings (one O1 model each)", factory=list, no_flag=True)
    synthesis: Synthesis = field(default_factory=Synthesis)
    retrievers: dict[str, str] = setting("named retrievers: bm25[:nostem], st:PATH (baselines, committee, mining)",
                                         factory=dict, no_flag=True)
    committee: Committee = field(default_factory=Committee)
    train_data: list[TrainSet] = setting("training BEIR folders", factory=list, no_flag=True)
    mining: Mining = field(default_factory=Mining)
    eval_data: list[EvalSet] = setting("evaluation BEIR folders", factory=list, no_flag=True)
    splits: list[Literal["test", "validation"]] = setting(
        "what is reported: test (the eval_data) and/or validation (the training sets' held-out queries)",
        factory=lambda: ["test"])
    systems: list[str] = setting("systems to compare: retriever names, base, contrastive-only, "
                                 "contrastive-only+thoughts, contrastive-only+o1-thoughts, o1-no-think, "
                                 "o1-think-kN, o1-rl-no-think, o1-rl-think-kN", factory=list)
    training: Training = field(default_factory=Training)
    rl: RL = field(default_factory=RL)
    thinking: Thinking = field(default_factory=Thinking)
    indexing: Indexing = field(default_factory=Indexing)
    latency: Latency = field(default_factory=Latency)
    origin: Origin = field(default_factory=Origin, init=False, repr=False, compare=False)
    folder: str = field(default="", init=False, repr=False, compare=False)
    """The recipe file's folder (relative config paths such as ``training.deepspeed`` are under it)."""

    # -- what the settings imply -------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return Path(self.out)

    def expert_names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.experts)

    def _rl_listed(self) -> bool:
        return any(s.startswith("o1-rl-") for s in self.systems)

    def k_values(self, rl: bool = False) -> list[int]:
        """The N of every ``o1[-rl]-think-kN`` system asked for (with RL on and no ``o1-rl-*`` system
        listed, RL's are those of ``o1-*``)."""
        if rl and self.rl.enabled and not self._rl_listed():
            rl = False
        elif rl and not self.rl.enabled:
            return []
        return sorted({int(m.group(2)) for s in self.systems if (m := THINK_SYSTEM.match(s)) and bool(m.group(1)) == rl})

    def wants(self, system: str) -> bool:
        if system.startswith("o1-rl-") and self.rl.enabled and not self._rl_listed():
            return system.replace("o1-rl-", "o1-", 1) in self.systems
        return system in self.systems

    def rl_expert(self) -> str:
        return self.rl.expert or (self.experts[0].name if self.experts else "")

    def validate(self) -> Recipe:
        """Check the settings against each other (paths are checked by :mod:`.inputs`)."""
        err = self.origin.error
        names = [e.name for e in self.experts]
        if len(set(names)) != len(names):
            raise err("experts", f"expert names must differ, got {names}")
        for i, e in enumerate(self.experts):
            if e.prompt not in {"paper", "informed"}:
                raise err(f"experts.{i}.prompt", f"unknown prompt preset {e.prompt!r} (paper, informed)")
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", e.name):
                raise err(f"experts.{i}.name", f"use letters, digits, '.', '_' or '-', got {e.name!r}")
        for key in ("committee.members", "mining.retriever"):
            wanted = self.committee.members if key == "committee.members" else [self.mining.retriever]
            for name in wanted:
                if name not in self.retrievers:
                    raise err(key, f"{name!r} is not one of the retrievers ({', '.join(self.retrievers) or 'none'})")
        if self.synthesis.bolted_expert and self.synthesis.bolted_expert not in names:
            raise err("synthesis.bolted_expert", f"{self.synthesis.bolted_expert!r} is not an expert ({names})")
        if self.rl.enabled and self.rl_expert() not in names:
            raise err("rl.expert", f"{self.rl_expert()!r} is not an expert ({names})")
        for system in self.systems:
            if system not in self.retrievers and system not in FIXED_SYSTEMS and not THINK_SYSTEM.match(system):
                raise err("systems", f"unknown system {system!r}")
        if self.wants("contrastive-only+thoughts") and not self.synthesis.bolted_expert:
            raise err("synthesis.bolted_expert", "system contrastive-only+thoughts needs a bolted_expert")
        top = max([*self.k_values(), *self.k_values(rl=True)], default=0)
        if top > self.thinking.n_thoughts:
            raise err("thinking.n_thoughts", f"o1-think-k{top} asks for more thoughts than n_thoughts "
                      f"= {self.thinking.n_thoughts}")
        if self.device not in {"auto", "cpu", "cuda"} and not self.device.startswith("cuda:"):
            raise err("device", f"expected auto, cpu or cuda, got {self.device!r}")
        if not self.train_data and (self.experts or any(s.startswith(("o1", "contrastive")) for s in self.systems)):
            raise err("train_data", "trained systems need at least one training set")
        if not self.eval_data and "test" in self.splits:
            raise err("eval_data", "the test split needs at least one evaluation set")
        labels = [self.dataset_name(d) for d in self.train_data]
        if len(set(labels)) != len(labels):
            raise err("train_data", f"two training sets share the name {labels}: give each a 'name'")
        for section, keys in (("training", ("batch_size", "group_size", "processes", "save_steps")),
                              ("synthesis", ("k", "max_tokens", "batch_size")), ("thinking", ("n_thoughts", "max_new_tokens")),
                              ("indexing", ("batch_size", "shard_size", "processes"))):
            for key in keys:
                if getattr(getattr(self, section), key) < 1:
                    raise err(f"{section}.{key}", "must be >= 1")
        if self.training.steps < 0 or (self.training.steps == 0 and self.training.epochs <= 0):
            raise err("training.steps", "steps must be >= 1, or 0 with epochs > 0")
        return self

    @staticmethod
    def dataset_name(entry: TrainSet | EvalSet) -> str:
        return entry.name or Path(entry.path).name


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read and check a recipe file (``overrides``: ``KEY=VALUE`` as ``--set`` gives them)."""
    import argparse

    from ..options import resolve

    path = Path(path)
    if not path.is_file():
        raise InputError("recipe not found", path=path)
    recipe = resolve(Recipe, argparse.Namespace(config=str(path), o1opt_set=list(overrides or [])))
    recipe.folder = str(path.resolve().parent)
    return recipe
