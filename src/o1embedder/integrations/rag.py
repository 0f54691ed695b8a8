"""What the RAG framework adapters share (:mod:`.langchain`, :mod:`.llamaindex`, :mod:`.haystack`): a source
of vectors with the split those frameworks make - documents are embedded without thinking, queries
thinking (or not) - from an in-process :class:`~o1embedder.model.O1Embedder` or a running ``o1emb serve``.

In process, ``think="auto"`` needs the corpus the queries will search: ``index=`` an O1 index folder of
the same model over that corpus (``o1emb index``). Each query is embedded without thinking and searched
there; the rule of ``think="auto"`` (the model's learned policy with ``think_share`` / ``think_threshold``,
or the margin rule with ``auto_margin``; docs/retrieval.md) decides which queries think, and those get
their thinking vector - exactly the vectors a ``think="auto"`` search computes. Over a server, queries
think or not (``/v1/embeddings``); ``"auto"`` is refused there, as the server refuses it.

Every adapter keeps the thoughts of its last queries (``last_thoughts``) and puts them where its framework
has a place for them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, ModelError

EXTRAS = {"langchain": "pip install 'o1embedder[langchain]'  (langchain-core)",
          "llamaindex": "pip install 'o1embedder[llamaindex]'  (llama-index-core)",
          "haystack": "pip install 'o1embedder[haystack]'  (haystack-ai)"}


def missing(framework: str) -> ImportError:
    """The one line a missing framework gets."""
    return ImportError(f"o1embedder.integrations.{framework} needs its framework: {EXTRAS[framework]}")


Doc = str | dict[str, str]


class O1Vectors:
    """Document and query vectors from ``model`` (an :class:`O1Embedder`, or a path to load) or, with
    ``url``, from ``o1emb serve`` at that address (``api_key``: its key; ``model_id``: the served id).

    ``think``: ``True`` (queries think), ``False`` (never) or ``"auto"`` (in process, with ``index``);
    ``auto_margin`` / ``think_share`` / ``think_threshold``: the knob of ``"auto"``; other keywords
    (``n_thoughts``, ``temperature``, ``max_new_tokens``, ...) override the model's thinking settings.
    """

    def __init__(self, model: Any = None, *, url: str | None = None, api_key: str | None = None,
                 model_id: str | None = None, think: bool | str = True, index: str | Path | None = None,
                 auto_margin: float | None = None, think_share: float | None = None,
                 think_threshold: float | None = None, batch_size: int = 32, timeout: float = 600.0,
                 device: Any = None, dtype: Any = None, **think_options: Any) -> None:
        from ..model.settings import check_think

        self.think = check_think(think, where="the RAG adapters")
        if (model is None) == (url is None):
            raise InputError("give the model (an O1Embedder or its folder) or the url of o1emb serve, not both")
        self.url, self.api_key, self.model_id = (url.rstrip("/") if url else None), api_key, model_id
        self.batch_size, self.timeout = batch_size, timeout
        self.options = {k: v for k, v in think_options.items() if v is not None}
        self.knobs = {"auto_margin": auto_margin, "think_share": think_share, "think_threshold": think_threshold}
        self.model = self.encoder = self.index = None
        if self.url is not None:
            if self.think == "auto":
                raise InputError('think="auto" decides from a search of the corpus: over a server use POST '
                                 "/v1/search, or run the model in process with index=")
            return
        from ..model import O1Embedder

        self.model = model if isinstance(model, O1Embedder) else O1Embedder.from_pretrained(model, device=device,
                                                                                            dtype=dtype)
        if self.think == "auto":
            if index is None:
                raise InputError('think="auto" needs index= (an O1 index of this model over the corpus searched)')
            from ..retrieval import load_index
            from ..retrieval.encoders import O1Encoder

            self.encoder = O1Encoder(self.model, think_options=self.options, cache_dir=False, **self.knobs)
            self.index = load_index(index, expect_fingerprint=self.model.fingerprint())

    # -- documents ---------------------------------------------------------------------------------------
    def documents(self, docs: Sequence[Doc]) -> list[list[float]]:
        docs = list(docs)
        if not docs:
            return []
        if self.model is not None:
            vectors = self.model.encode_corpus(docs, batch_size=self.batch_size, show_progress=False)
            return np.asarray(vectors, dtype=np.float32).tolist()
        texts = [d if isinstance(d, str) else (f"{d.get('title', '')} {d.get('text', '')}".strip()) for d in docs]
        return [v for start in range(0, len(texts), self.batch_size)
                for v in self._post(texts[start:start + self.batch_size], {})[0]]

    # -- queries -----------------------------------------------------------------------------------------
    def queries(self, texts: Sequence[str]) -> tuple[list[list[float]], list[list[str]]]:
        """Query vectors and each query's thoughts (empty for a query that did not think)."""
        texts = list(texts)
        if not texts:
            return [], []
        if self.model is None:
            extra = {"input_type": "query", "think": bool(self.think), "return_thoughts": bool(self.think),
                     **self.options}
            vectors, thoughts = [], []
            for start in range(0, len(texts), self.batch_size):
                v, t = self._post(texts[start:start + self.batch_size], extra)
                vectors += v
                thoughts += t
            return vectors, thoughts
        if self.think is False:
            plain = self.model.encode_queries(texts, think=False, batch_size=self.batch_size, show_progress=False)
            return np.asarray(plain, np.float32).tolist(), [[] for _ in texts]
        if self.think is True:
            found = self.model.think(texts, **self.options, batch_size=self.batch_size, show_progress=False)
            return np.asarray(found.pooled, np.float32).tolist(), found.texts
        return self._auto(texts)

    def _auto(self, texts: list[str]) -> tuple[list[list[float]], list[list[str]]]:
        """``think="auto"`` in process: what a ``think="auto"`` search of ``index`` embeds."""
        rule = self.encoder.auto_rule()
        plain = self.encoder.encode_queries(texts, batch_size=self.batch_size, think=False).vectors
        hits = self.index.search(np.asarray(plain, np.float32), rule.depth)
        eos = self.encoder.first_eos_logprob(texts, batch_size=self.batch_size) if rule.needs_eos else None
        decided = rule.decide([[s for _, s in h] for h in hits], plain, eos)
        vectors, thoughts = np.asarray(plain, np.float32).copy(), [[] for _ in texts]
        unsure = [i for i, d in enumerate(decided) if d]
        if unsure:
            enc = self.encoder.encode_queries([texts[i] for i in unsure], batch_size=self.batch_size, think=True)
            for j, i in enumerate(unsure):
                vectors[i], thoughts[i] = enc.vectors[j], list(enc.thoughts[j])
        return vectors.tolist(), thoughts

    # -- o1emb serve ---------------------------------------------------------------------------------------
    def _post(self, texts: list[str], extra: dict[str, Any]) -> tuple[list[list[float]], list[list[str]]]:
        body = {"input": texts, "encoding_format": "float", **({"model": self.model_id} if self.model_id else {}),
                **extra}
        headers = {"content-type": "application/json",
                   **({"authorization": f"Bearer {self.api_key}"} if self.api_key else {})}
        request = urllib.request.Request(f"{self.url}/v1/embeddings", data=json.dumps(body).encode(),
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise ModelError(f"{self.url}/v1/embeddings answered HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise ModelError(f"cannot reach o1emb serve at {self.url}: {getattr(exc, 'reason', exc)}") from None
        items = sorted(data["data"], key=lambda item: item["index"])
        return [item["embedding"] for item in items], [list(item.get("thoughts") or []) for item in items]
