"""Thinking and embedding on the same KV cache.

The reference code generates a thought, decodes it to text, re-tokenises prompt + thought and runs
the model a second time to read the hidden state at ``<emb>``. Here generation keeps its KV cache and,
once a row has produced EOS (or run out of budget, in which case EOS is appended), ``<emb>`` is fed
as one more step at the right position: the vector is the same as re-encoding (to float tolerance)
and the query side is not paid for twice.

Padding: prompts are left-padded. A row that has finished keeps receiving pad tokens while others
generate; those slots get attention-mask 0 and do not advance the row's position ids, so the row's
real tokens see exactly the context of an unpadded ``prompt + thought + EOS + <emb>`` sequence.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .fastdecode import StaticDecoder, unsupported_reason
from .settings import ThinkConfig

DECODE_MODES = ("auto", "static", "fast", "generic")


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: Any,
             multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad id lists -> ``input_ids`` [B, T] and ``attention_mask`` [B, T].

    ``multiple`` rounds T up to a multiple of it: fewer distinct shapes reach the kernels (see
    :func:`pad_multiple_for`).
    """
    width = max(len(s) for s in seqs)
    width = -(-width // multiple) * multiple if multiple > 1 else width
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        if seq:
            ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq):] = 1
    return ids.to(device), mask.to(device)


