"""``rl(config)``: GRPO on thoughts, the one library function behind ``o1emb rl``.

One step: draw ``B`` rows -> roll out ``G`` thoughts per query on the one-pass path (no gradient) ->
embed the rows' documents (with gradient) -> reward each thought by how its one-pass vector retrieves
the positive -> group-relative advantages -> the policy forward over ``prompt + thought + EOS + <emb>``
gives the thought tokens' log-probabilities *and* the sampled-thought query vectors in one pass ->
``policy + kl_coef * KL + contrastive_weight * InfoNCE`` -> one optimizer step (``updates`` > 1 reuses
the rollout with the clipped ratio).

Our own loop rather than the Hugging Face ``Trainer``: a step needs generation between batches, which
the Trainer's loop has no hook for (TRL's GRPOTrainer rebuilds most of that loop to get it).

Under several processes (``torchrun ... -m o1embedder rl``), :func:`distributed.init_from_env` joins
the process group and places each rank on its own device. Each rank rolls out and rewards its own rows
(a row's G samples never leave their rank, so advantages need no communication); the reward's
candidates and the contrastive term's are every rank's documents (gathered, as training does); token
means and the contrastive mean are global (``losses.global_mean_share``). The gradient-carrying forward
(documents + policy sequences) is one call of :class:`PolicyModule`, wrapped in torch's
``DistributedDataParallel``, so gradients are averaged in DDP's buckets, overlapped with the backward,
as in training; each step equals one process's step on the concatenated batch of rows. Only rank 0
writes the log, checkpoints and ``OUT/final``.

The parts, one job a module: :mod:`.parts` (``build``: model, rows, reference), :mod:`.rows` (which
rows a step takes), :mod:`.policy` (the gradient-carrying forward and the reference's), :mod:`.step`
(one step, the optimizer), :mod:`.checkpoints` (save, load, the run record), :mod:`.runlog` (the
log), :mod:`.export` (``OUT/final``); this module runs them, and resumes by the rule of
:mod:`o1embedder.resume`. Its names stay importable from here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .. import distributed, resume
from ..log import get_logger
from . import runlog
from .checkpoints import load_checkpoint, run_record, save_checkpoint
from .config import CONFIG_FILE, RLConfig
from .export import export
from .parts import RLParts, autocast_for, build
from .policy import PolicyModule, policy_forward, reference_logprobs, wrap_policy
from .rows import rank_share, step_inputs, step_rows
from .runlog import LOG_FILE, read_log
from .step import optimizer_for, rewards_for, rl_step

__all__ = ["LOG_FILE", "PolicyModule", "RLParts", "autocast_for", "build", "optimizer_for", "policy_forward",
           "rank_share", "read_log", "reference_logprobs", "rewards_for", "rl", "rl_step", "step_inputs",
           "step_rows", "wrap_policy"]

logger = get_logger(__name__)


def rl(config: RLConfig, *, show_progress: bool | None = None, stop_after: int | None = None) -> Path:
    """Run GRPO per ``config``; return ``OUT/final`` (or ``OUT`` without export).

    Resumes by the rule of :mod:`o1embedder.resume`: from the newest ``OUT/checkpoint-*`` made with the
    same settings, model and data; a finished run is returned as it is, nothing retrained; anything
    else in ``OUT`` is refused (:class:`InputError` names the first setting that differs).
    ``stop_after`` ends the run after that many steps of *this* call (for tests of resuming). Under
    ``torchrun`` every rank runs this; rank 0 decides for all, and only rank 0 writes.
    """
    from tqdm.auto import tqdm

    config.validate()
    distributed.init_from_env(config.device or None)
    out = Path(config.out)
    record = run_record(config)
    plan = resume.decide(out, record, final=config.export_merged)
    if plan.finished:
        logger.info("%s: this run already finished with these settings; nothing to do", plan.path)
        return plan.path
    torch.manual_seed(config.seed)                      # LoRA's random A matrices: equal on every rank
    parts = build(config)
    resume.begin(out, record)
    if distributed.is_main_process():
        runlog.write_text(out / CONFIG_FILE, json.dumps(config.to_dict(), indent=2) + "\n")
    optimizer, scheduler = optimizer_for(parts)
    start = 0
    if plan.checkpoint is not None:
        start = load_checkpoint(parts, optimizer, scheduler, plan.checkpoint)
        logger.info("resuming from %s (step %d of %d)", plan.checkpoint, start, config.steps)
    log_path = out / LOG_FILE
    runlog.truncate(log_path, start)
    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    show = distributed.is_main_process() and (show_progress is None or show_progress)
    with tqdm(total=config.steps, initial=start, desc="rl", unit="step", disable=not show) as bar:
        for step in range(start, end):
            began = time.perf_counter()
            numbers = rl_step(parts, optimizer, scheduler, step)
            numbers["seconds"] = time.perf_counter() - began
            numbers = {**runlog.mean_over_ranks(numbers), "world_size": distributed.world_size()}
            runlog.append(log_path, step + 1, numbers)
            bar.set_postfix(runlog.bar_text(numbers))
            bar.update(1)
            done = step + 1
            if config.save_steps and done % config.save_steps == 0 and done < config.steps:
                save_checkpoint(parts, optimizer, scheduler, done, out, record)
    distributed.barrier()
    if end < config.steps or not config.export_merged:
        save_checkpoint(parts, optimizer, scheduler, end, out, record)
        if end == config.steps:
            resume.finish(out, record, steps=end)
        distributed.barrier()
        return out
    final = out / resume.FINAL
    if distributed.is_main_process():
        export(parts, final, record)
        resume.finish(out, record, steps=end, final=resume.FINAL)
    distributed.barrier()
    return final
