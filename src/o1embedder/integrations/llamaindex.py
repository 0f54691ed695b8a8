"""An O1 model as a LlamaIndex ``BaseEmbedding``: texts (nodes) without thinking, queries thinking.

>>> from llama_index.core import Settings, VectorStoreIndex                # doctest: +SKIP
>>> from o1embedder.integrations.llamaindex import O1LlamaIndexEmbedding   # doctest: +SKIP
>>> Settings.embed_model = O1LlamaIndexEmbedding("runs/o1/final")         # doctest: +SKIP

The options are :class:`~.rag.O1Vectors`'s (``think``, its knobs, thinking settings, ``url`` / ``api_key``
for ``o1emb serve``); ``embed_batch_size`` is LlamaIndex's. The last query's thoughts are in
``last_thoughts``. Needs ``pip install 'o1embedder[llamaindex]'``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .rag import O1Vectors, missing

try:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.bridge.pydantic import PrivateAttr
except ImportError:                                                   # pragma: no cover - import guard
    raise missing("llamaindex") from None


class O1LlamaIndexEmbedding(BaseEmbedding):
    _vectors: Any = PrivateAttr()
    _thoughts: list = PrivateAttr(default_factory=list)

    def __init__(self, model: Any = None, *, model_name: str = "o1embedder", embed_batch_size: int = 32,
                 **options: Any) -> None:
        super().__init__(model_name=model_name, embed_batch_size=embed_batch_size)
        self._vectors = O1Vectors(model, batch_size=embed_batch_size, **options)
        self._thoughts = []

    @classmethod
    def class_name(cls) -> str:
        return "O1LlamaIndexEmbedding"

    @property
    def last_thoughts(self) -> list[str]:
        return self._thoughts

    def _get_query_embedding(self, query: str) -> list[float]:
        vectors, thoughts = self._vectors.queries([query])
        self._thoughts = thoughts[0]
        return vectors[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vectors.documents([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._vectors.documents(texts)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)
