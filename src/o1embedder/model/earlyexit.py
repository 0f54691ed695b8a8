"""Early exit on convergence: a thought stops once the query vector it gives has stopped moving.

A thought's query vector is the hidden state at ``<emb>`` after ``[EOS, <emb>]`` is fed behind it. Every
``exit_every`` steps (after step t = exit_every, 2 * exit_every, ...) the decode loop feeds
``[EOS, <emb>]`` to every row on the side - written into the KV cache and cut back at once (a static
cache keeps its valid length, a preallocated transformers cache is truncated) - which gives each row
the vector it would have were its thought cut after its t tokens. A live row stops once the cosine
between its vectors of two consecutive checks is >= 1 - ``exit_eps`` at ``exit_patience`` consecutive
checks: its thought is its first t tokens, its vector that check's side vector (what cutting the
thought there gives: a fresh forward of ``prompt + thought[:t] + EOS + <emb>``). The first check only
records the vector; rows that finish (EOS, budget) are not checked after.

The rule runs on the device: no value is read back to the host (the loop reads its done flags where it
reads them anyway). Cost: one two-token step per ``exit_every`` steps for every row.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .settings import ThinkConfig


class ExitState(NamedTuple):
    """Per-row early-exit state (tensors on the device)."""

    previous: torch.Tensor
    """[rows, H] each row's side vector at the last check (zeros before the first)."""
    streak: torch.Tensor
    """[rows] consecutive checks with cosine >= 1 - eps so far."""
    stopped: torch.Tensor
    """[rows] rows stopped by the rule."""
    final: torch.Tensor
    """[rows, H] a stopped row's vector: the side vector of the check that stopped it."""


def active(cfg: ThinkConfig) -> bool:
    """Whether ``cfg`` asks for early exit (off: the loop runs no side step)."""
    return cfg.exit_eps > 0


def start(hidden: torch.Tensor) -> ExitState:
    """The state before the first check, for the rows of ``hidden`` [rows, H]."""
    rows = hidden.shape[0]
    zeros = torch.zeros_like(hidden)
    return ExitState(zeros, torch.zeros(rows, dtype=torch.long, device=hidden.device),
                     torch.zeros(rows, dtype=torch.bool, device=hidden.device), zeros)


def is_check(step: int, cfg: ThinkConfig) -> bool:
    """Whether the loop checks after ``step`` steps (host-known: live rows have ``step`` tokens)."""
    return step > 0 and step % cfg.exit_every == 0


def update(state: ExitState, side: torch.Tensor, live: torch.Tensor, first: bool,
           cfg: ThinkConfig) -> ExitState:
    """One check: ``side`` [rows, H] the vectors of cutting every thought here, ``live`` [rows] the rows
    still thinking, ``first`` whether this is the first check (no previous vector to compare with)."""
    if first:
        close = torch.zeros_like(live)
    else:
        cosine = torch.nn.functional.cosine_similarity(side.float(), state.previous.float(), dim=-1)
        close = cosine >= 1.0 - cfg.exit_eps
    streak = torch.where(live, torch.where(close, state.streak + 1, 0), state.streak)
    stop = live & (streak >= cfg.exit_patience)
    return ExitState(torch.where(live[:, None], side, state.previous), streak, state.stopped | stop,
                     torch.where(stop[:, None], side, state.final))
