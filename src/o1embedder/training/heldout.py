"""The thought LM loss on held-out rows: can the model still write the expert's thoughts?

The quantity is exactly the training LM loss (:func:`o1embedder.losses.thought_lm_loss`): the mean
next-token cross-entropy over every thought token and the closing EOS of every row that has a thought,
each row's sequence ``[bos] <query>q</query><thought>t<eos><emb>`` built by the training code
(:func:`~o1embedder.training.data.query_example`, :meth:`JointCollator.queries`,
:meth:`JointModel.encode_queries`), with no thought dropout. It is a token-weighted mean (long thoughts
count more), in nats, computed without autocast in the weights' dtype, the model in eval mode.

- :func:`thought_lm_loss`: of a saved model (or an :class:`O1Embedder`), no training needed;
  ``python -m o1embedder.training.heldout MODEL ROWS.jsonl`` prints it as JSON.
- :class:`HeldOutThoughts`: ``train()`` with ``eval_thoughts`` records it before the first step, every
  ``eval_thoughts_steps`` steps and after the last, in the trainer's log (``heldout_thought_lm``) and in
  ``OUT/thought_lm.json``.

Under several processes each rank scores every ``world``-th row and the sums and token counts are
all-reduced: every rank gets the one-process value (only rank 0 writes). Like GradCache it calls the
unwrapped module: one process, DDP and ZeRO-2, not FSDP (which shards the weights).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from .. import distributed
from ..errors import InputError, O1Error
from ..formats import TrainingRow, atomic_write, iter_jsonl, parse_training_row
from ..log import get_logger
from ..templates import Template
from .data import JointCollator, query_example, thought_of
from .forward import JointModel

logger = get_logger(__name__)

RESULT_FILE = "thought_lm.json"
LOG_KEY = "heldout_thought_lm"


@dataclass(frozen=True)
class ThoughtLoss:
    """``loss``: mean cross-entropy per scored token (nats); ``tokens``: thought tokens + one EOS per row,
    over all rows; ``rows``: the rows with a thought (the others are not scored)."""

    loss: float
    tokens: int
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def thought_rows(source: str | os.PathLike[str] | Iterable[TrainingRow | dict[str, Any]],
                 template: Template) -> list[TrainingRow]:
    """The rows of ``source`` (a JSONL file of training rows, or rows) that have a thought; ``pos`` and
    ``neg`` may be absent. A thought holding a template token is an :class:`InputError` (file:line)."""
    path = source if isinstance(source, (str, os.PathLike)) else None
    if path is not None:
        items: Iterable[tuple[Any, dict[str, Any]]] = (
            (obj, {"path": path, "line": line}) for line, obj in iter_jsonl(path))
    else:
        items = ((obj, {}) for obj in source)
    rows, seen = [], 0
    for obj, where in items:
        row = obj if isinstance(obj, TrainingRow) else parse_training_row(obj, require_pos=False, **where)
        seen += 1
        if thought_of(row) is None:
            continue
        try:
            template.check_no_special(row.thought)
        except InputError as exc:
            raise InputError(exc.reason, field="thought", **where) from None
        rows.append(row)
    if not rows:
        raise InputError(f"no row with a thought among {seen}", path=path)
    if seen > len(rows):
        logger.info("held-out thoughts: %d of %d rows have no thought and are not scored", seen - len(rows), seen)
    return rows


def score(module: JointModel, template: Template, rows: Sequence[TrainingRow], *, pad_id: int,
          batch_size: int = 8) -> ThoughtLoss:
    """The thought LM loss of ``rows`` (each with a thought) under ``module``; see the module doc."""
    examples, batch_size = [], max(1, batch_size)
    for row in rows[distributed.rank()::distributed.world_size()]:
        ids, n_lm = query_example(template, row.query, thought_of(row))
        examples.append({"query_ids": ids, "n_lm": n_lm})
    collator, device = JointCollator(pad_id), next(module.parameters()).device
    total, count = torch.zeros((), dtype=torch.float64), 0
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), torch.autocast(device_type=device.type, enabled=False):
            for start in range(0, len(examples), batch_size):
                batch = collator.queries(examples[start:start + batch_size])
                out = module.encode_queries(**{k: v.to(device) for k, v in batch.items()})
                total += out.lm_sum.detach().double().cpu()
                count += out.lm_count
    finally:
        module.train(was_training)
    sums = distributed.all_reduce_sum(torch.tensor([float(total), float(count)], dtype=torch.float64))
    tokens = int(sums[1])
    return ThoughtLoss(float(sums[0]) / max(tokens, 1), tokens, len(rows))


def thought_lm_loss(model: Any, rows: str | os.PathLike[str] | Iterable[TrainingRow | dict[str, Any]], *,
                    batch_size: int = 8, max_query_tokens: int | None = None,
                    max_query_thought_tokens: int | None = None, device: Any = None,
                    dtype: Any = "float32") -> ThoughtLoss:
    """The held-out thought LM loss of ``model`` (a folder, hub id or ``.gguf`` file, loaded as
    :meth:`O1Embedder.from_pretrained` does, or an :class:`O1Embedder`) on ``rows`` (a JSONL file of
    training rows, or rows). The length limits default to the model's own (``o1embedder.json``; 32 and
    256 for a base model): give the training run's to score what it scored."""
    from ..model import O1Embedder

    if not isinstance(model, O1Embedder):
        model = O1Embedder.from_pretrained(model, device=device, dtype=dtype)
    limits = {k: v for k, v in (("max_query_tokens", max_query_tokens),
                                ("max_query_thought_tokens", max_query_thought_tokens)) if v is not None}
    template = Template(model.tokenizer, replace(model.settings.template, **limits))
    return score(JointModel(model.model), template, thought_rows(rows, template),
                 pad_id=model.tokenizer.pad_token_id, batch_size=batch_size)


