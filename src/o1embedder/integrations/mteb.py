"""An O1 model as an encoder for MTEB (v2's encoder protocol).

>>> import mteb                                                     # doctest: +SKIP
>>> from o1embedder.integrations.mteb import O1MTEBEncoder          # doctest: +SKIP
>>> model = O1MTEBEncoder("path/to/o1-model")                       # thinks for queries
>>> plain = O1MTEBEncoder("path/to/o1-model", think=False)          # the "w/o T" ablation
>>> results = mteb.evaluate(model, mteb.get_tasks(tasks=["SciFact"]))   # doctest: +SKIP

MTEB hands the encoder batches from a ``DataLoader`` and says through ``prompt_type`` whether they are
queries or documents. Queries go through :meth:`O1Embedder.encode_queries` (thinking unless
``think=False``, with the model's thinking settings unless given here); documents (and every other
task type, which has no queries) through :meth:`O1Embedder.encode_corpus`, never thinking. A
document arrives as MTEB's ``text`` column, which is BEIR's ``title + " " + text``: the string the O1
template embeds for a ``{title, text}`` record, so scores equal ``o1emb eval`` on the same data.
Vectors are L2-normalised; similarity is cosine.

Needs ``pip install mteb`` (not an extra of ours: it is large, and users of MTEB have it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

try:
    from mteb.models import ModelMeta
    from mteb.models.abs_encoder import AbsEncoder
    from mteb.types import PromptType
except ImportError as exc:                                          # pragma: no cover - import guard
    raise ImportError("o1embedder.integrations.mteb needs the mteb package: pip install mteb") from exc

from ..model import O1Embedder, ThinkConfig
from ..model.settings import check_think

THINK_KEYS = ("n_thoughts", "temperature", "top_p", "max_new_tokens", "seed", "repetition_penalty",
              "no_repeat_ngram_size", "exit_eps", "exit_every", "exit_patience", "plain_weight")


class O1MTEBEncoder(AbsEncoder):
    """Wrap an :class:`~o1embedder.model.O1Embedder` (or a path to one) for ``mteb.evaluate``.

    ``think``: queries think before they are embedded (default) or not (``"auto"`` is refused: it
    decides per query from a search of a corpus, which MTEB's encoder protocol does not give; use
    ``o1emb eval --auto-think`` or ``DenseRetriever.search``). ``n_thoughts``, ``temperature``,
    ``top_p``, ``max_new_tokens``, ``seed`` (and the other :class:`ThinkConfig` fields in ``THINK_KEYS``)
    override the model's own thinking settings. ``name`` is how MTEB files the results
    (``organization/model``); by default ``o1embedder/<folder name>`` plus ``-no-think`` when not thinking. ``revision`` defaults to :func:`default_revision`: a hash of the
    model's fingerprint, ``think`` and the thinking settings in effect, so MTEB's result cache never
    hands a run the results of other weights or other thinking settings.
    """

    def __init__(self, model: O1Embedder | str | Path, revision: str | None = None, *, think: bool = True,
                 name: str | None = None, device: Any = None, dtype: Any = None, batch_size: int = 32,
                 **think_options: Any) -> None:
        unknown = set(think_options) - set(THINK_KEYS)
        if unknown:
            raise TypeError(f"O1MTEBEncoder: unknown options {sorted(unknown)} (thinking settings: {THINK_KEYS})")
        think = bool(check_think(think, allow_auto=False, where="O1MTEBEncoder"))
        if isinstance(model, O1Embedder):
            self.model, folder = model, "model"
        else:
            self.model, folder = O1Embedder.from_pretrained(model, device=device, dtype=dtype), Path(model).name
        self.think, self.batch_size = think, batch_size
        self.think_options = {k: v for k, v in think_options.items() if v is not None}
        self.think_config = replace(self.model.settings.think, **self.think_options).validate()
        """The thinking settings queries use (the model's, overridden by ``think_options``)."""
        default_name = f"o1embedder/{folder}" + ("" if think else "-no-think")
        parameters = sum(p.numel() for p in self.model.model.parameters())
        revision = revision or default_revision(self.model.fingerprint(), think, self.think_config)
        self.mteb_model_meta = ModelMeta(
            loader=None, name=name or default_name, revision=revision,
            release_date=None, languages=None, n_parameters=parameters, memory_usage_mb=None,
            max_tokens=self.model.settings.template.max_passage_tokens, embed_dim=self.model.dim, license=None,
            open_weights=True, public_training_code=None, public_training_data=None, framework=["PyTorch"],
            similarity_fn_name="cosine", use_instructions=False, training_datasets=None,
            reference="https://arxiv.org/abs/2502.07555")

    def encode(self, inputs: Iterable[dict[str, Any]], *, task_metadata: Any, hf_split: str, hf_subset: str,
               prompt_type: PromptType | None = None, **kwargs: Any) -> np.ndarray:
        """One array [N, H] for all batches of ``inputs``: queries think (``prompt_type`` query)."""
        texts = [text for batch in inputs for text in batch["text"]]
        if not texts:
            return np.zeros((0, self.model.dim), dtype=np.float32)
        show = kwargs.get("show_progress_bar")
        batch_size = int(kwargs.get("batch_size") or self.batch_size)
        if prompt_type == PromptType.query:
            return self.model.encode_queries(texts, think=self.think, batch_size=batch_size if not self.think
                                             else min(batch_size, 16), show_progress_bar=show,
                                             **self.think_options)
        return self.model.encode_corpus(texts, batch_size=batch_size, show_progress_bar=show)


def default_revision(fingerprint: str, think: bool, config: ThinkConfig) -> str:
    """``<fingerprint>-<hash>``: the hash (12 hex digits) of the fingerprint, ``think`` and, when
    thinking, the effective settings (``n_thoughts``, ``temperature``, ``top_p``, ``max_new_tokens``,
    ``seed``). MTEB keys its result cache by name and revision, so each combination that can change
    the query vectors gets its own entry; without thinking the settings are left out (they change
    nothing), so every no-thinking run of one model shares one."""
    payload = {"fingerprint": fingerprint, "think": think, "settings": asdict(config) if think else None}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]
    return f"{fingerprint}-{digest}"
