"""The settings of ``o1emb index`` and ``o1emb mine``, and the parts ``eval`` and ``refine`` share with
them: the encoding device/dtype/batch (:class:`Encoding`) and query thinking (:class:`ThinkSettings`).

Filled like every command's settings (:mod:`o1embedder.options`): ``--config FILE``, a flag per
setting, ``--set KEY=VALUE``, ``--print-config``. No torch here: the parser imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..engines import ENGINE_HELP
from ..errors import InputError
from ..options import Dtype, setting

DEVICE_HELP = "torch device: auto (CUDA when present, each torchrun rank its own GPU; else CPU), cpu, cuda:1, ..."
DTYPE_HELP = "weights dtype; auto: bfloat16 on CUDA and on CPUs with native bf16 (AMX / AVX512-BF16), else float32"


def torch_device(device: str) -> str | None:
    """A ``device`` setting as the library's loaders take it: ``auto`` (or empty) is ``None``."""
    return None if device in ("auto", "") else device


@dataclass
class Encoding:
    """Where and how a command encodes: device, dtype, batch size, progress bars."""

    device: str = setting(DEVICE_HELP, "auto")
    dtype: Dtype = setting(DTYPE_HELP, "auto")
    batch_size: int = setting("encoding batch size", 32)
    no_progress: bool = setting("hide progress bars", False)

    def check_batch_size(self) -> None:
        if self.batch_size < 1:
            raise InputError("--batch-size must be >= 1")

    def progress(self) -> bool | None:
        """``False`` (hidden) or ``None`` (the library's choice: shown on a terminal)."""
        return False if self.no_progress else None


@dataclass
class ThinkSettings:
    """How an O1 model's queries think: the mode, and overrides of the model's own sampling settings."""

    mode: Literal["always", "never", "auto"] = setting(
        "O1 models: think before embedding every query (always), never, or auto: only for queries whose "
        "no-thinking top-2 score margin is below think.margin (also --auto-think [MARGIN])", "always",
        flag="think", aliases={"no-think": "never"})
    margin: float | None = setting("think.mode auto: the margin rule's margin (unset: the model's learned policy "
                                   "when it has one, else the margin rule at 0.05; 0 never thinks, .inf always); "
                                   "--auto-think MARGIN sets it", None, no_flag=True)
    share: float | None = setting("think.mode auto with the model's learned policy (o1emb fit-policy): the share of "
                                  "queries that think, 0 to 1, calibrated on held-out fitting queries", None,
                                  flag="think-share")
    threshold: float | None = setting("think.mode auto with the model's learned policy: think when the predicted "
                                      "probability that thinking helps is at least this, 0 to 1; unset: 0.5 "
                                      "unless think.share is given", None, flag="think-threshold")
    n_thoughts: int | None = setting("thoughts sampled per query (unset: the model's)", None, flag="n-thoughts")
    temperature: float | None = setting("sampling temperature, 0 = greedy (unset: the model's)", None,
                                        flag="temperature")
    top_p: float | None = setting("nucleus sampling mass (unset: the model's)", None, flag="top-p")
    max_new_tokens: int | None = setting("thought budget in tokens (unset: the model's)", None, flag="max-new-tokens")
    seed: int | None = setting("sampling seed (unset: the model's)", None, flag="seed")
    repetition_penalty: float | None = setting("as generate's: logits of tokens already in the sequence divided by "
                                               "it, 1 = off (unset: the model's)", None, flag="repetition-penalty")
    no_repeat_ngram_size: int | None = setting("as generate's: no n-gram of this size twice, 0 = off (unset: the "
                                               "model's)", None, flag="no-repeat-ngram-size")
    exit_eps: float | None = setting("early exit: stop a thought once its vector moves less than this (1 - cosine) "
                                     "between checks, 0 = off (unset: the model's)", None, flag="exit-eps")
    exit_every: int | None = setting("early exit: tokens between checks (unset: the model's)", None, flag="exit-every")
    exit_patience: int | None = setting("early exit: converged checks in a row that stop a thought (unset: the "
                                        "model's)", None, flag="exit-patience")
    plain_weight: float | None = setting("weight of the query's no-thinking vector mixed into its thinking vector, "
                                         "0 = off (unset: the model's)", None, flag="plain-weight")
    engine: str = setting(ENGINE_HELP, "one-pass", flag="think-engine")
    cache: str | None = setting("thought cache folder (unset: $O1EMB_CACHE/thoughts or ~/.cache/o1embedder/thoughts)",
                                None, flag="cache")
    no_cache: bool = setting("do not read or write the thought cache", False, flag="no-cache")

    def think(self) -> bool | str:
        """``think`` as the library takes it: ``True``, ``False`` or ``"auto"``."""
        return {"always": True, "never": False}.get(self.mode, "auto")

    def auto_margin(self) -> float | None:
        if self.margin is not None and not self.margin >= 0:
            raise InputError(f"think.margin (--auto-think MARGIN) must be >= 0, got {self.margin}")
        return self.margin if self.mode == "auto" else None

    def auto_knobs(self) -> dict[str, float | None]:
        """``auto_margin``, ``think_share`` and ``think_threshold`` as the library takes them (``None``
        unless think.mode is auto; at most one given)."""
        margin = self.auto_margin()
        given = [k for k, v in (("think.margin", self.margin), ("think.share", self.share),
                                ("think.threshold", self.threshold)) if v is not None]
        if self.mode != "auto" and {"think.share", "think.threshold"} & set(given):
            raise InputError("think.share and think.threshold (--think-share, --think-threshold) apply to "
                             "think.mode auto (--auto-think)")
        if len(given) > 1:
            raise InputError(f"give one of think.margin, think.share and think.threshold, not {' and '.join(given)}")
        for key, value in (("think.share", self.share), ("think.threshold", self.threshold)):
            if value is not None and not 0 <= value <= 1:
                raise InputError(f"{key} must be from 0 to 1, got {value}")
        return {"auto_margin": margin, "think_share": self.share if self.mode == "auto" else None,
                "think_threshold": self.threshold if self.mode == "auto" else None}

    def overrides(self) -> dict[str, Any]:
        """ThinkConfig overrides (``None``: the model's own setting)."""
        keys = ("n_thoughts", "temperature", "top_p", "max_new_tokens", "seed", "repetition_penalty",
                "no_repeat_ngram_size", "exit_eps", "exit_every", "exit_patience", "plain_weight")
        return {**{k: getattr(self, k) for k in keys}, "engine": None if self.engine == "one-pass" else self.engine}

    def cache_dir(self) -> Any:
        """``False`` (no cache), a folder, or ``None`` (the default folder)."""
        return False if self.no_cache else self.cache


