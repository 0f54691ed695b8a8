"""A decode step near the hardware's floor for Llama-family decoders: a static KV cache and the layers
called directly, without the per-step machinery of a Hugging Face forward.

Profiled at the SmolLM2-135M shape (docs/benchmarks.md, "Decode loop"), a `model(...)` decode step
spends much of its time outside the weight matrix products: building the 4-D attention mask from the
2-D one, the cache object's bookkeeping, keyword plumbing, output containers and decorators, for each
of 30 layers. :class:`StaticDecoder` keeps what the arithmetic needs:

- the keys and values of every layer in one preallocated tensor per layer, ``[B, kv_heads, capacity,
  head_dim]``, filled from the prefill's cache once and written in place at each step;
- the model's own modules for every operation that carries weights or numerics (embedding, RMSNorm,
  projections, MLP, rotary embedding, final norm), so the arithmetic is the model's;
- attention through ``scaled_dot_product_attention`` on the valid prefix of the cache, called as
  transformers calls it (``enable_gqa`` without a mask, the query heads packed per key/value head with
  one), so the kernel and its rounding are the generic path's.

Greedy thoughts and vectors equal the generic path's (tests/test_fastdecode.py). ``exact=False``
(``O1Embedder.decode = "fast"``) packs the query heads for every one-token step: at the SmolLM2 shape
in bf16 on CPU the same flash kernel then takes about 2.6x less time than with ``enable_gqa``, but it
blocks the sums differently, so vectors differ from the generic path's by rounding (cosine ~0.9997 at
random weights, where near-flat logits can flip a greedy token; docs/benchmarks.md, "Decode loop"). On a CPU,
``fast`` also runs a bf16 model's steps for one query (k <= 4 samples: the latency case) through
:class:`~.onequery.OneQueryStep` (fused float16 weight copies; ``decode="compiled"``: the same step under
``torch.compile``). Supported: decoders
laid out as Llama's (``llama``, ``mistral`` without a sliding window shorter than the sequence, ``qwen2``,
``qwen3``); anything else uses the generic path. An unmerged PEFT adapter works: its LoRA layers are
the projections' own ``forward``.

A step reads nothing back from the device: whether the attention mask can be dropped (every column
valid) is the caller's to say (``step(..., all_valid=...)``; the decode loop knows it from the prompt
padding and from its own reads of the done flags, see ``thinking.CHECK_EVERY``), so on a GPU the host
can queue step after step without waiting.
"""

from __future__ import annotations

from typing import Any

import torch

from .onequery import OneQueryStep, _rotate_half

SUPPORTED_TYPES = ("llama", "mistral", "qwen2", "qwen3")
_HAS_GQA = "enable_gqa" in (torch.nn.functional.scaled_dot_product_attention.__doc__ or "")


def unsupported_reason(decoder: Any) -> str | None:
    """Why ``decoder`` cannot use :class:`StaticDecoder` (``None`` when it can)."""
    config = getattr(decoder, "config", None)
    kind = getattr(config, "model_type", None)
    if kind not in SUPPORTED_TYPES:
        return f"model type {kind!r} is not one of {', '.join(SUPPORTED_TYPES)}"
    if getattr(config, "_attn_implementation", "sdpa") not in ("sdpa", "eager", None):
        return f"attention implementation {config._attn_implementation!r}"
    if getattr(config, "use_sliding_window", False) or (kind == "mistral" and getattr(config, "sliding_window", None)):
        return "sliding-window attention"
    types = set(getattr(config, "layer_types", None) or ["full_attention"])
    if types != {"full_attention"}:
        return f"layer types {sorted(types)}"
    if getattr(config, "rope_scaling", None) and (config.rope_scaling or {}).get("rope_type") == "longrope":
        return "longrope scaling"
    layers = getattr(decoder, "layers", None)
    if not layers or not all(hasattr(getattr(layer, "self_attn", None), name) for layer in layers
                             for name in ("q_proj", "k_proj", "v_proj", "o_proj")):
        return "its layers are not laid out as Llama's (self_attn.q/k/v/o_proj)"
    for name in ("embed_tokens", "norm", "rotary_emb"):
        if not hasattr(decoder, name):
            return f"the decoder has no {name}"
    return None


