"""Thinking through the model: queries checked, thoughts sampled (ids and texts), and queries
embedded with thoughts given by the caller."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from .pooling import _progress
from .settings import ThinkConfig
from .thinking import Thinker


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
    lengths: list[list[int]] = field(default_factory=list)
    """Generated tokens per query and sample (EOS excluded), for reporting mean thought length."""
    stopped: list[list[bool]] = field(default_factory=list)
    """Per query and sample: early exit (``exit_eps``) stopped the thought."""


class ThinkingMixin:
    """:class:`~o1embedder.model.O1Embedder`'s thinking: ``think``, ``generate_thoughts`` and the
    loop they share."""

    model: Any
    tokenizer: Any
    settings: Any
    template: Any
    decode: str

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
        ids, vectors, _ = self._think_all(queries, cfg, embed=embed, batch_size=batch_size,
                                          show_progress=show_progress)
        return ids, vectors

    def _think_all(self, queries: list[str], cfg: ThinkConfig, *, embed: bool, batch_size: int,
                   show_progress: bool | None) -> tuple[list[list[list[int]]], np.ndarray | None,
                                                        list[list[bool]]]:
        """:meth:`_think`, and per query and sample whether early exit stopped the thought. The thoughts come
        from the model's own loop, or from ``self.engine`` when one is attached (:meth:`_engine_batch`)."""
        prompts = [self.template.query_prompt_ids(q) for q in queries]
        order = sorted(range(len(queries)), key=lambda i: -len(prompts[i]))
        n = cfg.n_thoughts
        thoughts: list[list[list[int]]] = [[] for _ in queries]
        stopped: list[list[bool]] = [[False] * n for _ in queries]
        vectors = np.empty((len(queries), n, self.dim), dtype=np.float32) if embed else None
        engine = getattr(self, "engine", None)
        thinker = None if engine is not None else Thinker(
            self._decoder(), self.model.get_output_embeddings(), eos_id=self.template.eos_id,
            emb_id=self.template.emb_id, pad_id=self.tokenizer.pad_token_id, pad_multiple=self._pad_multiple(),
            decode=self.decode)
        with _progress(len(queries), "thinking", show_progress) as bar:
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                batch = [prompts[i] for i in idx]
                budgets = [min(cfg.max_new_tokens, self.template.thought_budget(len(p))) for p in batch]
                keys = self.sample_keys([queries[i] for i in idx], n, cfg.seed)
                if thinker is None:
                    ids, flat = self._engine_batch(engine, [queries[i] for i in idx], batch, budgets, cfg, keys,
                                                   embed=embed)
                else:
                    result = thinker.run(batch, budgets, cfg, keys, embed=embed)
                    ids, flat = result.thought_ids, result.vectors
                    for j, i in enumerate(idx):
                        stopped[i] = result.stopped[j * n:(j + 1) * n]
                    if flat is not None:
                        flat = self._finish(flat).cpu().numpy()
                for j, i in enumerate(idx):
                    thoughts[i] = ids[j * n:(j + 1) * n]
                if vectors is not None and flat is not None:
                    vectors[idx] = np.asarray(flat, dtype=np.float32).reshape(len(idx), n, -1)
                bar.update(len(idx))
        return thoughts, vectors, stopped

    def _engine_batch(self, engine: Any, texts: list[str], prompts: list[list[int]], budgets: list[int],
                      cfg: ThinkConfig, keys: torch.Tensor, *, embed: bool) -> tuple[list[list[int]], Any]:
        """One batch's thoughts from ``engine`` (row-major, ``cfg.n_thoughts`` per query) and, if ``embed``,
        each sample's vector from one forward over ``prompt + thought + EOS + <emb>`` (the given-thoughts
        path)."""
        n = cfg.n_thoughts
        written = engine.write(prompts, budgets, cfg, keys.tolist())
        if len(written) != len(prompts) * n:
            raise RuntimeError(f"{engine.identity} wrote {len(written)} thoughts for {len(prompts)} x {n}")
        ids = [list(t) for t in written]
        if not embed:
            return ids, None
        seqs = [self.template.query_ids(texts[r // n], t)[0] for r, t in enumerate(ids)]
        return ids, self.embed_ids(seqs, batch_size=len(seqs), show_progress=False, desc="queries")

    def think(self, queries: Sequence[str], *, n_thoughts: int | None = None, temperature: float | None = None,
              top_p: float | None = None, max_new_tokens: int | None = None, seed: int | None = None,
              repetition_penalty: float | None = None, no_repeat_ngram_size: int | None = None,
              exit_eps: float | None = None, exit_every: int | None = None, exit_patience: int | None = None,
              plain_weight: float | None = None, embed: bool = True, batch_size: int = 16,
              show_progress: bool | None = None) -> Thoughts:
        """Think once for every query and keep everything: thought ids, texts and per-sample vectors.

        For callers that store thoughts (a thought cache) or need each sample's vector. The ids are
        what the model generated (EOS excluded); ``encode_queries(thoughts=ids)`` rebuilds the same
        vectors from them, whereas re-tokenising the decoded texts may differ slightly. The thinking
        settings (:class:`~o1embedder.model.ThinkConfig`) default to the model's (``None``).
        """
        queries = _check_queries(queries)
        cfg = self._think_config(n_thoughts=n_thoughts, temperature=temperature, top_p=top_p,
                                 max_new_tokens=max_new_tokens, seed=seed, repetition_penalty=repetition_penalty,
                                 no_repeat_ngram_size=no_repeat_ngram_size, exit_eps=exit_eps,
                                 exit_every=exit_every, exit_patience=exit_patience, plain_weight=plain_weight)
        ids, vectors, stopped = self._think_all(queries, cfg, embed=embed, batch_size=batch_size,
                                                show_progress=show_progress)
        return Thoughts(ids=ids, texts=self._decode(ids), vectors=vectors,
                        pooled=None if vectors is None else self._pool(vectors, queries, cfg.plain_weight,
                                                                       batch_size=batch_size),
                        lengths=[[len(t) for t in per] for per in ids], stopped=stopped)

    def _decode(self, thought_ids: list[list[list[int]]]) -> list[list[str]]:
        return [[self.tokenizer.decode(t, skip_special_tokens=True).strip() for t in per_query]
                for per_query in thought_ids]

    def generate_thoughts(self, queries: Sequence[str], n: int | None = None, *,
                          temperature: float | None = None, top_p: float | None = None,
                          max_new_tokens: int | None = None, seed: int | None = None,
                          repetition_penalty: float | None = None, no_repeat_ngram_size: int | None = None,
                          exit_eps: float | None = None, exit_every: int | None = None,
                          exit_patience: int | None = None, batch_size: int = 16,
                          show_progress: bool | None = None) -> list[list[str]]:
        """Sample ``n`` thoughts per query (defaults from the model's settings) -> texts [Q][n]."""
        queries = _check_queries(queries)
        cfg = self._think_config(n_thoughts=n, temperature=temperature, top_p=top_p,
                                 max_new_tokens=max_new_tokens, seed=seed, repetition_penalty=repetition_penalty,
                                 no_repeat_ngram_size=no_repeat_ngram_size, exit_eps=exit_eps,
                                 exit_every=exit_every, exit_patience=exit_patience)
        ids, _ = self._think(queries, cfg, embed=False, batch_size=batch_size, show_progress=show_progress)
        return self._decode(ids)

    def _embed_given_thoughts(self, queries: list[str], thoughts: Sequence[Any], batch_size: int,
                              show_progress: bool | None, plain_weight: float = 0.0) -> tuple[np.ndarray, list[list[str]]]:
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
        out = self._blend(out, queries, plain_weight, batch_size=batch_size)
        texts = [[t if isinstance(t, str) else self.tokenizer.decode(t, skip_special_tokens=True).strip()
                  for t in ts] for ts in per_query]
        return out, texts
