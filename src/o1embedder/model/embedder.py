"""``O1Embedder``: the library's front door - load, think, embed, save."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..log import get_logger, progress_enabled
from ..templates import Template, TemplateConfig
from . import loading
from .settings import O1Settings, ThinkConfig, check_think
from .thinking import Thinker, left_pad, pad_multiple_for, positions_from_mask

logger = get_logger(__name__)
Doc = str | dict[str, Any]


def _check_queries(queries: Any) -> list[str]:
    if isinstance(queries, str):
        raise InputError("queries must be a list of strings, not one string (wrap it in a list)")
    queries = list(queries)
    if not queries:
        raise InputError("no queries given (empty list)")
    for i, q in enumerate(queries):
        if not isinstance(q, str):
            raise InputError(f"query {i} is a {type(q).__name__}, not a string")
        if not q.strip():
            raise InputError(f"query {i} is empty")
    return queries


def _is_thought(t: Any) -> bool:
    """A thought is text, or token ids as generated (a list of ints)."""
    if isinstance(t, str):
        return True
    return isinstance(t, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in t)


@dataclass
class Thoughts:
    """What :meth:`O1Embedder.think` returns, query-major: ``[query][sample]``."""

    ids: list[list[list[int]]]
    """Generated token ids per query and sample (EOS excluded)."""
    texts: list[list[str]]
    """The same thoughts decoded (special tokens skipped, stripped)."""
    vectors: np.ndarray | None
    """[Q, n, H] per-sample vectors, normalised when the model normalises (``None`` when ``embed=False``)."""
    pooled: np.ndarray | None = None
    """[Q, H] the query vectors: what ``encode_queries`` returns for the same thinking settings."""


def _progress(total: int, desc: str, show: bool | None) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="it", disable=not progress_enabled(show if show is not None else total >= 10))


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


def state_fingerprint(state: Any, header: str) -> str:
    """The one weights hash of the library (O1 models, sentence-transformers encoders): ``header``
    (config-like text) and the first 64 values of every tensor of ``state`` (a ``state_dict``),
    taken at bfloat16 precision so the same checkpoint loaded in float32 or bfloat16, on any device,
    hashes the same. Cheap, yet two differently trained models differ."""
    h = hashlib.sha256(header.encode())
    for name, param in state.items():
        sample = param.detach().reshape(-1)[:64]
        if sample.is_floating_point():
            sample = sample.to(torch.bfloat16).float()
        h.update(name.encode())
        h.update(sample.cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class O1Embedder:
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
        and dtype (:func:`~o1embedder.model.thinking.pad_multiple_for`)."""
        self.decode: str = "auto"
        """How thoughts are decoded: ``"auto"`` (a static KV cache and direct layer calls for Llama-family
        decoders, :mod:`~o1embedder.model.fastdecode`), ``"static"`` or ``"generic"`` (the decoder's own
        forward; every architecture): the same thoughts and vectors either way. ``"fast"``: static with a
        faster attention call whose rounding differs (vectors to cosine ~0.9997 in bf16)."""

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
        return embedder

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Save weights (safetensors), tokenizer and ``o1embedder.json``; ``from_pretrained`` restores it
        (and the fingerprint, whatever dtype either side uses)."""
        fingerprint = self.fingerprint()
        self.settings.identity = {"fingerprint": fingerprint, "weights_digest": self._compute_fingerprint()}
        self._fingerprint_cache = (self._weights_signature(), fingerprint)
        loading.save(self.model, self.tokenizer, self.settings, directory)

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

    def fingerprint(self) -> str:
        """A short hash of config, tokenizer, settings and a sample of every weight tensor.

        Cheap (reads at most 64 values per tensor), yet two differently trained models differ. It
        does not depend on the dtype or device the weights were loaded with: the sampled values are
        hashed at bfloat16 precision, which float32 and bfloat16 loads of the same checkpoint share
        exactly (both round to nearest even), and a float16 load is fingerprinted before its cast
        (see :meth:`from_pretrained`). So an index built in bf16 is searched by the same weights
        loaded in float32, and the reverse. The value is cached until a weight changes (tensor
        version counters), so training in place gets a new fingerprint.
        """
        signature = self._weights_signature()
        if self._fingerprint_cache is None or self._fingerprint_cache[0] != signature:
            digest = self._compute_fingerprint()
            identity = self.settings.identity
            same = identity.get("weights_digest") == digest and identity.get("fingerprint")
            self._fingerprint_cache = (signature, identity["fingerprint"] if same else digest)
        return self._fingerprint_cache[1]

    def _weights_signature(self) -> tuple[tuple[int, int], ...]:
        return tuple((p.data_ptr(), p._version) for p in self.model.parameters())

    def _compute_fingerprint(self) -> str:
        h = hashlib.sha256()
        volatile = {"transformers_version", "dtype", "torch_dtype", "architectures", "use_cache",
                    "quantization_config"}
        config = {k: v for k, v in self.model.config.to_dict().items()
                  if not k.startswith("_") and k not in volatile}
        h.update(json.dumps(config, sort_keys=True, default=str).encode())
        h.update(json.dumps(self.settings.template.to_dict(), sort_keys=True).encode())
        h.update(f"{len(self.tokenizer)}|{self.settings.pooling}|{self.settings.normalize}".encode())
        return state_fingerprint(self.model.state_dict(), h.hexdigest())

    # -- embedding -----------------------------------------------------------------------------
    def _decoder(self) -> Any:
        return self.model.get_decoder()

    def _finish(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = hidden.float()
        if self.settings.normalize:
            hidden = torch.nn.functional.normalize(hidden, dim=-1)
        return hidden

    @torch.no_grad()
    def embed_ids(self, seqs: Sequence[Sequence[int]], *, batch_size: int = 32,
                  show_progress: bool | None = None, desc: str = "encode") -> np.ndarray:
        """Vectors at the last token of each id sequence (which must be ``<emb>``): [N, H] float32.

        Sequences are sorted by length so each batch pads little; the output keeps the input order.
        """
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        out = np.empty((len(seqs), self.dim), dtype=np.float32)
        decoder, pad, multiple = self._decoder(), self.tokenizer.pad_token_id, self._pad_multiple()
        with _progress(len(seqs), desc, show_progress) as bar:
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                ids, mask = left_pad([seqs[i] for i in idx], pad, self.device, multiple)
                hidden = decoder(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask),
                                 use_cache=False).last_hidden_state[:, -1]       # [b, H]
                out[idx] = self._finish(hidden).cpu().numpy()
                bar.update(len(idx))
        return out

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

    # -- thinking ------------------------------------------------------------------------------
    def _think_config(self, **overrides: Any) -> ThinkConfig:
        # ``None`` means "the model's default" (settings.think); set settings.think.seed = None for
        # fresh randomness on every call.
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(self.settings.think, **given).validate()

    @staticmethod
    def sample_keys(queries: Sequence[str], n: int, seed: int | None) -> torch.Tensor:
        """Per (query, sample) random keys [len(queries) * n]: a query's key depends on its text only."""
        salt = os.urandom(8).hex() if seed is None else str(seed)
        keys = []
        for q in queries:
            for j in range(n):
                digest = hashlib.sha256(f"{salt}|{j}|{q}".encode()).digest()
                keys.append(int.from_bytes(digest[:4], "little"))
        return torch.tensor(keys, dtype=torch.long)

    def _think(self, queries: list[str], cfg: ThinkConfig, *, embed: bool, batch_size: int,
               show_progress: bool | None) -> tuple[list[list[list[int]]], np.ndarray | None]:
        """Thought ids per query and sample, and (if ``embed``) the per-sample vectors [Q, n, H]."""
        prompts = [self.template.query_prompt_ids(q) for q in queries]
        order = sorted(range(len(queries)), key=lambda i: -len(prompts[i]))
        n = cfg.n_thoughts
        thoughts: list[list[list[int]]] = [[] for _ in queries]
        vectors = np.empty((len(queries), n, self.dim), dtype=np.float32) if embed else None
        thinker = Thinker(self._decoder(), self.model.get_output_embeddings(), eos_id=self.template.eos_id,
                          emb_id=self.template.emb_id, pad_id=self.tokenizer.pad_token_id,
                          pad_multiple=self._pad_multiple(), decode=self.decode)
        with _progress(len(queries), "thinking", show_progress) as bar:
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                batch = [prompts[i] for i in idx]
                budgets = [min(cfg.max_new_tokens, self.template.thought_budget(len(p))) for p in batch]
                keys = self.sample_keys([queries[i] for i in idx], n, cfg.seed)
                result = thinker.run(batch, budgets, cfg, keys, embed=embed)
                for j, i in enumerate(idx):
                    thoughts[i] = result.thought_ids[j * n:(j + 1) * n]
                if vectors is not None and result.vectors is not None:
                    vectors[idx] = self._finish(result.vectors).reshape(len(idx), n, -1).cpu().numpy()
                bar.update(len(idx))
        return thoughts, vectors

    def think(self, queries: Sequence[str], *, n_thoughts: int | None = None, temperature: float | None = None,
              top_p: float | None = None, max_new_tokens: int | None = None, seed: int | None = None,
              embed: bool = True, batch_size: int = 16, show_progress: bool | None = None) -> Thoughts:
        """Think once for every query and keep everything: thought ids, texts and per-sample vectors.

        For callers that store thoughts (a thought cache) or need each sample's vector. The ids are
        what the model generated (EOS excluded); ``encode_queries(thoughts=ids)`` rebuilds the same
        vectors from them, whereas re-tokenising the decoded texts may differ slightly.
        """
        queries = _check_queries(queries)
        cfg = self._think_config(n_thoughts=n_thoughts, temperature=temperature, top_p=top_p,
                                 max_new_tokens=max_new_tokens, seed=seed)
        ids, vectors = self._think(queries, cfg, embed=embed, batch_size=batch_size, show_progress=show_progress)
        return Thoughts(ids=ids, texts=self._decode(ids), vectors=vectors,
                        pooled=None if vectors is None else self._pool(vectors))

    def _pool(self, per_sample: np.ndarray) -> np.ndarray:
        """[Q, n, H] sample vectors -> [Q, H] query vectors."""
        return self._mean_of_normalised(per_sample) if self.settings.normalize else per_sample.mean(1)

    def _decode(self, thought_ids: list[list[list[int]]]) -> list[list[str]]:
        return [[self.tokenizer.decode(t, skip_special_tokens=True).strip() for t in per_query]
                for per_query in thought_ids]

    def generate_thoughts(self, queries: Sequence[str], n: int | None = None, *,
                          temperature: float | None = None, top_p: float | None = None,
                          max_new_tokens: int | None = None, seed: int | None = None,
                          batch_size: int = 16, show_progress: bool | None = None) -> list[list[str]]:
        """Sample ``n`` thoughts per query (defaults from the model's settings) -> texts [Q][n]."""
        queries = _check_queries(queries)
        cfg = self._think_config(n_thoughts=n, temperature=temperature, top_p=top_p,
                                 max_new_tokens=max_new_tokens, seed=seed)
        ids, _ = self._think(queries, cfg, embed=False, batch_size=batch_size, show_progress=show_progress)
        return self._decode(ids)

    @staticmethod
    def _mean_of_normalised(vectors: np.ndarray) -> np.ndarray:
        """[Q, n, H] normalised sample vectors -> [Q, H]: their mean, re-normalised."""
        mean = vectors.mean(axis=1)
        return mean / np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)

    def _embed_given_thoughts(self, queries: list[str], thoughts: Sequence[Any], batch_size: int,
                              show_progress: bool | None) -> tuple[np.ndarray, list[list[str]]]:
        if len(thoughts) != len(queries):
            raise InputError(f"got {len(thoughts)} thoughts for {len(queries)} queries")
        per_query = [[t] if isinstance(t, str) else list(t) for t in thoughts]
        seqs, owner = [], []
        for i, (q, ts) in enumerate(zip(queries, per_query)):
            if not ts or not all(_is_thought(t) for t in ts):
                raise InputError(f"thoughts for query {i} must be a string or a non-empty list of thoughts "
                                 "(strings, or lists of token ids)")
            for t in ts:
                seqs.append(self.template.query_ids(q, t)[0])
                owner.append(i)
        flat = self.embed_ids(seqs, batch_size=batch_size, show_progress=show_progress, desc="queries")
        out = np.zeros((len(queries), flat.shape[1]), dtype=np.float32)
        np.add.at(out, np.asarray(owner), flat)
        if self.settings.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
        else:
            out /= np.bincount(owner, minlength=len(queries))[:, None]
        texts = [[t if isinstance(t, str) else self.tokenizer.decode(t, skip_special_tokens=True).strip()
                  for t in ts] for ts in per_query]
        return out, texts

    def encode_queries(self, queries: str | Sequence[str], *, think: bool | str = True,
                       thoughts: Sequence[str | Sequence[str]] | None = None, n_thoughts: int | None = None,
                       temperature: float | None = None, top_p: float | None = None,
                       max_new_tokens: int | None = None, seed: int | None = None, batch_size: int = 16,
                       show_progress: bool | None = None, show_progress_bar: bool | None = None,
                       convert_to_numpy: bool = True, convert_to_tensor: bool = False,
                       normalize_embeddings: bool = False, device: Any = None, **st_options: Any) -> Any:
        """Embed queries -> [Q, H] float32 (one query string -> one vector [H]).

        - ``think=True``: sample ``n_thoughts`` thoughts per query and embed each on the generation's
          own KV cache (no second pass); the vector is the re-normalised mean of the sample vectors.
          To keep the thoughts too, call :meth:`think` (its ``pooled`` are these vectors).
        - ``think=False``: the no-thinking vector ``<query>q</query><thought><emb>``.
        - ``thoughts=[...]``: embed with given thoughts (one string, or a list of strings or of token-id
          lists, per query), e.g. thoughts written by another model or kept by :meth:`think`.
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
            vecs, _ = self._embed_given_thoughts(queries, [thoughts] if single and isinstance(thoughts, str)
                                                 else thoughts, batch_size, show)
        elif not think:
            seqs = [self.template.query_ids(q, None)[0] for q in queries]
            vecs = self.embed_ids(seqs, batch_size=batch_size, show_progress=show, desc="queries")
        else:
            cfg = self._think_config(n_thoughts=n_thoughts, temperature=temperature, top_p=top_p,
                                     max_new_tokens=max_new_tokens, seed=seed)
            _, per_sample = self._think(queries, cfg, embed=True, batch_size=batch_size, show_progress=show)
            assert per_sample is not None
            vecs = self._pool(per_sample)
        return _st_output(vecs, single=single, convert_to_numpy=convert_to_numpy,
                          convert_to_tensor=convert_to_tensor, normalize_embeddings=normalize_embeddings,
                          device=device)

    # -- names the ecosystem expects -----------------------------------------------------------
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
