"""Rollouts: G thoughts per query on the one-pass path (each thought's vector comes with it), and the
token sequences and targets the policy forward needs.

A rollout runs under inference mode through :meth:`O1Embedder.think`, so the sampled thoughts and
their vectors are exactly what inference would produce with the same settings and seed. The policy
forward then reads the same ``prompt + thought + EOS + <emb>`` sequences with gradients (the
template's query sequence built from the generated *ids*, never from re-tokenised text).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..model.thinking import left_pad
from ..templates import Template


@dataclass
class Rollout:
    """G sampled thoughts per query, row-major: query ``i``'s samples are ``i*G .. i*G+G-1``."""

    queries: list[str]
    samples: int
    thought_ids: list[list[int]]
    """[B*G] generated ids (EOS excluded)."""
    sampled_eos: list[bool]
    """[B*G] whether the model chose to stop (False: the budget ran out and EOS was appended)."""
    vectors: torch.Tensor
    """[B*G, H] one-pass vectors at ``<emb>`` (normalised as the model normalises)."""
    texts: list[str]
    identical: tuple[int, int] = (0, 0)
    """Rows whose samples were all the same before any redraw, and after the last (``resample``)."""

    @property
    def lengths(self) -> torch.Tensor:
        return torch.tensor([len(t) for t in self.thought_ids], dtype=torch.float32)


def rollout_seed(seed: int, step: int) -> int:
    """The sampler seed of one step: a resumed run samples exactly what the unbroken run sampled."""
    return int.from_bytes(hashlib.sha256(f"o1emb-rl|{seed}|{step}".encode()).digest()[:4], "little")


def identical_groups(ids: Sequence[Sequence[Sequence[int]]]) -> list[int]:
    """The queries whose sampled thoughts (per query, per sample: token ids) are all the same."""
    return [i for i, group in enumerate(ids) if len({tuple(t) for t in group}) == 1]


def sample_thoughts(o1: Any, queries: Sequence[str], *, samples: int, temperature: float, top_p: float,
                    max_new_tokens: int, seed: int, resample: int = 0) -> Rollout:
    """Think ``samples`` times per query with ``o1`` (its current weights) and keep ids and vectors.

    ``resample``: up to that many more rounds, the queries whose samples are all the same think again
    with the next round's seed, and a redraw whose samples differ replaces them (a row of identical
    thoughts has equal rewards: no advantage, no gradient). The draws stay keyed per (seed, round,
    query, sample), so a resumed run redraws exactly as the unbroken one. ``Rollout.identical`` counts
    such rows before the first redraw and after the last."""
    queries = list(queries)
    think = {"n_thoughts": samples, "temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens,
             "embed": True, "show_progress": False}
    found = o1.think(queries, seed=seed, batch_size=len(queries), **think)
    per_ids, per_vectors, per_texts = list(found.ids), list(found.vectors), list(found.texts)
    alike = identical_groups(per_ids)
    first = len(alike)
    for round_ in range(1, resample + 1):
        if not alike:
            break
        again = o1.think([queries[i] for i in alike], seed=rollout_seed(seed, round_), batch_size=len(alike), **think)
        for j, i in enumerate(alike):
            if not identical_groups([again.ids[j]]):
                per_ids[i], per_vectors[i], per_texts[i] = again.ids[j], again.vectors[j], again.texts[j]
        alike = identical_groups(per_ids)
    ids = [t for per_query in per_ids for t in per_query]
    budgets = [min(max_new_tokens, o1.template.thought_budget(len(o1.template.query_prompt_ids(q))))
               for q in queries for _ in range(samples)]
    # the Thinker stops a row at EOS or when its budget is spent, so a thought shorter than its
    # budget ended with a sampled EOS
    sampled_eos = [len(t) < b for t, b in zip(ids, budgets, strict=True)]
    vectors = torch.from_numpy(np.ascontiguousarray(np.stack(per_vectors).reshape(len(ids), -1)))
    texts = [t for per_query in per_texts for t in per_query]
    return Rollout(queries, samples, ids, sampled_eos, vectors, texts, (first, len(alike)))


@dataclass
class PolicyBatch:
    """The rollout's query sequences, left-padded, and where each thought token's prediction is read."""

    ids: torch.Tensor            # [S, T]
    mask: torch.Tensor           # [S, T]
    rows: torch.Tensor           # [M] sequence of each target token
    cols: torch.Tensor           # [M] position whose hidden state predicts it
    labels: torch.Tensor         # [M] the token
    token_sample: torch.Tensor   # [M] == rows (kept apart for readability)


def policy_batch(template: Template, rollout: Rollout, pad_id: int) -> PolicyBatch:
    """``prompt + thought + EOS + <emb>`` per sample; targets: the thought tokens and the EOS if sampled.

    An EOS the budget forced is not the policy's choice and carries no policy loss; an empty thought
    whose EOS was sampled has one target (the EOS).
    """
    seqs: list[list[int]] = []
    spans: list[tuple[int, int]] = []
    for s, thought in enumerate(rollout.thought_ids):
        query = rollout.queries[s // rollout.samples]
        seq, kept = template.query_ids(query, thought)
        start = len(seq) - 2 - kept                       # first thought token (EOS and <emb> follow)
        seqs.append(seq)
        spans.append((start, start + kept + int(rollout.sampled_eos[s])))
    ids, mask = left_pad(seqs, pad_id, "cpu")
    width = ids.shape[1]
    rows, cols, labels = [], [], []
    for s, (seq, (lo, hi)) in enumerate(zip(seqs, spans, strict=True)):
        shift = width - len(seq)
        for k in range(lo, hi):
            rows.append(s)
            cols.append(shift + k - 1)                    # the state one position earlier predicts token k
            labels.append(seq[k])
    as_long = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
    rows_t = as_long(rows)
    return PolicyBatch(ids, mask, rows_t, as_long(cols), as_long(labels), rows_t.clone())


def to_device(batch: PolicyBatch, device: Any) -> PolicyBatch:
    return PolicyBatch(*(getattr(batch, f).to(device) for f in
                         ("ids", "mask", "rows", "cols", "labels", "token_sample")))
