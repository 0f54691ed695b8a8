"""The sentence-transformers-style surface: its keywords checked, its output shapes, and the
``encode`` / ``encode_query`` / ``encode_document`` names the ecosystem expects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from .settings import check_think

Doc = str | dict[str, Any]


_ST_IGNORED = frozenset({"pool", "chunk_size", "task", "prompt_type"})
"""sentence-transformers keywords that mean nothing here (multi-process pools, task adapters): ignored."""


def _st_options(kwargs: dict[str, Any], method: str) -> None:
    """Check sentence-transformers keywords that this model does not use: accept the harmless, refuse
    the rest with one clear message (a wrong result is worse than an error)."""
    for name in list(kwargs):
        value = kwargs.pop(name)
        if name in _ST_IGNORED:
            continue
        if name == "output_value" and value in (None, "sentence_embedding"):
            continue
        if name == "precision" and value in (None, "float32"):
            continue
        if name in ("prompt", "truncate_dim") and value is None:
            continue
        if name in ("output_value", "precision", "prompt", "truncate_dim"):
            hint = {"prompt": "the O1 template is fixed; use prompt_name='query' or 'document'"}.get(
                name, "not supported by O1Embedder")
            raise InputError(f"{method}: {name}={value!r}: {hint}")
        raise TypeError(f"{method}() got an unexpected keyword argument {name!r}; thoughts come from "
                        "think(), thinking settings are think/n_thoughts/temperature/top_p/max_new_tokens/seed")


def _st_output(vectors: np.ndarray, *, single: bool, convert_to_numpy: bool, convert_to_tensor: bool,
               normalize_embeddings: bool, device: Any) -> Any:
    """Shape the result as sentence-transformers does: one vector for one input; a tensor with
    ``convert_to_tensor``; a list of 1-D tensors when neither conversion is asked for."""
    if normalize_embeddings:
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
    if convert_to_tensor or not convert_to_numpy:
        tensor = torch.from_numpy(np.ascontiguousarray(vectors))
        if device is not None:
            tensor = tensor.to(device)
        if convert_to_tensor:
            return tensor[0] if single else tensor
        return tensor[0] if single else list(tensor)
    return vectors[0] if single else vectors


class SentenceTransformersMixin:
    """sentence-transformers' method names, on top of ``encode_queries`` and ``encode_corpus``."""

    def encode(self, sentences: Doc | Sequence[Doc], prompt_name: str | None = None, *,
               think: bool | None = None, batch_size: int = 32, **kwargs: Any) -> Any:
        """sentence-transformers' ``encode``: documents by default, queries with ``prompt_name="query"``.

        ``think`` (queries only) defaults to thinking, as :meth:`encode_queries`, and means what it
        means there (``"auto"`` is refused: it needs a retriever). Every keyword of
        :meth:`encode_queries` / :meth:`encode_corpus` is accepted (``show_progress_bar``,
        ``convert_to_tensor``, ``normalize_embeddings``, ``device``, ...). One input gives one vector.
        """
        if think is not None:
            think = check_think(think, allow_auto=False, where="encode")  # type: ignore[assignment]
        kind = (prompt_name or "document").lower()
        if kind in ("query", "queries"):
            return self.encode_queries(sentences, think=True if think is None else think,  # type: ignore[arg-type]
                                       batch_size=batch_size, **kwargs)
        if kind in ("document", "documents", "passage", "corpus", "doc"):
            if think:
                raise InputError("encode: documents never think (think=True needs prompt_name='query')")
            return self.encode_corpus(sentences, batch_size=batch_size, **kwargs)
        raise InputError(f"encode: unknown prompt_name {prompt_name!r} (use 'query' or 'document')")

    def encode_query(self, queries: str | Sequence[str], **kwargs: Any) -> Any:
        """Alias of :meth:`encode_queries` (sentence-transformers style)."""
        return self.encode_queries(queries, **kwargs)

    def encode_document(self, docs: Doc | Sequence[Doc], **kwargs: Any) -> Any:
        """Alias of :meth:`encode_corpus` (sentence-transformers style)."""
        return self.encode_corpus(docs, **kwargs)

    encode_documents = encode_document
