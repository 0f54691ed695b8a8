"""An O1 model as Haystack components: :class:`O1DocumentEmbedder` (documents, never thinking) and
:class:`O1TextEmbedder` (the query, thinking; its thoughts in the ``meta`` output).

>>> from haystack import Pipeline                                          # doctest: +SKIP
>>> from o1embedder.integrations.haystack import O1DocumentEmbedder, O1TextEmbedder   # doctest: +SKIP
>>> pipe.add_component("embedder", O1TextEmbedder("runs/o1/final"))        # doctest: +SKIP

A document is embedded as ``{title, text}`` when its ``meta`` has a ``title`` (the O1 template of a
BEIR record), else as its content. The options are :class:`~.rag.O1Vectors`'s. Needs
``pip install 'o1embedder[haystack]'``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .rag import O1Vectors, missing

try:
    from haystack import Document, component
except ImportError:                                                   # pragma: no cover - import guard
    raise missing("haystack") from None


@component
class O1TextEmbedder:
    def __init__(self, model: Any = None, **options: Any) -> None:
        self.vectors = O1Vectors(model, **options)

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    def run(self, text: str) -> dict[str, Any]:
        vectors, thoughts = self.vectors.queries([text])
        return {"embedding": vectors[0], "meta": {"thoughts": thoughts[0]}}


@component
class O1DocumentEmbedder:
    def __init__(self, model: Any = None, **options: Any) -> None:
        self.vectors = O1Vectors(model, **options)

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        docs = [{"title": d.meta["title"], "text": d.content or ""} if (d.meta or {}).get("title") else (d.content or "")
                for d in documents]
        # new Documents (Haystack's dataclasses are not to be changed in place)
        return {"documents": [replace(d, embedding=v) for d, v in zip(documents, self.vectors.documents(docs),
                                                                      strict=True)]}
