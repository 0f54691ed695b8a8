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

    @property
    def lengths(self) -> torch.Tensor:
        return torch.tensor([len(t) for t in self.thought_ids], dtype=torch.float32)


def rollout_seed(seed: int, step: int) -> int:
    """The sampler seed of one step: a resumed run samples exactly what the unbroken run sampled."""
    return int.from_bytes(hashlib.sha256(f"o1emb-rl|{seed}|{step}".encode()).digest()[:4], "little")


def sample_thoughts(o1: Any, queries: Sequence[str], *, samples: int, temperature: float, top_p: float,
                    max_new_tokens: int, seed: int) -> Rollout:
    """Think ``samples`` times per query with ``o1`` (its current weights) and keep ids and vectors."""
    queries = list(queries)
    found = o1.think(queries, n_thoughts=samples, temperature=temperature, top_p=top_p,
                     max_new_tokens=max_new_tokens, seed=seed, embed=True, batch_size=len(queries),
                     show_progress=False)
    ids = [t for per_query in found.ids for t in per_query]
    budgets = [min(max_new_tokens, o1.template.thought_budget(len(o1.template.query_prompt_ids(q))))
               for q in queries for _ in range(samples)]
    # the Thinker stops a row at EOS or when its budget is spent, so a thought shorter than its
    # budget ended with a sampled EOS
    sampled_eos = [len(t) < b for t, b in zip(ids, budgets, strict=True)]
    vectors = torch.from_numpy(np.ascontiguousarray(found.vectors.reshape(len(ids), -1)))
    texts = [t for per_query in found.texts for t in per_query]
    return Rollout(queries, samples, ids, sampled_eos, vectors, texts)


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
