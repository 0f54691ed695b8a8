"""The settings of ``o1emb index`` and ``o1emb mine``, and the parts ``eval`` and ``refine`` share with
them: the encoding device/dtype/batch (:class:`Encoding`) and query thinking (:class:`ThinkSettings`).

Filled like every command's settings (:mod:`o1embedder.options`): ``--config FILE``, a flag per
setting, ``--set KEY=VALUE``, ``--print-config``. No torch here: the parser imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

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
    margin: float | None = setting("think.mode auto: the margin (unset: the library's, 0.05; 0 never thinks, "
                                   ".inf always); --auto-think MARGIN sets it", None, no_flag=True)
    n_thoughts: int | None = setting("thoughts sampled per query (unset: the model's)", None, flag="n-thoughts")
    temperature: float | None = setting("sampling temperature, 0 = greedy (unset: the model's)", None,
                                        flag="temperature")
    top_p: float | None = setting("nucleus sampling mass (unset: the model's)", None, flag="top-p")
    max_new_tokens: int | None = setting("thought budget in tokens (unset: the model's)", None, flag="max-new-tokens")
    seed: int | None = setting("sampling seed (unset: the model's)", None, flag="seed")
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

    def overrides(self) -> dict[str, Any]:
        """ThinkConfig overrides (``None``: the model's own setting)."""
        return {"n_thoughts": self.n_thoughts, "temperature": self.temperature, "top_p": self.top_p,
                "max_new_tokens": self.max_new_tokens, "seed": self.seed}

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
