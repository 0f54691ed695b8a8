"""Sampling one token per row: counter-based noise keyed per row, and top-p through the Gumbel-max trick."""

from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """An integer hash of 32-bit values held in int64 (constants < 2**31, so products never overflow)."""
    x = x & _MASK32
    x = ((x ^ (x >> 16)) * 0x7FEB352D) & _MASK32
    x = ((x ^ (x >> 15)) * 0x45D9F3B) & _MASK32
    return x ^ (x >> 16)


def row_noise(keys: torch.Tensor, step: int, token_ids: torch.Tensor) -> torch.Tensor:
    """Uniform (0, 1) noise per (row key, step, token id): [B], [B, K] -> [B, K] float64.

    Counter-based, so a row's randomness depends on its own key only: a query samples the same
    thoughts whichever other queries share its batch (the thought cache and the server's
    micro-batching rely on this), unlike a shared ``torch.Generator`` whose stream is consumed
    by every row of the batch.
    """
    base = _mix32(keys + step * 0x9E3779B1)                                        # [B]
    x = _mix32(base[:, None] ^ ((token_ids * 0x27D4EB2F) & _MASK32))               # [B, K]
    return (x.double() + 0.5) / 2.0**32


_TOPK_STEPS = (64, 1024)


def _nucleus_prefix(logp: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The most probable tokens in descending order, enough of them to hold every row's nucleus.

    Sorting the whole vocabulary every step cost half of a thinking step at a 49k vocabulary
    (SmolLM2, 48 rows, CPU). The nucleus is usually a handful of tokens at the reference temperature
    0.1, and up to a few hundred at an expert's 0.7, so ``topk`` of 64, then of 1,024, come first;
    only when some row's top 1,024 hold less than ``top_p`` of the mass is the full sort done. All give
    the same nucleus (the same prefix of the same descending order).
    """
    for k in _TOPK_STEPS:
        if logp.shape[-1] <= 4 * k:
            break
        values, order = logp.topk(k, dim=-1)                                       # [B, k], sorted
        if bool((values.exp().sum(-1) >= top_p).all()):
            return values, order
    return logp.sort(dim=-1, descending=True)


def sample_next(logits: torch.Tensor, temperature: float, top_p: float, keys: torch.Tensor,
                step: int, *, sync_free: bool = False) -> torch.Tensor:
    """One token per row from ``logits`` [B, V] -> [B]; temperature 0 is greedy.

    Nucleus (top-p) sampling through the Gumbel-max trick: among the smallest set of most probable
    tokens whose mass reaches ``top_p``, pick argmax(log p - log(-log u)), u from :func:`row_noise`.

    ``sync_free``: no value is read back to the host (for accelerators, where a read waits for the
    device): the whole vocabulary is sorted and scored, the tokens past the nucleus masked out,
    instead of trying ``topk`` prefixes and cutting the candidates to the widest nucleus, which read
    two values per step but save most of the work on a CPU. The same nucleus and the same token (up
    to exact ties in probability at the nucleus's edge, as between the ``topk`` prefixes already).
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    if sync_free:
        sorted_logp, order = logp.sort(dim=-1, descending=True)                    # [B, V]
    else:
        sorted_logp, order = _nucleus_prefix(logp, top_p)                          # [B, K<=V]
    probs = sorted_logp.exp()
    keep = (probs.cumsum(-1) - probs) < top_p                                      # first is always kept
    width = keep.shape[-1] if sync_free else int(keep.sum(-1).max())
    cand_logp, cand_ids = sorted_logp[:, :width], order[:, :width]                 # [B, K]
    gumbel = -torch.log(-torch.log(row_noise(keys, step, cand_ids)))
    score = torch.where(keep[:, :width], cand_logp.double() + gumbel, -torch.inf)
    return cand_ids.gather(1, score.argmax(-1, keepdim=True)).squeeze(-1)
