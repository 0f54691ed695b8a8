"""Repetition control in the decode loop, with the meaning of transformers' ``generate``.

- ``repetition_penalty`` (``RepetitionPenaltyLogitsProcessor``): the logit of every token id present in
  the sequence so far - prompt and thought - is divided by the penalty where it is positive and
  multiplied by it where it is negative (each id once, however often it occurs).
- ``no_repeat_ngram_size`` = n (``NoRepeatNGramLogitsProcessor``): a token that would complete an
  n-gram already present in the sequence - prompt and thought - gets logit ``-inf``.

Both act on the float32 logits of the LM head, penalty first, before temperature and top-p, as
``generate`` orders its processors; with greedy decoding the thoughts are ``generate``'s token for
token (tests/test_think_control.py). The history is a tensor aligned with the loop's attention-mask
columns (the left-padded prompt, then one column a step), holding -1 where the mask is 0: padding
and the pads fed to finished rows are not history. ``generate`` passes the count of leading pads to
the penalty (``prompt_ignore_length``), so there it ignores padding too; its n-gram processor does
not, and counts windows over left padding: the two differ only where a row's last n-1 tokens hold
real tokens equal to the pad id (an n-gram made of pads and the prompt's first tokens is banned there,
not here).

No value is read back to the host. A step's work, as transformers does it: for the penalty a copy of
the logits (one spare column) and a gather / scatter over the history's [rows, columns]; for the
n-grams comparisons over the [rows, columns, n] windows, a scatter into a [rows, vocab] mask and one
``masked_fill`` of the logits.
"""

from __future__ import annotations

import torch

from .settings import ThinkConfig


def active(cfg: ThinkConfig) -> bool:
    """Whether ``cfg`` asks for any repetition control (off: the loop does none of this work)."""
    return cfg.repetition_penalty != 1.0 or cfg.no_repeat_ngram_size > 0


def history(ids: torch.Tensor, mask: torch.Tensor, extra: int) -> torch.Tensor:
    """The token history [B, T+extra] of a left-padded prompt batch ``ids`` / ``mask`` [B, T]: the
    prompt's ids where the mask is 1, -1 elsewhere and in the ``extra`` columns the steps fill."""
    known = torch.where(mask.bool(), ids, -1)
    return torch.cat([known, known.new_full((known.shape[0], extra), -1)], dim=1)


def _penalize(logits: torch.Tensor, history: torch.Tensor, penalty: float) -> torch.Tensor:
    """transformers' own steps: gather the logits of the ids in ``history``, penalise, scatter them back;
    -1 (padding) and ids past the head's vocabulary go to a spare last column, dropped after."""
    vocab = logits.shape[-1]
    index = torch.where(history >= 0, history, vocab).clamp(max=vocab)
    padded = torch.nn.functional.pad(logits, (0, 1))
    score = padded.gather(1, index)
    score = torch.where(score < 0, score * penalty, score / penalty)
    return padded.scatter_(1, index, score)[:, :vocab]


def _ban_ngrams(logits: torch.Tensor, history: torch.Tensor, size: int) -> torch.Tensor:
    """``-inf`` for each token that, after the last ``size - 1`` tokens, would repeat an n-gram of ``history``."""
    width = history.shape[1]
    if width < size:   # no complete n-gram yet
        return logits
    prefix = history[:, width + 1 - size:]                                         # [rows, n-1]
    windows = history.unfold(1, size, 1)                                           # [rows, W, n]
    matches = (windows[..., :-1] == prefix[:, None]).all(-1) & (windows >= 0).all(-1)
    vocab = logits.shape[-1]
    banned = torch.zeros(logits.shape[0], vocab + 1, dtype=torch.bool, device=logits.device)
    banned.scatter_(1, torch.where(matches, windows[..., -1].clamp(max=vocab), vocab), True)
    return logits.masked_fill(banned[:, :vocab], -float("inf"))


def control(logits: torch.Tensor, history: torch.Tensor, cfg: ThinkConfig) -> torch.Tensor:
    """``logits`` [rows, V] after the repetition penalty, then the n-gram ban, given ``history``
    [rows, columns so far] (-1: no token)."""
    if cfg.repetition_penalty != 1.0:
        logits = _penalize(logits, history, float(cfg.repetition_penalty))
    if cfg.no_repeat_ngram_size > 0:
        logits = _ban_ngrams(logits, history, cfg.no_repeat_ngram_size)
    return logits
