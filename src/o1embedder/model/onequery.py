"""One query thinking in bf16 on a CPU (the latency case: one row, or its k <= :data:`MAX_ROWS` samples): a
decode step as close to weight streaming as PyTorch gets, eager (``decode="fast"``) or under
``torch.compile`` (``decode="compiled"``).

At one row a decode step is a chain of matrix-vector products (at a few rows, nearly so), and on a CPU
it should cost about the time to stream the weights once. Profiled at the SmolLM2-135M shape (docs/benchmarks.md, "One row"), two
things stood between :class:`~.fastdecode.StaticDecoder` and that floor:

- torch's bf16 matrix-vector product streams weights at about half the speed of its float16 one here.
  :class:`OneQueryStep` keeps float16 copies of the bf16 weights (every bf16 weight is exact in float16)
  and rounds each product back to bf16, so only the fp32 sums' order differs from the bf16 products.
- Per-operator dispatch: seven products, their casts and a dozen small operators per layer. The copies
  are fused (queries, keys and values in one matrix; gate and up in another: 4 products per layer
  instead of 7), and ``compiled`` hands the whole step to inductor, which fuses the small operators.

The cache is static with a fixed capacity (a power of two, at least :data:`MIN_CAPACITY` columns), zeroed,
and the attention reads all of it through a mask of the valid columns (the prompt's padding and the
unwritten columns masked), so a step's shapes never change:
under ``torch.compile`` it compiles once per process, model, row count and capacity (20-40 s at the SmolLM2
shape on 2 cores; inductor's on-disk cache shortens it in later processes), then never again.

Copies and compiled step are kept on the decoder and rebuilt when a weight changes. They cost as much
memory as the bf16 weights. They apply to decoders laid out as Llama's (:mod:`.fastdecode`) whose
projections are plain ``nn.Linear`` (an unmerged LoRA adapter is not: those models keep the
StaticDecoder's own steps), in bf16 on a CPU, with every weight within float16's range.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch
from torch.nn import functional

log = logging.getLogger(__name__)

HALF_MAX = 65504.0
"""The largest float16: a model with a larger weight gets no float16 copies."""
MAX_ROWS = 4
"""The most rows (one query's samples) that take this step; more rows are compute, not weight streaming."""
MIN_CAPACITY = 256
"""The smallest static capacity on the one-query path (prompt + thought + 2 columns, rounded up to a power
of two): a query of up to about 190 tokens with a 64-token thought fits it, so one compilation serves
most workloads; the attention over the unused columns costs little beside the weights."""


RECOMPILE_LIMIT = 64
"""Graphs torch.compile may keep for the step's code: one per row count (1-4), capacity and model instance
(a step is made again when weights change), so dynamo's default of 8 would soon send a long-lived process
back to eager steps without a word."""


def _allow_graphs(limit: int) -> None:
    import torch._dynamo.config as dynamo

    for name in ("recompile_limit", "cache_size_limit"):   # the second is the older name
        if getattr(dynamo, name, limit) < limit:
            setattr(dynamo, name, limit)


def capacity_for(columns: int) -> int:
    """The static capacity for ``columns`` cache columns (a power of two, at least :data:`MIN_CAPACITY`)."""
    return max(MIN_CAPACITY, 1 << max(columns - 1, 0).bit_length())


def _plain(*modules: Any) -> bool:
    return all(type(m) is torch.nn.Linear for m in modules)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _cat_bias(*modules: Any) -> torch.Tensor | None:
    if all(m.bias is None for m in modules):
        return None
    return torch.cat([m.bias.detach() if m.bias is not None else m.weight.new_zeros(m.out_features)
                      for m in modules]).half()


class OneQueryStep:
    """Fused float16 weight copies of a bf16 decoder and its one-query step (see the module docstring).

    Get one through :meth:`for_decoder` (``None`` where it does not apply); call it with the step's tokens,
    positions, cache column, the static cache's per-layer keys and values (``[B, kv_heads, capacity,
    head_dim]``, written in place at ``col``) and the valid columns; it returns the final hidden states
    ``[B, H]``.
    """

    def __init__(self, decoder: Any, head: Any) -> None:
        self.decoder = decoder
        config = decoder.config
        attn = decoder.layers[0].self_attn
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = attn.q_proj.out_features // self.heads
        self.scaling = getattr(attn, "scaling", self.head_dim ** -0.5)
        self.layers: list[tuple[torch.Tensor, ...]] = []
        self.biases: list[tuple[torch.Tensor | None, ...]] = []
        for layer in decoder.layers:
            a, m = layer.self_attn, layer.mlp
            self.layers.append((torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).detach().half(),
                                a.o_proj.weight.detach().half(),
                                torch.cat([m.gate_proj.weight, m.up_proj.weight]).detach().half(),
                                m.down_proj.weight.detach().half()))
            self.biases.append((_cat_bias(a.q_proj, a.k_proj, a.v_proj), _cat_bias(a.o_proj),
                                _cat_bias(m.gate_proj, m.up_proj), _cat_bias(m.down_proj)))
        self.head = head.weight.detach().half()
        self.head_bias = _cat_bias(head)
        self._rotary: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._compiled: Any = None
        self.compile_failed: str | None = None
        """Why ``torch.compile`` could not build the step (it then runs eagerly), or ``None``."""

    @staticmethod
    def _signature(decoder: Any, head: Any) -> tuple[Any, ...]:
        return tuple((id(p), p.data_ptr(), p._version) for p in (*decoder.parameters(), head.weight))

    @classmethod
    def for_decoder(cls, decoder: Any, head: Any) -> OneQueryStep | None:
        """The decoder's one-query step, made on first use and again when a weight has changed since (training,
        a merge); ``None`` where it does not apply (see the module docstring)."""
        signature = cls._signature(decoder, head)
        kept = getattr(decoder, "_o1_onequery", None)
        if kept is not None and kept[0] == signature:
            return kept[1]
        made = cls(decoder, head) if cls._applies(decoder, head) else None
        decoder._o1_onequery = (signature, made)
        return made

    @staticmethod
    def _applies(decoder: Any, head: Any) -> bool:
        weight = getattr(head, "weight", None)
        if weight is None or weight.dtype != torch.bfloat16 or weight.device.type != "cpu" or not _plain(head):
            return False
        for layer in decoder.layers:
            a, m = layer.self_attn, layer.mlp
            mlp = [getattr(m, n, None) for n in ("gate_proj", "up_proj", "down_proj")]
            if not hasattr(m, "act_fn") or not _plain(a.q_proj, a.k_proj, a.v_proj, a.o_proj, *mlp):
                return False
        linears = [p for p in decoder.parameters() if p.dim() == 2] + [weight]
        return all(p.dtype == torch.bfloat16 and float(p.detach().abs().max()) <= HALF_MAX for p in linears)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head over ``hidden`` [B, H], through its float16 copy, rounded back to bf16."""
        return functional.linear(hidden.half(), self.head, self.head_bias).to(hidden.dtype)

    def rotary(self, capacity: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The rotary embedding's cos and sin [capacity, head_dim] for positions ``0 .. capacity-1``."""
        if capacity not in self._rotary:
            probe = self.head.new_zeros(1, 1, 1, dtype=torch.bfloat16)
            cos, sin = self.decoder.rotary_emb(probe, torch.arange(capacity, device=self.head.device)[None])
            self._rotary[capacity] = (cos[0], sin[0])
        return self._rotary[capacity]

    def __call__(self, ids: torch.Tensor, pos: torch.Tensor, col: int, keys: list[torch.Tensor],
                 values: list[torch.Tensor], valid: torch.Tensor, *, compiled: bool = False) -> torch.Tensor:
        """One step: ``ids`` [B, 1] at positions ``pos`` [B, 1], their keys and values written at cache column
        ``col``; ``valid`` [B, capacity] (bool) marks the columns each row attends to (``col`` included).
        ``compiled``: through ``torch.compile``."""
        cos, sin = self.rotary(keys[0].shape[2])
        column = torch.tensor([col], device=ids.device)
        if compiled and self.compile_failed is None:
            if self._compiled is None:
                log.info("compiling the one-query decode step (once per process, model and cache size)")
                warnings.filterwarnings("ignore", message="bf16 and fp16 are mixed")   # inductor's, by design here
                _allow_graphs(RECOMPILE_LIMIT)
                self._compiled = torch.compile(self._step, dynamic=False, fullgraph=True)
            try:
                return self._compiled(ids, pos, column, keys, values, valid, cos, sin)
            except Exception as error:  # noqa: BLE001 - any compiler failure: run eagerly, say why once
                self.compile_failed = f"{type(error).__name__}: {error}".splitlines()[0]
                log.warning("torch.compile could not build the one-query decode step (%s); it runs eagerly",
                            self.compile_failed)
        return self._step(ids, pos, column, keys, values, valid, cos, sin)

    def _step(self, ids: torch.Tensor, pos: torch.Tensor, column: torch.Tensor, keys: list[torch.Tensor],
              values: list[torch.Tensor], valid: torch.Tensor, cos_table: torch.Tensor,
              sin_table: torch.Tensor) -> torch.Tensor:
        dec = self.decoder
        heads, kv, dim = self.heads, self.kv_heads, self.head_dim
        x = dec.embed_tokens(ids)                                                   # [B, 1, H]
        bf = x.dtype
        rows = ids.shape[0]
        cos, sin = cos_table[pos[:, 0]][:, None, None], sin_table[pos[:, 0]][:, None, None]   # [B, 1, 1, d]
        mask = valid[:, None, None]                                                 # [B, 1, 1, capacity]
        for i, layer in enumerate(dec.layers):
            attn = layer.self_attn
            qkv_w, o_w, gu_w, down_w = self.layers[i]
            qkv_b, o_b, gu_b, down_b = self.biases[i]
            qkv = functional.linear(layer.input_layernorm(x).half(), qkv_w, qkv_b).to(bf)
            q, k, v = qkv.view(rows, 1, heads + 2 * kv, dim).split([heads, kv, kv], dim=2)
            if hasattr(attn, "q_norm"):  # qwen3
                q, k = attn.q_norm(q), attn.k_norm(k)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            keys[i].index_copy_(2, column, k)
            values[i].index_copy_(2, column, v)
            packed = q.reshape(rows, kv, heads // kv, dim)        # the query heads packed per key/value head
            out = functional.scaled_dot_product_attention(packed, keys[i], values[i], attn_mask=mask,
                                                          scale=self.scaling)
            x = x + functional.linear(out.reshape(rows, 1, heads * dim).half(), o_w, o_b).to(bf)
            gate, up = functional.linear(layer.post_attention_layernorm(x).half(), gu_w, gu_b).to(bf).chunk(2, dim=-1)
            x = x + functional.linear((layer.mlp.act_fn(gate) * up).half(), down_w, down_b).to(bf)
        return dec.norm(x[:, -1])
