"""One GRPO step: roll out, reward, update (:func:`rl_step`), and the optimizer it updates with."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from .. import distributed
from . import objective
from .config import RLConfig
from .parts import autocast_for
from .policy import reference_logprobs
from .precision import grad_scaler
from .rollout import Rollout, policy_batch, rollout_seed, sample_thoughts, to_device
from .rows import step_inputs

if TYPE_CHECKING:
    from .parts import RLParts


def rewards_for(rollout: Rollout, d: torch.Tensor, config: RLConfig) -> torch.Tensor:
    """Rewards of the rollout's thoughts from their one-pass vectors [B*G] (length penalty included)."""
    docs = distributed.all_gather_no_grad(d.detach())          # every rank's documents are candidates
    rewards = objective.retrieval_reward(rollout.vectors.to(d.device), docs,
                                         group_size=config.group_size, samples=config.samples,
                                         temperature=config.temperature, kind=config.reward,
                                         offset=distributed.rank_offset(d))
    if config.length_penalty:
        rewards = rewards - config.length_penalty * rollout.lengths.to(d.device) / config.max_new_tokens
    return rewards


def rl_step(parts: RLParts, optimizer: Any, scheduler: Any, step: int) -> dict[str, float]:
    """Roll out, reward, update; returns the step's logged numbers (this rank's rows)."""
    config, joint = parts.config, parts.joint
    device = parts.device
    queries, d_ids, d_mask = step_inputs(parts, step)
    amp = autocast_for(config, device)
    joint.eval()
    began = time.perf_counter()
    with amp:
        rollout = sample_thoughts(parts.o1, queries, samples=config.samples,
                                  temperature=config.rollout_temperature, top_p=config.rollout_top_p,
                                  max_new_tokens=config.max_new_tokens, seed=rollout_seed(config.seed, step),
                                  resample=config.resample)
    rollout_seconds = time.perf_counter() - began
    batch = to_device(policy_batch(parts.template, rollout, parts.o1.tokenizer.pad_token_id), device)
    d_ids, d_mask = d_ids.to(device), d_mask.to(device)
    joint.train()
    with amp:
        ref_logp = reference_logprobs(parts, batch, config.rollout_temperature) if config.kl_coef > 0 else None
    old_logp = None
    totals: dict[str, float] = {}
    for _ in range(config.updates):
        with amp:
            d, logp, q = parts.policy(d_ids, d_mask, batch.ids, batch.mask, batch.rows, batch.cols,
                                      batch.labels, config.rollout_temperature)   # [B*group, H], [M], [S, H]
            if old_logp is None:
                rewards = rewards_for(rollout, d, config)
                advantages = objective.group_advantages(rewards, config.samples)
            old_logp = logp.detach() if old_logp is None else old_logp
            terms = objective.grpo_terms(logp, old_logp, ref_logp, advantages, batch.token_sample,
                                         clip=config.clip)
            terms["contrastive"] = objective.sample_info_nce(q, d, group_size=config.group_size,
                                                             samples=config.samples,
                                                             temperature=config.temperature)
            loss = objective.rl_loss(terms, kl_coef=config.kl_coef, contrastive_weight=config.contrastive_weight)
        optimizer.zero_grad(set_to_none=True)
        scaler = grad_scaler(optimizer, config.mixed_precision, device)   # fp16 only; else a pass-through
        scaler.scale(loss).backward()                     # under DDP: gradients averaged over ranks
        trainable = [p for p in joint.parameters() if p.requires_grad]
        scaler.unscale_(optimizer)
        if config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        for name, value in {"loss": loss, **terms}.items():
            totals[name] = totals.get(name, 0.0) + float(value.detach()) / config.updates
    scheduler.step()
    every = distributed.all_gather_no_grad(rewards)        # the step's rewards on all ranks, for the log
    return {**totals, "reward_mean": float(every.mean()), "reward_std": float(every.std()),
            "zero_variance": objective.zero_variance_fraction(every, config.samples),
            "identical_before": rollout.identical[0] / len(queries), "identical_after": rollout.identical[1] / len(queries),
            "thought_tokens": float(rollout.lengths.mean()), "lr": float(scheduler.get_last_lr()[0]),
            "rollout_seconds": rollout_seconds}


def optimizer_for(parts: RLParts) -> tuple[Any, Any]:
    """AdamW over the trainable parameters, and its schedule: linear warm-up, then constant."""
    config = parts.config
    params = [p for p in parts.joint.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    warm = max(config.warmup_steps, 0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / (warm + 1)))
    return optimizer, scheduler