class HeldOutThoughts(TrainerCallback):
    """Records the held-out thought LM loss while ``trainer`` trains: before the first step (of this
    attempt: a resumed run's first record is at its checkpoint's step), every ``every`` optimizer steps
    (0: never) and after the last. Each new value is logged through ``trainer.log`` as
    ``heldout_thought_lm`` and ``OUT/thought_lm.json`` is rewritten (rank 0): ``before`` and ``after``
    (``null`` until the run ends) and the whole ``history``, earlier attempts' records included."""

    def __init__(self, trainer: Any, template: Template, rows: Sequence[TrainingRow], *, pad_id: int, source: str,
                 out: str | os.PathLike[str], every: int = 0) -> None:
        self.trainer, self.template, self.rows, self.pad_id = trainer, template, list(rows), pad_id
        self.source, self.path, self.every = source, Path(out) / RESULT_FILE, every
        self.history: list[dict[str, Any]] = []
        self.tokens = 0
        self.after: dict[str, Any] | None = None

    def _record(self, state: Any) -> dict[str, Any]:
        if self.history and self.history[-1]["step"] == state.global_step:
            return self.history[-1]                      # the same weights: scored already
        trainer = self.trainer
        module = trainer.accelerator.unwrap_model(trainer.model)
        result = score(module, self.template, self.rows, pad_id=self.pad_id,
                       batch_size=trainer.args.per_device_eval_batch_size)
        self.tokens = result.tokens
        entry = {"step": state.global_step, "thought_lm": result.loss}
        self.history.append(entry)
        should_log = trainer.control.should_log
        trainer.log({LOG_KEY: round(result.loss, 6)})
        trainer.control.should_log = should_log        # logging resets it: the step's own log must still come
        self._write(state)
        return entry

    def _write(self, state: Any) -> None:
        if not state.is_world_process_zero:
            return
        data = {"eval_thoughts": self.source, "rows": len(self.rows), "tokens": self.tokens,
                "before": self.history[0] if self.history else None, "after": self.after, "history": self.history}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.path) as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.path.is_file() and state.global_step > 0:          # resumed: keep the earlier records
            try:
                earlier = json.loads(self.path.read_text(encoding="utf-8")).get("history") or []
            except (OSError, ValueError):
                earlier = []
            self.history = [e for e in earlier if isinstance(e, dict) and e.get("step", 0) < state.global_step]
        self._record(state)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.every and state.global_step % self.every == 0:
            self._record(state)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.after = self._record(state)
        self._write(state)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m o1embedder.training.heldout MODEL ROWS.jsonl [--batch-size 8] [--max-query-thought-tokens N]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m o1embedder.training.heldout",
                                     description="thought LM loss of MODEL on the thoughts of ROWS")
    parser.add_argument("model")
    parser.add_argument("rows")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-query-tokens", type=int, default=None)
    parser.add_argument("--max-query-thought-tokens", type=int, default=None)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    try:
        result = thought_lm_loss(args.model, args.rows, batch_size=args.batch_size, device=args.device,
                                 max_query_tokens=args.max_query_tokens,
                                 max_query_thought_tokens=args.max_query_thought_tokens)
    except O1Error as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    print(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
