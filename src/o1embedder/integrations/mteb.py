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

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

try:
    from mteb.models import ModelMeta
    from mteb.models.abs_encoder import AbsEncoder
    from mteb.types import PromptType
except ImportError as exc:                                          # pragma: no cover - import guard
    raise ImportError("o1embedder.integrations.mteb needs the mteb package: pip install mteb") from exc

from ..model import O1Embedder

THINK_KEYS = ("n_thoughts", "temperature", "top_p", "max_new_tokens", "seed")


class O1MTEBEncoder(AbsEncoder):
    """Wrap an :class:`~o1embedder.model.O1Embedder` (or a path to one) for ``mteb.evaluate``.

    ``think``: queries think before they are embedded (default) or not. ``n_thoughts``,
    ``temperature``, ``top_p``, ``max_new_tokens``, ``seed`` override the model's own thinking
    settings. ``name`` is how MTEB files the results (``organization/model``); by default
    ``o1embedder/<folder name>`` plus ``-no-think`` when not thinking. ``revision`` defaults to the
    model's fingerprint, so results of different weights never share a cache entry.
    """

    def __init__(self, model: O1Embedder | str | Path, revision: str | None = None, *, think: bool = True,
                 name: str | None = None, device: Any = None, dtype: Any = None, batch_size: int = 32,
                 **think_options: Any) -> None:
        unknown = set(think_options) - set(THINK_KEYS)
        if unknown:
            raise TypeError(f"O1MTEBEncoder: unknown options {sorted(unknown)} (thinking settings: {THINK_KEYS})")
        if isinstance(model, O1Embedder):
            self.model, folder = model, "model"
        else:
            self.model, folder = O1Embedder.from_pretrained(model, device=device, dtype=dtype), Path(model).name
        self.think, self.batch_size = think, batch_size
        self.think_options = {k: v for k, v in think_options.items() if v is not None}
        default_name = f"o1embedder/{folder}" + ("" if think else "-no-think")
        parameters = sum(p.numel() for p in self.model.model.parameters())
        self.mteb_model_meta = ModelMeta(
            loader=None, name=name or default_name, revision=revision or self.model.fingerprint(),
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