def pad_multiple_for(device: torch.device, dtype: torch.dtype) -> int:
    """The padding multiple for inference batches: 32 for bfloat16 / float16 on CPU, else 1.

    On CPU, PyTorch runs low-precision matmuls through oneDNN, which builds and keeps a kernel for
    every new matrix shape. A long-lived process that embeds texts of every length (a server, an
    app) then grows without bound: 16 clients sending texts of random length grew a bfloat16
    server by 321 MiB in 30 s. Rounding the padded length up to a multiple of 32 leaves a few
    shapes per batch size, and memory levels off after warm-up. Pads are masked, so vectors do not
    change beyond rounding.
    """
    low_precision = dtype in (torch.bfloat16, torch.float16)
    return 32 if device.type == "cpu" and low_precision else 1


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that count only real tokens (pads get 0): [B, T] -> [B, T]."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


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
                step: int) -> torch.Tensor:
    """One token per row from ``logits`` [B, V] -> [B]; temperature 0 is greedy.

    Nucleus (top-p) sampling through the Gumbel-max trick: among the smallest set of most probable
    tokens whose mass reaches ``top_p``, pick argmax(log p - log(-log u)), u from :func:`row_noise`.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    sorted_logp, order = _nucleus_prefix(logp, top_p)                              # [B, K<=V]
    probs = sorted_logp.exp()
    keep = (probs.cumsum(-1) - probs) < top_p                                      # first is always kept
    width = int(keep.sum(-1).max())
    cand_logp, cand_ids = sorted_logp[:, :width], order[:, :width]                 # [B, K]
    gumbel = -torch.log(-torch.log(row_noise(keys, step, cand_ids)))
    score = torch.where(keep[:, :width], cand_logp.double() + gumbel, -torch.inf)
    return cand_ids.gather(1, score.argmax(-1, keepdim=True)).squeeze(-1)


try:  # transformers >= 4.56 keeps a cache as a list of layers; older versions: no preallocation
    from transformers.cache_utils import DynamicLayer
except ImportError:  # pragma: no cover
    DynamicLayer = None


if DynamicLayer is not None:
    class _GrowingLayer(DynamicLayer):
        """A ``DynamicLayer`` whose keys/values are views of a preallocated buffer, written in place."""

        def reserve(self, extra: int) -> None:
            b, h, t, d = self.keys.shape
            self._k = self.keys.new_empty((b, h, t + extra, d))
            self._v = self.values.new_empty((b, h, t + extra, d))
            self._k[:, :, :t], self._v[:, :, :t] = self.keys, self.values
            self._len = t
            self.keys, self.values = self._k[:, :, :t], self._v[:, :, :t]

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
                   **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            start, stop = self._len, self._len + key_states.shape[-2]
            if stop > self._k.shape[-2]:
                self.reserve(max(stop - start, self._k.shape[-2]))
            self._k[:, :, start:stop], self._v[:, :, start:stop] = key_states, value_states
            self._len = stop
            self.keys, self.values = self._k[:, :, :stop], self._v[:, :, :stop]
            return self.keys, self.values


def _initialized(layer: Any) -> bool:
    """Whether a cache layer holds keys yet (``is_initialized`` from transformers 4.57; before it,
    an empty layer's keys are ``None``)."""
    found = getattr(layer, "is_initialized", None)
    return bool(found) if found is not None else getattr(layer, "keys", None) is not None


def preallocate(cache: Any, extra: int) -> Any:
    """Give each layer of a ``DynamicCache`` room for ``extra`` more positions.

    A ``DynamicCache`` grows by ``torch.cat`` at every step, copying the whole cache each time (about
    a tenth of a decode step on CPU at hidden 512); a preallocated buffer is written in place instead.
    Caches of any other layout (sliding windows, quantised, ...) are returned unchanged.
    """
    layers = getattr(cache, "layers", None)
    if DynamicLayer is None or not layers:
        return cache
    if any(type(layer) is not DynamicLayer or not _initialized(layer) for layer in layers):
        return cache
    for layer in layers:
        layer.__class__ = _GrowingLayer
        layer.reserve(extra)
    return cache


@dataclass
class ThinkResult:
    """Per sampled row (query-major: query i's samples are rows i*n .. i*n+n-1)."""

    thought_ids: list[list[int]]
    """Generated thought ids, EOS excluded."""
    hit_budget: list[bool]
    """True where the budget ran out and EOS was appended."""
    vectors: torch.Tensor | None
    """[B*n, H] hidden states at ``<emb>`` (not normalised); ``None`` when not asked for."""


class Thinker:
    """Runs the generation loop for a decoder + LM head and the special ids of a template."""

    def __init__(self, decoder: Any, lm_head: Any, *, eos_id: int, emb_id: int, pad_id: int,
                 pad_multiple: int = 1, decode: str = "auto") -> None:
        """``decode``: ``"static"`` steps through :class:`~.fastdecode.StaticDecoder` (a static KV cache,
        the layers called directly; an error for a decoder it does not support), ``"fast"`` the same with
        the faster attention kernel (``exact=False``: rounding differs from the generic path's),
        ``"generic"`` through the decoder's own forward and a transformers cache, ``"auto"`` (default)
        static where supported."""
        self.decoder, self.lm_head = decoder, lm_head
        self.eos_id, self.emb_id, self.pad_id = eos_id, emb_id, pad_id
        self.pad_multiple = pad_multiple
        if decode not in DECODE_MODES:
            raise ValueError(f"decode must be one of {', '.join(DECODE_MODES)}, got {decode!r}")
        reason = unsupported_reason(decoder) if decode != "generic" else "generic asked"
        if decode in ("static", "fast") and reason:
            raise ValueError(f"static decoding is not supported for this decoder: {reason}")
        self.static = reason is None
        self.exact = decode != "fast"
        # transformers 5.x renamed ``past_key_values`` to ``cache`` (the old name still works, with a warning)
        self._cache_arg = "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"

    def _step(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: Any) -> tuple[Any, torch.Tensor]:
        """One decoder call -> (the cache, the last position's hidden state [B, H])."""
        if isinstance(cache, StaticDecoder):
            return cache, cache.step(ids, mask, pos)
        out = self.decoder(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                           **{self._cache_arg: cache})
        return getattr(out, self._cache_arg), out.last_hidden_state[:, -1]

    @torch.inference_mode()
    def run(self, prompts: Sequence[Sequence[int]], budgets: Sequence[int], cfg: ThinkConfig,
            keys: torch.Tensor, *, embed: bool = True) -> ThinkResult:
        """Think ``cfg.n_thoughts`` times per prompt; ``budgets[i]`` caps prompt i's thought length.

        ``keys`` [B*n] are the per-sample random keys (see :func:`row_noise`).
        """
        device = next(self.decoder.parameters()).device
        n = cfg.n_thoughts
        ids, mask = left_pad(prompts, self.pad_id, device, self.pad_multiple)
        cache, hidden = self._step(ids, mask, positions_from_mask(mask), None)       # hidden [B, H]
        extra = max(budgets, default=0) + 2
        if self.static:  # the prefill's cache copied (n times per query) into a static one
            cache = StaticDecoder.from_cache(self.decoder, cache, repeat=n, extra=extra, exact=self.exact)
        elif n > 1:  # prefill once per query, then copy the cache for each sample
            cache.batch_repeat_interleave(n)
        if n > 1:
            hidden, mask = hidden.repeat_interleave(n, 0), mask.repeat_interleave(n, 0)
        if not self.static:
            cache = preallocate(cache, extra)
        rows = hidden.shape[0]
        keys = keys.to(device)
        budget = torch.tensor(budgets, device=device).repeat_interleave(n)         # [B*n]
        next_pos = mask.sum(-1)                                                    # [B*n]
        count = torch.zeros(rows, dtype=torch.long, device=device)
        done = budget <= 0
        saw_eos = torch.zeros(rows, dtype=torch.bool, device=device)
        steps: list[torch.Tensor] = []
        while not bool(done.all()):
            logits = self.lm_head(hidden).float()                                  # [B*n, V]
            token = sample_next(logits, cfg.temperature, cfg.top_p, keys, len(steps))
            token = torch.where(done, torch.full_like(token, self.pad_id), token)
            live = ~done
            steps.append(torch.where(live & (token != self.eos_id), token, -1))
            mask = torch.cat([mask, live.long()[:, None]], dim=1)
            cache, hidden = self._step(token[:, None], mask, next_pos[:, None], cache)
            is_eos = live & (token == self.eos_id)
            next_pos, count = next_pos + live.long(), count + (live & ~is_eos).long()
            saw_eos = saw_eos | is_eos
            done = done | is_eos | (count >= budget)
        table = torch.stack(steps, dim=1).tolist() if steps else [[] for _ in range(rows)]  # [B*n, S]
        thought_ids = [[t for t in row if t >= 0] for row in table]
        vectors = self._feed_emb(mask, next_pos, ~saw_eos, cache) if embed else None
        return ThinkResult(thought_ids, (~saw_eos).tolist(), vectors)

    def _feed_emb(self, mask: torch.Tensor, next_pos: torch.Tensor, need_eos: torch.Tensor,
                  cache: Any) -> torch.Tensor:
        """Feed ``[EOS if the budget ran out else pad(masked), <emb>]``; return the state at ``<emb>``."""
        rows = mask.shape[0]
        first = torch.where(need_eos, self.eos_id, self.pad_id)
        ids = torch.stack([first, torch.full_like(first, self.emb_id)], dim=1)       # [B*n, 2]
        step_mask = torch.stack([need_eos.long(), torch.ones(rows, dtype=torch.long,
                                                             device=mask.device)], dim=1)
        pos = torch.stack([next_pos, next_pos + need_eos.long()], dim=1)
        return self._step(ids, torch.cat([mask, step_mask], dim=1), pos, cache)[1]
