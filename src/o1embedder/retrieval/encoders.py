"""Dense encoders behind one protocol: any sentence-transformers model (``st:PATH``) and the O1 model.

:func:`parse_backend` reads a backend spec as users write it: ``bm25``, ``st:PATH``, or an O1 model
(``o1:PATH`` or a bare path/hub id). Dense encoders embed arbitrary texts as queries or documents in
batches (:meth:`encode_queries`, :meth:`encode_documents`), which the committee reuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from ..engines import apply_think_options
from ..errors import InputError, ModelError
from ..log import get_logger
from ..templates import document_text
from .adaptive import AutoRule, auto_rule, check_think
from .base import Doc, QueryEncoding, check_queries
from .thought_cache import ThoughtCache, default_cache_dir, model_numerics

logger = get_logger(__name__)


def parse_backend(spec: str) -> tuple[str, str]:
    """``"bm25"`` -> ``("bm25", "")``, ``"bm25:nostem"`` -> ``("bm25", "nostem")``;
    ``"st:PATH"`` -> ``("st", PATH)``; else ``("o1", PATH)``."""
    if not isinstance(spec, str) or not spec.strip():
        raise InputError("empty model spec (expected an O1 model path, 'bm25' or 'st:PATH')")
    spec = spec.strip()
    if spec.lower() in ("bm25", "bm25:stem", "bm25:nostem"):
        return "bm25", spec.lower()[5:]
    for prefix, kind in (("st:", "st"), ("o1:", "o1")):
        if spec.startswith(prefix):
            if not spec[len(prefix):]:
                raise InputError(f"model spec {spec!r} names no path")
            return kind, spec[len(prefix):]
    return "o1", spec


class STEncoder:
    """A sentence-transformers model, normalised vectors (inner product = cosine).

    Queries and documents go through the model's own ``query`` / ``document`` prompts when it defines
    them (``encode_query`` / ``encode_document`` of sentence-transformers >= 5, ``prompt_name`` before).
    """

    normalized = True

    def __init__(self, path: str, *, device: str | None = None, max_length: int | None = None) -> None:
        from pathlib import Path

        from sentence_transformers import SentenceTransformer

        from ..model.loading import require_safetensors  # checkpoints' own, re-exported

        if Path(path).expanduser().is_dir():          # its module folders too (a Dense layer's weights)
            require_safetensors(path, subfolders=True)
        try:
            # use_safetensors: a hub model without safetensors is refused, not unpickled
            self.model = SentenceTransformer(str(path), device=device, model_kwargs={"use_safetensors": True})
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load sentence-transformers model {path!r}: {exc}") from None
        if max_length is not None:
            self.model.max_seq_length = max_length
        self.path, self.name = str(path), f"st:{path}"
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim())
        self._fingerprint: str | None = None

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            from ..model.embedder import state_fingerprint

            self._fingerprint = state_fingerprint(self.model.state_dict(),
                                                  f"{self.model}|{self.model.max_seq_length}|norm")
        return self._fingerprint

    def describe(self) -> dict[str, Any]:
        return {"kind": "st", "path": self.path, "max_seq_length": self.model.max_seq_length}

    def encode_texts(self, texts: list[str], side: str, *, batch_size: int = 32,
                     show_progress: bool | None = None) -> np.ndarray:
        """Texts as ``side`` (``"query"`` or ``"document"``), with the model's prompt for that side."""
        options: dict[str, Any] = {"batch_size": batch_size, "normalize_embeddings": True, "convert_to_numpy": True,
                                   "show_progress_bar": show_progress if show_progress is not None
                                   else len(texts) >= 100}
        fn = getattr(self.model, f"encode_{side}", None)          # sentence-transformers >= 5: applies the prompt
        if fn is None:                                            # older: the prompt by name, when defined
            fn = self.model.encode
            if side in (getattr(self.model, "prompts", None) or {}):
                options["prompt_name"] = side
        return np.asarray(fn(texts, **options), dtype=np.float32)

    def encode_documents(self, docs: Sequence[Doc], *, batch_size: int = 32,
                         show_progress: bool | None = None) -> np.ndarray:
        return self.encode_texts([document_text(d).strip() for d in docs], "document", batch_size=batch_size,
                                 show_progress=show_progress)

    def encode_queries(self, queries: Sequence[str], *, batch_size: int = 32,
                       show_progress: bool | None = None) -> QueryEncoding:
        queries = check_queries(queries)
        vecs = self.encode_texts(queries, "query", batch_size=batch_size, show_progress=show_progress)
        return QueryEncoding(vecs, [[] for _ in queries])


