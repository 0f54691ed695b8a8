"""A thin Hugging Face ``Trainer`` subclass: ``compute_loss``, ``log`` and ``create_optimizer`` overridden.

The Trainer keeps its own loop (optimizer, schedule, mixed precision, gradient accumulation,
checkpoints, resume, DDP/FSDP/DeepSpeed through accelerate); we only say how a batch becomes a loss
(the joint loss, or the thought LM loss alone during ``loss.lm_warmup_steps``), add each loss part
(``contrastive``, ``thought_lm``, ``distill``) to the logs, and give the parameters only the LM loss
trains their own learning rate (``loss.lm_lr_scale``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import ProgressCallback

from .. import distributed, resume
from ..formats import atomic_write
from .adapters import lm_only_parameters
from .config import CONFIG_FILE, GradCacheConfig, LossConfig, TrainConfig
from .forward import joint_parts
from .gradcache import gradcache_parts
from .heldout import LOG_KEY


class O1Trainer(Trainer):
    """``Trainer`` whose loss is the O1 joint objective (plain or GradCache path)."""

    def __init__(self, *args: Any, loss_config: LossConfig, gradcache: GradCacheConfig | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loss_config = loss_config
        self.gradcache = gradcache or GradCacheConfig()
        self.loss_is_scaled_for_ga = False      # a per-batch mean: the Trainer divides by GA steps
        self._part_sums: dict[str, float] = {}
        self._part_steps = 0

    def step_loss_config(self) -> LossConfig:
        """The loss settings of the current optimizer step: ``lam`` is 0 during the LM warm-up (the first
        ``lm_warmup_steps`` optimizer steps, every micro-batch of them), the configured one after."""
        cfg = self.loss_config
        return replace(cfg, lam=0.0) if self.state.global_step < cfg.lm_warmup_steps else cfg

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        cfg = self.step_loss_config()
        if self.gradcache.enabled and model.training and torch.is_grad_enabled():
            parts = gradcache_parts(self.accelerator.unwrap_model(model), inputs, cfg, self.gradcache)
        else:
            out = model(**inputs)
            parts = joint_parts(out["q"], out["d"], out["lm_sum"], out["lm_count"], out["teacher"], cfg)
        if model.training:
            logged = {n: float(v.detach()) for n, v in parts.items() if n != "loss"}
            if self.loss_config.lm_warmup_steps:
                logged["lam"] = cfg.lam                 # 0 during the warm-up: the window's mean is logged
            for name, value in logged.items():
                self._part_sums[name] = self._part_sums.get(name, 0.0) + value
            self._part_steps += 1
        return (parts["loss"], parts) if return_outputs else parts["loss"]

    def create_optimizer(self, *args: Any, **kwargs: Any) -> Any:
        """The Trainer's optimizer; with ``lm_lr_scale`` != 1 the parameters only the LM loss trains
        (:func:`~o1embedder.training.adapters.lm_only_parameters`) move to groups of their own (same
        settings, learning rate x ``lm_lr_scale``), which the schedule then scales like the others.
        The first group stays a shared one: the logged ``learning_rate`` is the base rate. (Arguments
        passed through: transformers 4.56 takes none, 5.x an optional model.)"""
        optimizer = super().create_optimizer(*args, **kwargs)
        scale = self.loss_config.lm_lr_scale
        if scale == 1.0:
            return optimizer
        lm_params = {id(p) for p in lm_only_parameters(self.accelerator.unwrap_model(self.model).lm, scale)}
        for group in list(optimizer.param_groups):
            mine = [p for p in group["params"] if id(p) in lm_params]
            if mine:
                group["params"] = [p for p in group["params"] if id(p) not in lm_params]
                optimizer.add_param_group({**group, "params": mine, "lr": group["lr"] * scale})
        return optimizer

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean of each loss part since the last log (averaged over ranks) to training logs."""
        if "loss" in logs and self._part_steps:
            names = sorted(self._part_sums)
            sums = torch.tensor([self._part_sums[n] for n in names], dtype=torch.float64)
            means = distributed.all_reduce_sum(sums) / (distributed.world_size() * self._part_steps)
            logs.update({n: round(float(v), 6) for n, v in zip(names, means, strict=True)})
            self._part_sums, self._part_steps = {}, 0
        super().log(logs, start_time)


