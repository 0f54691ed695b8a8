"""Training rows -> examples (groups, thought dropout, token ids) -> padded batches with LM targets.

One example is one query sequence ``[bos] <query>q</query><thought>t<eos><emb>`` (or the no-thinking
``... <thought><emb>`` when the thought is dropped or absent) plus a group of ``group_size``
documents ``[bos] title text<emb>``: the positive first, then hard negatives. Ids come from
:class:`~o1embedder.templates.Template`, so training and inference share the sequences and limits.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import InputError
from ..formats import TrainingRow, iter_jsonl, parse_training_row
from ..log import get_logger
from ..model.thinking import left_pad
from ..templates import Template
from .config import DataConfig

logger = get_logger(__name__)


def _check_row(row: TrainingRow, template: Template, cfg: DataConfig, need_scores: bool,
               where: dict[str, Any]) -> None:
    if row.thought is not None:
        try:
            template.check_no_special(row.thought)
        except InputError as exc:
            raise InputError(exc.reason, field="thought", **where) from None
    if cfg.group_size > 1 and cfg.require_hard_negatives and not row.neg:
        raise InputError(f"no hard negatives, but group_size is {cfg.group_size} (set "
                         "require_hard_negatives false to fill groups from other rows' in-batch documents "
                         "only, or group_size 1)", field="neg", **where)
    if need_scores and (row.pos_scores is None or (cfg.group_size > 1 and row.neg_scores is None)):
        missing = "pos_scores" if row.pos_scores is None else "neg_scores"
        raise InputError("distillation is on (loss.distill) but this row has no teacher scores",
                         field=missing, **where)


def load_rows(path: str | os.PathLike[str], template: Template, cfg: DataConfig, *,
              need_scores: bool = False, warn_no_thought: bool = True) -> list[TrainingRow]:
    """Read and validate training rows; every problem is an :class:`InputError` with file:line.

    ``warn_no_thought``: log how many rows lack a thought (they train without thinking); RL, which
    writes its own thoughts, turns it off.
    """
    rows: list[TrainingRow] = []
    for line_no, obj in iter_jsonl(path):
        where = {"path": path, "line": line_no}
        row = parse_training_row(obj, **where)
        _check_row(row, template, cfg, need_scores, where)
        rows.append(row)
    if not rows:
        raise InputError("no training rows (empty file)", path=path)
    short = sum(0 < len(r.neg) < cfg.group_size - 1 for r in rows)
    if short:
        logger.info("%d rows have fewer than %d negatives: sampled with replacement", short, cfg.group_size - 1)
    no_thought = sum(not (r.thought or "").strip() for r in rows)
    if no_thought and warn_no_thought:
        logger.warning("%d of %d rows have no thought: trained without thinking (no LM tokens)",
                       no_thought, len(rows))
    return rows


def thought_of(row: TrainingRow) -> str | None:
    """The thought a row trains on: stripped, ``None`` when absent or blank."""
    return (row.thought or "").strip() or None


def query_example(template: Template, query: str, thought: str | None) -> tuple[list[int], int]:
    """The query sequence and how many of its tokens the LM loss scores (thought tokens + the closing
    EOS; 0 without a thought): the training example's query side, also scored on held-out rows."""
    query_ids, n_thought = template.query_ids(query, thought)
    return query_ids, 0 if thought is None else n_thought + 1