class O1Encoder:
    """The O1 model: documents never think; queries think (cached) unless ``think=False``.

    ``think_options`` override the model's own :class:`~o1embedder.model.ThinkConfig` (keys
    ``n_thoughts``, ``temperature``, ``top_p``, ``max_new_tokens``, ``seed``; ``None`` = default).
    ``cache_dir=None`` uses :func:`default_cache_dir`; ``cache_dir=False`` disables the cache.
    """

    normalized = True

    def __init__(self, model: Any, *, path: str | None = None, think: bool | str = True,
                 think_options: dict[str, Any] | None = None, cache_dir: Any = None,
                 max_length: int | None = None, auto_margin: float | None = None,
                 think_share: float | None = None, think_threshold: float | None = None) -> None:
        self.model, self.think, self.max_length = model, check_think(think), max_length
        self.auto_knobs = {"auto_margin": auto_margin, "think_share": think_share, "think_threshold": think_threshold}
        """``think="auto"``'s default knob (at most one given; see :func:`~.adaptive.auto_rule`)."""
        self.auto_rule()                                  # checked now, not at the first search
        self.path = str(path) if path is not None else None
        self.name = self.path or "o1"
        self.dim = int(model.dim)
        self.normalized = bool(model.settings.normalize)
        self.think_config = apply_think_options(model, think_options)   # and who writes the thoughts
        self._fingerprint: str | None = None
        self._cache_dir = cache_dir
        self.last_stats: dict[str, int] = {}

    @property
    def auto_margin(self) -> float | None:
        """The margin rule's margin when that is ``think="auto"``'s rule by default, else ``None``."""
        rule = self.auto_rule()
        return rule.margin if rule.policy is None else None

    def auto_rule(self, **knobs: Any) -> AutoRule:
        """``think="auto"``'s rule: from ``knobs`` (``auto_margin``, ``think_share``, ``think_threshold``)
        when any is given, else from this encoder's defaults."""
        chosen = knobs if any(v is not None for v in knobs.values()) else self.auto_knobs
        return auto_rule(getattr(self.model, "think_policy", None), **chosen)

    @classmethod
    def load(cls, path: str, *, device: Any = None, dtype: Any = None, **kwargs: Any) -> O1Encoder:
        from ..model import O1Embedder

        return cls(O1Embedder.from_pretrained(path, device=device, dtype=dtype), path=path, **kwargs)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = self.model.fingerprint()
        return self._fingerprint

    def describe(self) -> dict[str, Any]:
        return {"kind": "o1", "path": self.path, "template": self.model.settings.template.to_dict(),
                "pooling": self.model.settings.pooling, "max_length": self.max_length,
                "dtype": str(self.model.dtype).removeprefix("torch.")}

    def generation_settings(self) -> dict[str, Any]:
        """What decides the thoughts besides the model's fingerprint: the think config, the template, and
        the numerics the model runs in (dtype, device type, decode path: a bf16 run may sample other
        tokens than a float32 one, so they never share cached thoughts)."""
        return {**asdict(self.think_config), "template": self.model.settings.template.to_dict(),
                **model_numerics(self.model)}

    def cache(self) -> ThoughtCache | None:
        if self._cache_dir is False or self.think_config.seed is None:
            return None
        directory = default_cache_dir() if self._cache_dir is None else self._cache_dir
        settings = self.generation_settings()
        del settings["plain_weight"]                     # it mixes the vector, not the thoughts
        return ThoughtCache(directory, self.fingerprint(), settings)

    def first_eos_logprob(self, queries: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """The ``log_p_eos`` feature of the learned when-to-think policy (:func:`o1embedder.model.eos.first_eos_logprob`)."""
        from ..model.eos import first_eos_logprob

        return first_eos_logprob(self.model, queries, batch_size=batch_size)

    def encode_documents(self, docs: Sequence[Doc], *, batch_size: int = 32,
                         show_progress: bool | None = None) -> np.ndarray:
        return self.model.encode_corpus(list(docs), batch_size=batch_size, max_length=self.max_length,
                                        show_progress=show_progress)

    def encode_queries(self, queries: Sequence[str], *, batch_size: int = 32,
                       show_progress: bool | None = None, think: bool | str | None = None) -> QueryEncoding:
        # "auto" needs the index a retriever holds: DenseRetriever.search runs the policy and calls
        # this with think=False, then think=True for the unsure queries
        think = check_think(self.think if think is None else think, allow_auto=False,
                            where="O1Encoder.encode_queries")
        queries = check_queries(queries)
        if not think:
            vecs = self.model.encode_queries(queries, think=False, batch_size=batch_size,
                                             show_progress=show_progress)
            return QueryEncoding(np.asarray(vecs, dtype=np.float32), [[] for _ in queries])
        return self._think_and_embed(queries, batch_size, show_progress)

    def _think_and_embed(self, queries: list[str], batch_size: int,
                         show_progress: bool | None) -> QueryEncoding:
        """Cached queries: embed from the cached thought ids; the rest: think (one pass) and cache.

        Pooling is the model's own: ``think().pooled`` and ``encode_queries(thoughts=ids)``.
        """
        cache = self.cache()
        unique = list(dict.fromkeys(queries))
        found = {q: e for q in unique if cache is not None and (e := cache.get(q)) is not None}
        todo = [q for q in unique if q not in found]
        vector: dict[str, np.ndarray] = {}
        if todo:
            # ``think`` keeps the generated token ids, which the cache stores (re-tokenising the
            # decoded text may differ slightly), and the one-pass query vectors.
            cfg = self.think_config
            result = self.model.think(todo, **asdict(cfg), batch_size=batch_size,
                                      show_progress=show_progress)     # every setting the cache key holds
            for i, q in enumerate(todo):
                vector[q] = result.pooled[i]
                found[q] = (result.texts[i], result.ids[i])
            if cache is not None:
                cache.put([(q, found[q][0], found[q][1]) for q in todo])
        cached = [q for q in unique if q not in vector]
        if cached:
            vecs = self.model.encode_queries(cached, thoughts=[found[q][1] for q in cached], batch_size=batch_size,
                                             plain_weight=self.think_config.plain_weight,
                                             show_progress=False)
            vector.update(zip(cached, vecs))
        self.last_stats = {"generated": len(todo), "cached": len(cached)}
        logger.debug("thoughts: %d generated, %d from cache", len(todo), len(cached))
        vecs = np.stack([vector[q] for q in queries])
        return QueryEncoding(vecs.astype(np.float32), [list(found[q][0]) for q in queries])


def load_encoder(spec: str, *, device: Any = None, dtype: Any = None, max_length: int | None = None,
                 **o1_options: Any) -> STEncoder | O1Encoder:
    """A dense encoder from a spec (``st:PATH`` or an O1 model); ``bm25`` is not an encoder."""
    kind, path = parse_backend(spec)
    if kind == "bm25":
        raise InputError("bm25 is not a dense encoder")
    if kind == "st":
        return STEncoder(path, device=device, max_length=max_length)
    return O1Encoder.load(path, device=device, dtype=dtype, max_length=max_length, **o1_options)
