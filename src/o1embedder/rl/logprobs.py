"""The thought tokens' log-probabilities a chunk of tokens at a time: never ``[M, V]`` logits at once.

RL needs ``log softmax(lm_head(h_k) / T)[y_k]`` for each of the M = B*G*T thought tokens of a step, under
the policy (with gradient) and under the reference (without). At once that is an ``[M, V]`` float32
matrix per pass: about 10 GB at B 16, G 8, T 128 and a 152k vocabulary (Qwen2.5), and under autograd
the policy's log-softmax (and its gradient, of the same size) is held for the backward too. Here the LM
head and the log-softmax see ``chunk`` tokens at a time:

- without gradient (the reference): a plain loop; one chunk's logits exist at a time.
- with gradient (the policy): chunking the forward alone would not help, as autograd keeps every
  chunk's log-softmax for the backward. Each chunk runs under ``torch.utils.checkpoint``
  (non-reentrant): the forward keeps only the chunk's hidden states ``[chunk, H]`` and its labels, and
  the backward recomputes the chunk's logits when its gradient arrives, so one chunk's ``[chunk, V]``
  tensors exist at a time in the forward and in the backward (the chunks' graphs are independent and
  the autograd engine finishes the most recent one before starting the next). Cost: the head and the
  log-softmax run twice in the forward direction (forward, recomputation); the head's matmuls go from
  three to four with full fine-tuning (two to three under LoRA, whose head weight is frozen). Under
  LoRA, peft's wrapped head also assembles its ``[V, H]`` weight at every call, so per chunk.
  The alternative, a custom ``autograd.Function`` that recomputes ``h W^T`` in its backward, needs the
  head as a weight tensor; under LoRA peft wraps the (tied) head in a module that assembles its weight
  from the frozen matrix and the trainable special-token rows in its forward. Checkpointing a call of
  the head module takes any head as it is, and the recomputation re-enters the forward's autocast
  state, so bf16 autocast runs as before.

The per-chunk maths is :func:`o1embedder.rl.objective.token_logprobs` (float32 log-softmax of
``logits / T``), unchanged; the chunked result equals the unchunked one up to the float rounding of a
matmul over fewer rows (tested to 1e-6 in float32, values and gradients).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.checkpoint import checkpoint

from . import objective

CHUNK_BYTES = 64 * 2**20
"""Float32 logits per chunk by default (64 MiB): 110 tokens at a 152k vocabulary (Qwen2.5), 341 at 49k
(SmolLM2), all of a step's thought tokens at the demo's 1.2k. A budget in bytes rather than a token
count, so that the cost is the same whatever the vocabulary (512 tokens would be 0.3 GB of logits at
152k, 1 GB with the chunk's other temporaries). A chunk's peak is about three times the budget (logits,
log-softmax, a gradient), 0.2 GB: small beside any real model's weights. Not smaller: a chunk's matmul
``[110, H] x [H, 152k]`` and log-softmax (17M elements) should already fill a GPU (an estimate: not
measured, no GPU here), while smaller chunks add launches (a dozen kernels per chunk) and, under LoRA,
peft's per-call assembly of the head's ``[V, H]`` weight; and on CPU, blocks above glibc's largest mmap
threshold (32 MiB) go back to the system when freed, smaller ones stay in the heap: 16-token chunks
(10 MB of logits) peaked at 1.7 GB of resident set where 110-token chunks peaked at 0.44 GB (LoRA, M
1,024; benchmarks/bench_rl_memory.py with ``--chunk 16``)."""


def default_chunk(vocab_size: int) -> int:
    """Tokens per chunk whose float32 logits fit :data:`CHUNK_BYTES` (at least 1)."""
    return max(1, CHUNK_BYTES // (4 * vocab_size))


def chunk_size(lm_head: Callable[[torch.Tensor], torch.Tensor], chunk: int = 0) -> int:
    """``chunk`` if set (> 0), else :func:`default_chunk` of the head's vocabulary: the widest
    ``nn.Linear`` in the head module (itself, or the base layer peft wraps; peft's ``.weight`` of a
    wrapped head would assemble a ``[V, H]`` copy just to be measured)."""
    if chunk > 0:
        return chunk
    modules = lm_head.modules() if isinstance(lm_head, torch.nn.Module) else ()
    widths = [m.out_features for m in modules if isinstance(m, torch.nn.Linear)]
    if not widths:
        raise ValueError("an LM head without an nn.Linear inside needs an explicit chunk size")
    return default_chunk(max(widths))


def thought_logprobs(hidden: torch.Tensor, labels: torch.Tensor, lm_head: Callable[[torch.Tensor], torch.Tensor],
                     temperature: float = 1.0, chunk: int = 0) -> torch.Tensor:
    """``log softmax(lm_head(h_k) / T)[y_k]`` per token, ``chunk`` tokens at a time: [M, H], [M] -> [M] float32.

    ``hidden``: the final hidden states that predict the tokens (already selected); ``labels``: the
    tokens; ``T``: the rollouts' sampling temperature; ``chunk`` 0: :func:`default_chunk`. With gradient
    enabled every chunk is recomputed in the backward (see the module doc); without, a plain loop.
    """
    size = chunk_size(lm_head, chunk)
    if labels.numel() <= size:                 # one chunk: the plain computation, nothing to recompute
        return objective.token_logprobs(lm_head(hidden), labels, temperature)

    def piece(h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return objective.token_logprobs(lm_head(h), y, temperature)                   # [chunk, V] -> [chunk]

    if torch.is_grad_enabled():
        parts = [checkpoint(piece, h, y, use_reentrant=False)
                 for h, y in zip(hidden.split(size), labels.split(size), strict=True)]
    else:
        parts = [piece(h, y) for h, y in zip(hidden.split(size), labels.split(size), strict=True)]
    # split (not slicing): its backward is one concatenation of the chunks' [chunk, H] gradients, where
    # slices would each scatter into a zero [M, H] gradient
    return torch.cat(parts)                                                            # [M]
