"""An O1 model as LangChain ``Embeddings``: ``embed_documents`` without thinking, ``embed_query`` thinking.

>>> from o1embedder.integrations.langchain import O1Embeddings             # doctest: +SKIP
>>> embeddings = O1Embeddings("runs/o1/final")                          # in process; or url="http://127.0.0.1:8000"
>>> store = Chroma.from_texts(texts, embeddings)                        # doctest: +SKIP
>>> store.similarity_search("who designed tokyo tower?")                # the query thinks   # doctest: +SKIP

Sync and async (``aembed_*`` run the same work in a thread). The options are :class:`~.rag.O1Vectors`'s:
``think`` (True, False, or "auto" with ``index=``), its knobs, thinking settings, ``url`` / ``api_key``
for ``o1emb serve``. LangChain's interface has no place for thoughts: the last query's are in
``last_thoughts``. Needs ``pip install 'o1embedder[langchain]'``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .rag import O1Vectors, missing

try:
    from langchain_core.embeddings import Embeddings
except ImportError:                                                   # pragma: no cover - import guard
    raise missing("langchain") from None


class O1Embeddings(Embeddings):
    def __init__(self, model: Any = None, **options: Any) -> None:
        self.vectors = O1Vectors(model, **options)
        self.last_thoughts: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.vectors.documents(texts)

    def embed_query(self, text: str) -> list[float]:
        vectors, thoughts = self.vectors.queries([text])
        self.last_thoughts = thoughts[0]
        return vectors[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await asyncio.to_thread(self.embed_query, text)