def _layer_kv(cache: Any, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer ``i``'s keys and values [B, kv_heads, L, head_dim] from a transformers cache (any version)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return layers[i].keys, layers[i].values
    return cache.key_cache[i], cache.value_cache[i]  # pragma: no cover - transformers < 4.56


class StaticDecoder:
    """Decode steps over a preallocated cache (see the module docstring).

    ``from_cache`` copies the prefill's keys and values (``length`` columns, each row repeated ``n``
    times); :meth:`step` then feeds ``T`` new tokens per row at columns ``length .. length+T-1``.
    """

    def __init__(self, decoder: Any, keys: list[torch.Tensor], values: list[torch.Tensor], length: int,
                 *, exact: bool = True) -> None:
        self.decoder = decoder
        self.exact = exact
        self.keys, self.values, self.length = keys, values, length
        attn = decoder.layers[0].self_attn
        config = decoder.config
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.groups = self.heads // self.kv_heads
        self.head_dim = keys[0].shape[-1]
        self.scaling = getattr(attn, "scaling", self.head_dim ** -0.5)
        self.onequery: OneQueryStep | None = None
        """For one query (``exact=False`` in bf16 on a CPU): its steps and LM head run through
        :class:`~.onequery.OneQueryStep` (fused float16 weight copies); the cache must then be zeroed."""
        self.compiled = False
        """Whether :attr:`onequery` steps run under ``torch.compile``."""
        self._valid: torch.Tensor | None = None   # the one-query step's mask over the whole capacity

    def logits(self, head: Any, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head over ``hidden`` [B, H] (with :attr:`onequery`, through its float16 copy)."""
        if self.onequery is not None:
            return self.onequery.logits(hidden)
        return head(hidden)

    @classmethod
    def from_cache(cls, decoder: Any, cache: Any, *, repeat: int, extra: int, exact: bool = True,
                   capacity: int | None = None) -> StaticDecoder:
        """A static cache holding ``cache`` (rows repeated ``repeat`` times) with room for ``extra`` columns.

        ``exact``: attention called as transformers calls it (the generic path's rounding, so greedy
        thoughts are the same); ``False``: one-token steps always pack the query heads per key/value
        head, faster here, with slightly different rounding. ``capacity``: allocate at least this many
        columns, zeroed (the one-query step attends over all of them, the unwritten ones masked).
        """
        keys, values = [], []
        length = 0
        for i in range(len(decoder.layers)):
            k, v = _layer_kv(cache, i)
            batch, kv_heads, length, head_dim = k.shape
            shape = (batch * repeat, kv_heads, max(length + extra, capacity or 0), head_dim)
            kb, vb = (k.new_zeros(shape), v.new_zeros(shape)) if capacity else (k.new_empty(shape), v.new_empty(shape))
            kb[:, :, :length] = k.repeat_interleave(repeat, 0) if repeat > 1 else k
            vb[:, :, :length] = v.repeat_interleave(repeat, 0) if repeat > 1 else v
            keys.append(kb)
            values.append(vb)
        return cls(decoder, keys, values, length, exact=exact)

    def _attend(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        """q [B, heads, T, d], keys/values [B, kv_heads, L, d], mask [B, 1, T, L] (True: attend) -> [B, T, heads*d]."""
        batch, _, width, dim = q.shape
        if self.exact and mask is None and self.groups > 1 and _HAS_GQA:  # as transformers does without a mask
            out = torch.nn.functional.scaled_dot_product_attention(q, keys, values, scale=self.scaling,
                                                                   enable_gqa=True)
            return out.transpose(1, 2).reshape(batch, width, self.heads * dim)
        if width == 1 and self.groups > 1:  # query heads packed per key/value head: no key/value copies
            packed = q.reshape(batch, self.kv_heads, self.groups, dim)
            out = torch.nn.functional.scaled_dot_product_attention(packed, keys, values, attn_mask=mask,
                                                                   scale=self.scaling)
            return out.reshape(batch, 1, self.heads * dim)
        if self.groups > 1:
            keys = keys.repeat_interleave(self.groups, 1)
            values = values.repeat_interleave(self.groups, 1)
        out = torch.nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=self.scaling)
        return out.transpose(1, 2).reshape(batch, width, self.heads * dim)

    def truncate(self, length: int) -> None:
        """Forget the columns from ``length`` on (the next :meth:`step` writes at ``length``)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate a static cache of {self.length} columns to {length}")
        self.length = length

    def step(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, *,
             all_valid: bool | None = None) -> torch.Tensor:
        """Feed ``ids`` [B, T] at positions ``pos`` [B, T]; ``mask`` [B, length+T] marks valid columns.

        ``all_valid`` (one-token steps): whether every column of ``mask`` is 1, as the caller knows it
        (then no mask is passed to the attention, as transformers does: the same kernel, the same
        rounding). ``None`` reads it from ``mask``, which waits for the device: the decode loop
        (:class:`~.thinking.Thinker`) always says, so that its steps never wait.

        Returns the last fed position's final hidden state [B, H] (after the final norm).
        """
        dec = self.decoder
        batch, width = ids.shape
        start, end = self.length, self.length + width
        if end > self.keys[0].shape[2]:
            raise RuntimeError(f"static cache full: {end} columns needed, {self.keys[0].shape[2]} allocated")
        valid: torch.Tensor | None = mask[:, None, None, :end].bool()              # [B, 1, 1, L]
        if width == 1 and self.onequery is not None:
            columns = self.keys[0].shape[2]
            if self._valid is None:
                self._valid = torch.zeros(batch, columns, dtype=torch.bool, device=ids.device)
            self._valid.zero_()
            self._valid[:, :end] = valid[:, 0, 0]
            hidden = self.onequery(ids, pos, start, self.keys, self.values, self._valid, compiled=self.compiled)
            self.length = end
            return hidden
        if width == 1:
            if all_valid is None:
                all_valid = bool(valid.all())                                       # a host sync
            if all_valid:
                valid = None   # nothing masked: no mask, as transformers passes then (same kernel, same rounding)
        else:
            causal = torch.ones(width, end, dtype=torch.bool, device=ids.device).tril(start)
            valid = valid & causal[None, None]                                     # [B, 1, T, L]
        x = dec.embed_tokens(ids)
        cos, sin = dec.rotary_emb(x, pos)
        cos, sin = cos[:, None], sin[:, None]                                      # [B, 1, T, d]
        split = (batch, width, -1, self.head_dim)
        for i, layer in enumerate(dec.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            q, k, v = (attn.q_proj(h).view(split), attn.k_proj(h).view(split),
                       attn.v_proj(h).view(split))
            if hasattr(attn, "q_norm"):  # qwen3
                q, k = attn.q_norm(q), attn.k_norm(k)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            self.keys[i][:, :, start:end] = k
            self.values[i][:, :, start:end] = v
            out = self._attend(q, self.keys[i][:, :, :end], self.values[i][:, :, :end], valid)
            x = x + attn.o_proj(out)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        self.length = end
        return dec.norm(x[:, -1])
