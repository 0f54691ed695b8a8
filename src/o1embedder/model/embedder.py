"""``O1Embedder``: the library's front door - load, think, embed, save.

The class is put together from one mixin per job: :mod:`.fingerprint` (the weights hash),
:mod:`.pooling` (vectors at ``<emb>``), :mod:`.thoughts` (thinking) and :mod:`.st_api` (the
sentence-transformers names); loading and saving are :mod:`.loading`'s.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from ..errors import InputError
from ..log import get_logger
from ..templates import Template, TemplateConfig
from . import loading
from .fingerprint import FingerprintMixin, state_fingerprint  # noqa: F401 (re-exported)
from .padding import pad_multiple_for
from .policy import ThinkPolicy
from .pooling import PoolingMixin
from .settings import O1Settings, ThinkConfig, check_think
from .st_api import Doc, SentenceTransformersMixin, _st_options, _st_output
from .thoughts import ThinkingMixin, Thoughts, _check_queries  # noqa: F401 (Thoughts re-exported)

logger = get_logger(__name__)


class O1Embedder(FingerprintMixin, PoolingMixin, ThinkingMixin, SentenceTransformersMixin):
    """One causal LM that thinks about a query, then embeds query + thought (documents never think).

    >>> model = O1Embedder.from_pretrained("path/to/o1-model")      # doctest: +SKIP
    >>> docs = model.encode_corpus([{"title": "Tokyo Tower", "text": "..."}])  # doctest: +SKIP
    >>> q = model.encode_queries(["who designed Tokyo Tower?"])     # doctest: +SKIP
    >>> scores = q @ docs.T                                          # doctest: +SKIP
    """

    def __init__(self, model: Any, tokenizer: Any, settings: O1Settings | None = None) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.settings = settings or O1Settings()
        self.template = Template(tokenizer, self.settings.template)
        self.model.eval()
        self._fingerprint_cache: tuple[Any, str] | None = None
        self.pad_multiple: int | None = None
        """Inference batches are padded to a multiple of this many tokens; ``None``: chosen by device
        and dtype (:func:`~o1embedder.model.padding.pad_multiple_for`)."""
        self.decode: str = "auto"
        """How thoughts are decoded: ``"auto"`` (a static KV cache and direct layer calls for Llama-family
        decoders, :mod:`~o1embedder.model.fastdecode`), ``"static"`` or ``"generic"`` (the decoder's own
        forward; every architecture): the same thoughts and vectors either way. ``"fast"``: static with a
        faster attention call whose rounding differs (vectors to cosine ~0.9997 in bf16) and, for one
        query thinking (k <= 4 samples) in bf16 on a CPU, the steps' products on fused float16 copies of the weights
        (about 2x faster there; they cost as much memory as those weights; :mod:`~o1embedder.model.onequery`).
        ``"compiled"``: ``"fast"`` with that one-query step under ``torch.compile`` (the fastest one-query
        path once compiled: 20-40 s per process at the SmolLM2 shape on 2 cores, a few seconds when inductor's
        on-disk cache holds it)."""
        self.engine: Any = None
        """Who writes the thoughts (:mod:`o1embedder.engines`): ``None``, the model's own one-pass loop; or
        an engine (llama.cpp, an OpenAI-compatible server) whose thoughts the model then embeds."""
        self.think_policy: ThinkPolicy | None = None
        """The learned when-to-think policy of ``think="auto"`` (:mod:`.policy`), loaded from the model
        folder's ``think_policy.json`` when it has one (``o1emb fit-policy``); ``None``: the margin rule."""

    # -- loading / saving ---------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], *, device: Any = None, dtype: Any = None,
                        trust_remote_code: bool = False, template: TemplateConfig | None = None,
                        think: ThinkConfig | None = None) -> O1Embedder:
        """Load an O1 model saved by us, the authors' released format, or a plain causal LM.

        ``path`` is a folder, a hub id or a single ``.gguf`` file (dequantized on load). A plain LM
        gets the four special tokens added (mean-initialised, with a warning: untrained).
        ``device`` defaults to CUDA when available. ``dtype`` defaults to ``"auto"``: bfloat16 on
        CUDA and on CPUs with native bf16 (AMX / AVX512-BF16), float32 elsewhere.
        """
        path = os.fspath(path)
        loading._check_source(path)
        device = loading.resolve_device(device)
        dtype = loading.resolve_dtype(dtype, device)
        settings = loading.read_settings(path) or O1Settings()
        if template is not None:
            settings.template = template
        if think is not None:
            settings.think = think.validate()
        # float16 rounds differently from bfloat16 (and flushes tiny weights): load it in float32,
        # take the fingerprint there, then cast, so the fingerprint stays the same for every dtype.
        load_dtype = torch.float32 if dtype == torch.float16 else dtype
        model, tokenizer = loading.load_lm_and_tokenizer(path, device=device, dtype=load_dtype,
                                                         trust_remote_code=trust_remote_code)
        if not loading.has_special_tokens(tokenizer, settings.template.special_tokens):
            loading.add_special_tokens(model, tokenizer, settings.template.special_tokens)
        loading.check_vocab(model, tokenizer, path)
        embedder = cls(model, tokenizer, settings)
        if load_dtype != dtype:
            fingerprint = embedder.fingerprint()
            embedder.model.to(dtype)
            embedder._fingerprint_cache = (embedder._weights_signature(), fingerprint)
        embedder.think_policy = loading.read_policy(path, embedder.fingerprint)
        return embedder

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Save weights (safetensors), tokenizer and ``o1embedder.json``, and the think policy when there is
        one for these weights; ``from_pretrained`` restores it (and the fingerprint, whatever dtype either
        side uses)."""
        fingerprint = self.fingerprint()
        self.settings.identity = {"fingerprint": fingerprint, "weights_digest": self._compute_fingerprint()}
        self._fingerprint_cache = (self._weights_signature(), fingerprint)
        loading.save(self.model, self.tokenizer, self.settings, directory)
        if self.think_policy is not None:
            loading.save_policy(self.think_policy, fingerprint, directory)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def _pad_multiple(self) -> int:
        return self.pad_multiple if self.pad_multiple is not None else pad_multiple_for(self.device, self.dtype)

    @property
    def dim(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[1])

    # -- embedding (vectors from ids: PoolingMixin; thinking: ThinkingMixin) -------------------
    def encode_corpus(self, docs: Doc | Sequence[Doc], *, batch_size: int = 32, max_length: int | None = None,
                      show_progress: bool | None = None, show_progress_bar: bool | None = None,
                      convert_to_numpy: bool = True, convert_to_tensor: bool = False,
                      normalize_embeddings: bool = False, device: Any = None, **st_options: Any) -> Any:
        """Embed documents (strings or ``{title, text}`` records) without thinking -> [N, H] float32.

        One document (a string or a record) gives one vector [H]. The sentence-transformers keywords
        work as there (BEIR's ``DenseRetrievalExactSearch`` passes them): ``show_progress_bar``,
        ``convert_to_tensor`` (a tensor, on ``device`` if given), ``convert_to_numpy``,
        ``normalize_embeddings`` (vectors are already L2-normalised when the model normalises).
        """
        _st_options(st_options, "encode_corpus")
        single = isinstance(docs, (str, dict))
        docs = [docs] if single else list(docs)
        if not docs:
            raise InputError("no documents given (empty list)")
        template = self.template
        if max_length is not None:
            template = Template(self.tokenizer, replace(self.settings.template, max_passage_tokens=max_length))
        seqs = []
        for i, doc in enumerate(docs):
            try:
                seqs.append(template.document_ids(doc))
            except InputError as exc:
                raise InputError(f"document {i}: {exc}") from None
        show = show_progress if show_progress is not None else show_progress_bar
        vectors = self.embed_ids(seqs, batch_size=batch_size, show_progress=show, desc="documents")
        return _st_output(vectors, single=single, convert_to_numpy=convert_to_numpy,
                          convert_to_tensor=convert_to_tensor, normalize_embeddings=normalize_embeddings,
                          device=device)

    def encode_queries(self, queries: str | Sequence[str], *, think: bool | str = True,
                       thoughts: Sequence[str | Sequence[str]] | None = None, n_thoughts: int | None = None,
                       temperature: float | None = None, top_p: float | None = None,
                       max_new_tokens: int | None = None, seed: int | None = None,
                       repetition_penalty: float | None = None, no_repeat_ngram_size: int | None = None,
                       exit_eps: float | None = None, exit_every: int | None = None,
                       exit_patience: int | None = None, plain_weight: float | None = None, batch_size: int = 16,
                       show_progress: bool | None = None, show_progress_bar: bool | None = None,
                       convert_to_numpy: bool = True, convert_to_tensor: bool = False,
                       normalize_embeddings: bool = False, device: Any = None, **st_options: Any) -> Any:
        """Embed queries -> [Q, H] float32 (one query string -> one vector [H]).

        - ``think=True``: sample ``n_thoughts`` thoughts per query and embed each on the generation's
          own KV cache (no second pass); the vector is the re-normalised mean of the sample vectors.
          To keep the thoughts too, call :meth:`think` (its ``pooled`` are these vectors). The thinking
          settings (``n_thoughts`` .. ``plain_weight``, :class:`ThinkConfig`) default to the model's;
          ``plain_weight`` > 0 mixes the query's no-thinking vector into it (one more forward per query).
        - ``think=False``: the no-thinking vector ``<query>q</query><thought><emb>``.
        - ``thoughts=[...]``: embed with given thoughts (one string, or a list of strings or of token-id
          lists, per query), e.g. thoughts written by another model or kept by :meth:`think`; pooled
          (and blended, ``plain_weight``) as thinking's.
        - ``think="auto"`` is refused (:class:`InputError`): it decides per query from a search, so it
          belongs to a retriever (``DenseRetriever.search``), which has a corpus; so is any value that
          is not a bool.

        ``batch_size`` bounds every forward: texts per forward without thinking, sequences (query x
        thought) with given thoughts, and queries per generation (each with ``n_thoughts`` rows).
        The sentence-transformers keywords work as in :meth:`encode_corpus`.
        """
        think = check_think(think, allow_auto=False, where="encode_queries")
        _st_options(st_options, "encode_queries")
        single = isinstance(queries, str)
        queries = _check_queries([queries] if single else queries)
        show = show_progress if show_progress is not None else show_progress_bar
        if thoughts is not None:
            weight = self._think_config(plain_weight=plain_weight).plain_weight
            vecs, _ = self._embed_given_thoughts(queries, [thoughts] if single and isinstance(thoughts, str)
                                                 else thoughts, batch_size, show, weight)
        elif not think:
            seqs = [self.template.query_ids(q, None)[0] for q in queries]
            vecs = self.embed_ids(seqs, batch_size=batch_size, show_progress=show, desc="queries")
        else:
            cfg = self._think_config(n_thoughts=n_thoughts, temperature=temperature, top_p=top_p,
                                     max_new_tokens=max_new_tokens, seed=seed,
                                     repetition_penalty=repetition_penalty,
                                     no_repeat_ngram_size=no_repeat_ngram_size, exit_eps=exit_eps,
                                     exit_every=exit_every, exit_patience=exit_patience, plain_weight=plain_weight)
            _, per_sample = self._think(queries, cfg, embed=True, batch_size=batch_size, show_progress=show)
            assert per_sample is not None
            vecs = self._pool(per_sample, queries, cfg.plain_weight, batch_size=batch_size)
        return _st_output(vecs, single=single, convert_to_numpy=convert_to_numpy,
                          convert_to_tensor=convert_to_tensor, normalize_embeddings=normalize_embeddings,
                          device=device)
