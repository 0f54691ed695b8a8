"""Which rows a step trains on: a seeded permutation per epoch, walked in order, dealt round-robin to
the ranks; and the step's queries with their documents' padded ids."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import torch

from .. import distributed

if TYPE_CHECKING:
    from .parts import RLParts


def step_rows(n_rows: int, step: int, per_step: int, seed: int) -> list[tuple[int, int]]:
    """``(epoch, row index)`` of the rows of ``step``: a seeded permutation per epoch, walked in order."""
    out = []
    for p in range(step * per_step, (step + 1) * per_step):
        epoch, at = divmod(p, n_rows)
        order = list(range(n_rows))
        random.Random(f"{seed}:rl-order:{epoch}").shuffle(order)
        out.append((epoch, order[at]))
    return out


def rank_share(items: list[Any]) -> list[Any]:
    """This rank's slice of a step's rows (all of them in one process)."""
    return items[distributed.rank()::distributed.world_size()]


def step_inputs(parts: RLParts, step: int) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """The step's queries and their documents' padded ids [B*group, T] and mask."""
    from ..model.thinking import left_pad

    queries, docs = [], []
    for epoch, index in rank_share(step_rows(len(parts.rows), step, parts.config.rows_per_step,
                                             parts.config.seed)):
        parts.rows.set_epoch(epoch)
        example = parts.rows[index]
        queries.append(parts.rows.rows[index].query)
        docs.extend(example["doc_ids"])
    d_ids, d_mask = left_pad(docs, parts.o1.tokenizer.pad_token_id, "cpu")
    return queries, d_ids, d_mask