class TrainingSet(torch.utils.data.Dataset):
    """Examples drawn from rows; negatives and thought dropout are re-drawn each epoch.

    The draw for row ``i`` depends only on ``(seed, i, epoch)`` (:class:`~.trainer.EpochDraws` sets the
    epoch at each epoch's start, on every rank), so a run resumed from a checkpoint sees the same examples
    as an unbroken one, and every rank / data-loader worker agrees without sharing a random stream.
    """

    def __init__(self, rows: Sequence[TrainingRow], template: Template, cfg: DataConfig, *,
                 with_scores: bool = False) -> None:
        self.rows, self.template, self.cfg, self.with_scores = list(rows), template, cfg, with_scores
        self.epoch = 0
        self._pool = [p for r in self.rows for p in r.pos]   # random fillers for rows without negatives

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _rng(self, index: int) -> random.Random:
        return random.Random(f"{self.cfg.seed}:{index}:{self.epoch}")

    def _negatives(self, row: TrainingRow, rng: random.Random) -> list[int]:
        """Indices into ``row.neg``: without replacement when enough exist, else with replacement."""
        k = self.cfg.group_size - 1
        if k == 0 or not row.neg:
            return []
        if len(row.neg) >= k:
            return rng.sample(range(len(row.neg)), k)
        return [rng.randrange(len(row.neg)) for _ in range(k)]

    def __getitem__(self, index: int) -> dict[str, Any]:
        row, rng = self.rows[index], self._rng(index)
        thought = thought_of(row)
        if thought is not None and rng.random() < self.cfg.thought_dropout:
            thought = None
        query_ids, n_lm = query_example(self.template, row.query, thought)
        pos = rng.randrange(len(row.pos))
        negs = self._negatives(row, rng)
        docs = [row.pos[pos], *(row.neg[i] for i in negs)]
        if len(docs) < self.cfg.group_size:      # no hard negatives allowed: other rows' positives
            docs += rng.choices(self._pool, k=self.cfg.group_size - len(docs))
        example: dict[str, Any] = {
            "query_ids": query_ids,
            "n_lm": n_lm,
            "doc_ids": [self.template.document_ids(d) for d in docs],
        }
        if self.with_scores:
            assert row.pos_scores is not None
            example["teacher"] = [row.pos_scores[pos], *((row.neg_scores or [])[i] for i in negs)]
            if len(example["teacher"]) < len(docs):
                raise InputError(f"row {row.id}: distillation needs hard negatives with neg_scores")
        return example


class JointCollator:
    """Examples -> left-padded tensors plus the LM targets at thought positions.

    Output: ``q_ids``/``q_mask`` [B, Tq]; ``lm_rows``/``lm_cols``/``lm_labels`` [M] (position
    ``(row, col)`` of the hidden state that predicts label ``y``; M = thought tokens + EOS over the
    batch); ``d_ids``/``d_mask`` [B*G, Td]; ``teacher`` [B, G] when distilling.
    """

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def lm_targets(self, seqs: Sequence[Sequence[int]], n_lm: Sequence[int],
                   width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows: list[int] = []
        cols: list[int] = []
        labels: list[int] = []
        for r, (seq, n) in enumerate(zip(seqs, n_lm, strict=True)):
            if n == 0:
                continue
            start = len(seq) - 1 - n             # first label: the first thought token (or EOS)
            shift = width - len(seq)             # left padding
            for k in range(start, start + n):
                rows.append(r)
                cols.append(shift + k - 1)       # the state one position earlier predicts token k
                labels.append(seq[k])
        as_long = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
        return as_long(rows), as_long(cols), as_long(labels)

    def queries(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """The query side of a batch: ``q_ids``, ``q_mask``, ``lm_rows``, ``lm_cols``, ``lm_labels``."""
        seqs = [e["query_ids"] for e in examples]
        q_ids, q_mask = left_pad(seqs, self.pad_id, "cpu")                          # [B, Tq]
        lm_rows, lm_cols, lm_labels = self.lm_targets(seqs, [e["n_lm"] for e in examples], q_ids.shape[1])
        return {"q_ids": q_ids, "q_mask": q_mask, "lm_rows": lm_rows, "lm_cols": lm_cols, "lm_labels": lm_labels}

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        docs = [d for e in examples for d in e["doc_ids"]]
        d_ids, d_mask = left_pad(docs, self.pad_id, "cpu")                          # [B*G, Td]
        batch = {**self.queries(examples), "d_ids": d_ids, "d_mask": d_mask}
        if "teacher" in examples[0]:
            batch["teacher"] = torch.tensor([e["teacher"] for e in examples], dtype=torch.float32)
        return batch
