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
from typing import Literal

from ..errors import InputError
from ..options import Dtype, Origin, setting
from .sections import RL, Indexing, Latency, Policy, Thinking, Training

FIXED_SYSTEMS = ("base", "contrastive-only", "contrastive-only+thoughts", "contrastive-only+o1-thoughts",
                 "o1-no-think", "o1-rl-no-think", "o1-auto")
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
                                 "o1-think-kN, o1-auto (thinks when its learned policy says), o1-rl-no-think, "
                                 "o1-rl-think-kN", factory=list)
    training: Training = field(default_factory=Training)
    rl: RL = field(default_factory=RL)
    thinking: Thinking = field(default_factory=Thinking)
    policy: Policy = field(default_factory=Policy)
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
        if self.wants("o1-auto"):
            self._check_policy()
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
        if self.training.heldout_thoughts < 0:
            raise err("training.heldout_thoughts", "must be >= 0")
        if self.training.heldout_thoughts and self.training.heldout_from == "validation" and \
                not any(e.validation.queries for e in self.train_data):
            raise err("training.heldout_from", "held-out thoughts from validation need validation queries in some "
                      "train_data entry (validation: {queries: N}); or set heldout_from: train")
        return self

    def auto_k(self) -> int:
        """How many thoughts ``o1-auto`` averages when it thinks: the largest ``o1-think-kN`` asked for,
        else ``thinking.n_thoughts`` (the policy's labels come from the model thinking so)."""
        return max(self.k_values(), default=self.thinking.n_thoughts)

    def _check_policy(self) -> None:
        from ..model.policy import check_groups

        err, p = self.origin.error, self.policy
        if p.rows < 4 or p.negatives < 0 or p.sample < 0 or not 0 < p.calibration < 1 or not p.l2 > 0:
            raise err("policy", "rows must be >= 4, negatives and sample >= 0, calibration in (0, 1), l2 > 0")
        try:
            check_groups(p.features)
        except InputError as exc:
            raise err("policy.features", str(exc)) from None
        if not p.shares or any(not 0 <= s <= 1 for s in p.shares):
            raise err("policy.shares", f"shares of thinking queries from 0 to 1, got {p.shares}")
        if p.share > 1 or (0 > p.share != -1):
            raise err("policy.share", f"a share from 0 to 1, or -1 (choose on validation), got {p.share}")
        if p.share < 0 and not any(d.validation.queries for d in self.train_data):
            raise err("policy.share", "o1-auto chooses its share on validation queries, and no training set has "
                      "any (train_data.N.validation.queries): give them, or a fixed policy.share")
        if self.auto_k() > self.thinking.n_thoughts:
            raise err("thinking.n_thoughts", f"o1-auto thinks with k = {self.auto_k()} > n_thoughts")

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
