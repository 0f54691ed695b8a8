"""Batches of token-id lists for a decoder: left padding, the padded-length multiple, position ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

ONE_ROW_MULTIPLE = 8
"""The padding multiple of a batch of one (see :func:`pad_multiple_for`): padding buys nothing there but
fewer shapes, and it costs compute. One query at the SmolLM2-135M shape in bf16 on 2 cores (22 tokens):
no thinking in 77 ms padded to 32, 59-62 ms padded to 8, 55 ms unpadded (benchmarks/bench_padding.py,
docs/benchmarks.md); the
multiple 8 still bounds the shapes a batch of one brings to 64 up to 512 tokens."""


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: Any,
             multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad id lists -> ``input_ids`` [B, T] and ``attention_mask`` [B, T].

    ``multiple`` rounds T up to a multiple of it: fewer distinct shapes reach the kernels (see
    :func:`pad_multiple_for`); one sequence alone is rounded to at most :data:`ONE_ROW_MULTIPLE`.
    """
    width = max(len(s) for s in seqs)
    if len(seqs) == 1:
        multiple = min(multiple, ONE_ROW_MULTIPLE)
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