SHOWN = ("loss", "contrastive", "thought_lm", "distill", LOG_KEY, "learning_rate", "grad_norm")
"""The logged numbers the bar and the log lines show (every number stays in the log history)."""


def _shown(logs: dict[str, Any]) -> dict[str, str]:
    """The shown numbers of one log record, formatted (``learning_rate`` as ``lr``)."""
    return {("lr" if k == "learning_rate" else k): (f"{v:.2e}" if k == "learning_rate" else f"{v:.4g}")
            for k in SHOWN if isinstance(v := logs.get(k), (int, float))}


def _log_summary(logs: dict[str, Any]) -> None:
    """The run's final record (runtime, samples/s, mean loss) as one log line."""
    from ..log import get_logger

    get_logger(__name__).info("training: %s", ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                        for k, v in logs.items()))


class LossBar(ProgressCallback):
    """The training bar (steps, rate, ETA) with the latest loss parts and learning rate as its
    postfix, instead of a raw dictionary printed per log step. Every number stays in
    ``trainer.state.log_history`` (and ``trainer_state.json`` in each checkpoint); the run's final
    summary (runtime, samples/s) goes to the log."""

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        shown = _shown(logs)
        if shown and self.training_bar is not None:
            self.training_bar.set_postfix(shown, refresh=True)
        elif "train_runtime" in logs:
            _log_summary(logs)


class LossLines(TrainerCallback):
    """With the bar disabled (``disable_tqdm``, e.g. in batch logs): one compact log line per log step
    (``step 10/50: loss 0.54, contrastive 1.08, thought_lm 0.0065, lr 1.1e-04``) instead of the
    Trainer's printed dictionary."""

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        shown = _shown(logs)
        if shown:
            from ..log import get_logger

            get_logger(__name__).info("step %d/%d: %s", state.global_step, state.max_steps,
                                      ", ".join(f"{k} {v}" for k, v in shown.items()))
        elif "train_runtime" in logs:
            _log_summary(logs)


class LossHistory(TrainerCallback):
    """Keeps every logged training record that carries the loss parts (step, parts, learning rate) in
    ``history``, and every held-out thought LM loss (``eval_thoughts``) in ``thoughts``."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.thoughts: list[dict[str, float]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if logs and "contrastive" in logs:
            self.history.append({"step": state.global_step,
                                 **{k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}})
        if logs and LOG_KEY in logs:
            self.thoughts.append({"step": state.global_step, LOG_KEY: float(logs[LOG_KEY])})


class NothingLeft(Exception):
    """Raised by :class:`StopWhenDone`: the resumed checkpoint is the run's last step."""


class EpochDraws(TrainerCallback):
    """Tells the training set which epoch begins, on every rank, so negatives and thought dropout are
    re-drawn per epoch. accelerate's loader cannot be relied on for it: its ``set_epoch`` passes the
    epoch to a sampler that has one (the seedable sampler it installs) and then skips the dataset.
    ``state.epoch`` is the epochs done so far (fractional when resumed inside an epoch)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.dataset.set_epoch(int(math.floor((state.epoch or 0.0) + 1e-9)))


class StopWhenDone(TrainerCallback):
    """Resumed from a checkpoint at the run's last step, the Trainer (transformers 5.24) would take one
    more step before it checks whether it is done: stop it as it begins, the checkpoint loaded."""

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.max_steps and state.global_step >= state.max_steps:
            raise NothingLeft


class SaveConfigCallback(TrainerCallback):
    """Writes the effective ``o1emb_train.json`` and the tokenizer into every checkpoint, then the run
    record (:mod:`o1embedder.resume`), last: a checkpoint without it was cut short and is not resumed."""

    def __init__(self, config: TrainConfig, tokenizer: Any, record: Any = None) -> None:
        self.config, self.tokenizer, self.record = config, tokenizer, record

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            save_config(self.config, folder)
            self.tokenizer.save_pretrained(folder)
            if self.record is not None:
                resume.write(folder, self.record, complete=True, step=state.global_step)


def save_config(config: TrainConfig, folder: str | os.PathLike[str]) -> Path:
    path = Path(folder) / CONFIG_FILE
    with atomic_write(path) as handle:
        json.dump(config.to_dict(), handle, indent=2)
        handle.write("\n")
    return path