@dataclass
class IndexSettings(Encoding):
    """``o1emb index``: encode a corpus into an index folder."""

    model: str = setting("O1 model folder/hub id, 'bm25' or 'st:PATH'", "", required=True)
    no_stem: bool = setting("bm25 without stemming (BEIR's bm25s numbers); else English Snowball stemming", False)
    corpus: str = setting("BEIR folder (its corpus.jsonl) or a corpus JSONL file", "", required=True)
    out: str = setting("index folder to write (or resume)", "", required=True)
    factory: str = setting("FAISS factory string, inner product (Flat = exact; e.g. HNSW32, IVF1024,PQ64)", "Flat")
    shard_size: int = setting("docs per embeddings shard", 8192)
    shard: str | None = setting("encode only worker I's share of N, as I/N (unset: from torchrun's RANK/WORLD_SIZE, "
                                "else 0/1)", None)
    max_length: int | None = setting("passage token limit (unset: the model's)", None)
    wait: float = setting("worker 0: seconds to wait for the other workers' shards (a week)", 7 * 24 * 3600.0)


@dataclass
class MineSettings(Encoding):
    """``o1emb mine``: hard negatives for a BEIR split's queries."""

    data: str = setting("BEIR folder", "", required=True)
    split: str = setting("qrels split", "train")
    out: str = setting("training rows JSONL to write", "", required=True)
    retriever: str = setting("'bm25', 'st:PATH' or an O1 model", "bm25")
    no_stem: bool = setting("bm25 without stemming (BEIR's bm25s numbers); else English Snowball stemming", False)
    negatives: int = setting("negatives per query", 15)
    ranks: str = setting("rank range to sample from, 1-based inclusive", "10-100")
    mine_seed: int = setting("sampling seed of the negatives", 0)
    index: str | None = setting("keep/reuse the corpus index in this folder", None)
    strict: bool = setting("refuse qrels naming documents or queries the data lacks (else: warn; such documents "
                           "count as relevant and never retrieved)", False)
    think: ThinkSettings = field(default_factory=ThinkSettings)


@dataclass
class FitPolicySettings(Encoding):
    """``o1emb fit-policy``: fit an O1 model's learned when-to-think policy on training rows and write it
    into the model folder (:func:`o1embedder.retrieval.policy.fit_policy`)."""

    model: str = setting("O1 model folder (a hub id or .gguf file needs --out)", "", required=True)
    data: str = setting("training rows JSONL (query, pos, neg): training queries, never the queries you test on",
                        "", required=True)
    out: str = setting("model folder to write the policy into; empty: the --model folder (another folder gets a "
                       "copy of the model too)", "")
    calibration: float = setting("share of the rows held out, seeded, to calibrate think.share and measure the AUC",
                                 0.2)
    sample: int = setting("other rows' documents added, seeded, to each row's candidates for its label", 32)
    features: list[Literal["scores", "eos", "vector"]] = setting(
        "feature groups: scores (top1, margin, mean10, std10), eos (log P(EOS) as the first thought token, one "
        "extra forward per query), vector (the no-thinking query vector)", factory=lambda: ["scores", "vector"])
    l2: float = setting("L2 penalty of the logistic regression: scikit-learn's C = 1 / l2", 1.0)
    temperature: float = setting("InfoNCE temperature of the labels' softmax (reference)", 0.02)
    seed: int = setting("seed of the calibration split and of the candidate samples", 0)
    index: str | None = setting("an index folder of this model (o1emb index) to score the features against, "
                                "e.g. the corpus the policy will search (unset: the rows' documents)", None)
    max_rows: int | None = setting("only the first N rows (a quick fit)", None)
    calibrate_on: str | None = setting(
        "queries to calibrate think.share on instead of the held-out rows (no labels, only their no-thinking "
        "pass; needs --index): a BEIR queries.jsonl, a BEIR folder (its queries.jsonl) or a text file, one "
        "query a line", None)
    engine: str = setting(ENGINE_HELP, "one-pass", flag="think-engine")
    cache: str | None = setting("thought cache folder (unset: $O1EMB_CACHE/thoughts or ~/.cache/o1embedder/thoughts)",
                                None)
    no_cache: bool = setting("do not read or write the thought cache", False)

    def check(self) -> None:
        """The numbers' ranges, before any loading."""
        self.check_batch_size()
        for ok, message in ((0 < self.calibration < 1, f"--calibration must be between 0 and 1, got {self.calibration}"),
                            (self.sample >= 0, f"--sample must be >= 0, got {self.sample}"),
                            (self.l2 > 0, f"--l2 must be > 0, got {self.l2}"),
                            (self.temperature > 0, f"--temperature must be > 0, got {self.temperature}"),
                            (self.max_rows is None or self.max_rows >= 1, f"--max-rows must be >= 1, got {self.max_rows}")):
            if not ok:
                raise InputError(message)
