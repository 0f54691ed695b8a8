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
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import distributed
from ..formats import atomic_write
from ..log import get_logger
from ..provenance import file_digest
from ..templates import Template
from ..training.adapters import export_merged, prepare_model
from ..training.config import DataConfig
from ..training.data import TrainingSet, load_rows
from ..training.forward import JointModel
from . import objective
from .checkpoints import (
    PROVENANCE_FILE,
    check_provenance,
    checkpoints,
    finished,
    load_checkpoint,
    provenance,
    recorded,
    save_checkpoint,
)
from .config import CONFIG_FILE, RLConfig
from .rollout import Rollout, policy_batch, rollout_seed, sample_thoughts, to_device

logger = get_logger(__name__)
LOG_FILE = "rl_log.jsonl"


@dataclass
class RLParts:
    """What :func:`build` assembles: the O1 model (its LM wrapped for training), rows and helpers."""

    o1: Any                     # O1Embedder whose .model is the trainable LM (peft under LoRA)
    joint: JointModel
    reference: Any | None       # the frozen LM before RL (full fine-tuning); None under LoRA
    template: Template
    rows: TrainingSet
    config: RLConfig
    device: torch.device = torch.device("cpu")
    source: dict[str, str] | None = None
    """Fingerprints of what the run starts from (the model's weights, the data file): see :func:`provenance`."""
    policy: Any = None
    """The module whose forward carries every gradient of a step (:class:`PolicyModule`, DDP-wrapped
    under several processes); set by :func:`build`."""

    @property
    def lm(self) -> Any:
        return self.joint.lm


class PolicyModule(nn.Module):
    """One forward for everything a step differentiates: the rows' documents and the sampled
    ``prompt + thought + EOS + <emb>`` sequences -> (document vectors [D, H], thought-token
    log-probabilities [M], sampled-thought query vectors [S, H]).

    DDP averages gradients only for parameters used inside its wrapper's ``forward``, once per
    backward; calling the joint model's parts one by one (as a single process may) would bypass its
    hooks. So the step's two gradient-carrying passes go through this one call.
    """

    def __init__(self, parts: RLParts) -> None:
        super().__init__()
        self.joint = parts.joint
        self._parts = parts               # a plain attribute: the joint model is registered once, above

    def forward(self, d_ids: torch.Tensor, d_mask: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                rows: torch.Tensor, cols: torch.Tensor, labels: torch.Tensor,
                temperature: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from .rollout import PolicyBatch

        d = self.joint.encode_docs(d_ids, d_mask)                                      # [D, H]
        logp, q = policy_forward(self._parts, PolicyBatch(ids, mask, rows, cols, labels, rows), temperature)
        return d, logp, q


def wrap_policy(parts: RLParts) -> Any:
    """:class:`PolicyModule`, in DDP when several processes run (bucketed gradient averaging)."""
    module = PolicyModule(parts)
    if not distributed.is_distributed():
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [parts.device.index] if parts.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def build(config: RLConfig) -> RLParts:
    """The O1 model (its own template and limits kept), the rows, LoRA or full set-up, the reference."""
    from ..model import O1Embedder

    config.validate()
    device = distributed.init_from_env(config.device or None)
    o1 = O1Embedder.from_pretrained(config.model, device=device, dtype=config.dtype)
    source = {"model": o1.fingerprint(), "data": file_digest(config.data)}
    template = o1.template
    data_cfg = DataConfig(group_size=config.group_size, thought_dropout=1.0, seed=config.seed)
    rows = load_rows(config.data, template, data_cfg, warn_no_thought=False)
    reference = None
    if config.adapter.mode == "full":     # under LoRA the reference is the same model, adapters off
        reference = copy.deepcopy(o1.model).eval().requires_grad_(False)
    lm = prepare_model(o1.model, template, config.adapter)
    o1.model = lm
    joint = JointModel(lm, trainable_only_state=config.adapter.mode == "lora")
    parts = RLParts(o1, joint, reference, template, TrainingSet(rows, template, data_cfg), config, device, source)
    parts.policy = wrap_policy(parts)
    return parts


def autocast_for(config: RLConfig, device: torch.device) -> Any:
    """bf16 autocast where asked, or (``auto``) where the hardware computes bf16 natively."""
    from ..checkpoints import auto_dtype

    mode = config.mixed_precision
    if mode == "auto":
        mode = "bf16" if auto_dtype(device) == torch.bfloat16 else "no"
    if mode == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# -- the rows of a step ---------------------------------------------------------------------------
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


# -- one step ------------------------------------------------------------------------------------
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


def reference_logprobs(parts: RLParts, batch: Any, temperature: float) -> torch.Tensor:
    """Log-probabilities of the thought tokens under the model before RL (no gradient): the frozen
    copy (full fine-tuning) or the same LM with its adapters disabled (LoRA)."""
    chunk = parts.config.logprob_chunk
    with torch.no_grad():
        if parts.reference is not None:
            return _thought_logprobs(parts.reference, batch, temperature, chunk)
        with parts.lm.disable_adapter():
            return _thought_logprobs(parts.lm, batch, temperature, chunk)


def _thought_logprobs(lm: Any, batch: Any, temperature: float, chunk: int = 0) -> torch.Tensor:
    from .logprobs import thought_logprobs

    hidden = JointModel(lm)._hidden(batch.ids, batch.mask)                            # [S, T, H]
    return thought_logprobs(hidden[batch.rows, batch.cols], batch.labels, lm.get_output_embeddings(),
                            temperature, chunk)                                        # [M, H] -> [M]


def policy_forward(parts: RLParts, batch: Any, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over the sampled sequences -> (thought-token log-probs [M], query vectors [S, H]).

    The log-probs are computed ``logprob_chunk`` tokens at a time, each chunk's logits recomputed in
    the backward (:mod:`o1embedder.rl.logprobs`): never ``[M, V]`` logits, in the forward or the backward.
    """
    from .logprobs import thought_logprobs

    hidden = parts.joint._hidden(batch.ids, batch.mask)                             # [S, T, H]
    logp = thought_logprobs(hidden[batch.rows, batch.cols], batch.labels, parts.lm.get_output_embeddings(),
                            temperature, parts.config.logprob_chunk)                 # [M, H] -> [M]
    return logp, JointModel.pool(hidden)


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
                                  max_new_tokens=config.max_new_tokens, seed=rollout_seed(config.seed, step))
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
        loss.backward()                                   # under DDP: gradients averaged over ranks
        trainable = [p for p in joint.parameters() if p.requires_grad]
        if config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        optimizer.step()
        for name, value in {"loss": loss, **terms}.items():
            totals[name] = totals.get(name, 0.0) + float(value.detach()) / config.updates
    scheduler.step()
    every = distributed.all_gather_no_grad(rewards)        # the step's rewards on all ranks, for the log
    return {**totals, "reward_mean": float(every.mean()), "reward_std": float(every.std()),
            "zero_variance": objective.zero_variance_fraction(every, config.samples),
            "thought_tokens": float(rollout.lengths.mean()), "lr": float(scheduler.get_last_lr()[0]),
            "rollout_seconds": rollout_seconds}


# -- the run ----------------------------------------------------------------------------------------
def optimizer_for(parts: RLParts) -> tuple[Any, Any]:
    config = parts.config
    params = [p for p in parts.joint.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    warm = max(config.warmup_steps, 0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / (warm + 1)))
    return optimizer, scheduler


def _log_line(step: int, numbers: dict[str, float]) -> str:
    return json.dumps({"step": step, **{k: round(v, 6) for k, v in numbers.items()}})


def _bar_text(numbers: dict[str, float]) -> dict[str, str]:
    keys = (("reward", "reward_mean"), ("kl", "kl"), ("len", "thought_tokens"), ("zero_var", "zero_variance"),
            ("con", "contrastive"))
    return {short: f"{numbers[key]:.3g}" for short, key in keys if key in numbers}


def rl(config: RLConfig, *, show_progress: bool | None = None, stop_after: int | None = None) -> Path:
    """Run GRPO per ``config``; return ``OUT/final`` (or ``OUT`` without export).

    Resumes from the newest ``OUT/checkpoint-*`` when it was made with the same settings, model and
    data (otherwise :class:`InputError` names the first setting that differs); a finished run is
    returned as it is, nothing retrained. ``stop_after`` ends the run after that many steps of *this*
    call (for tests of resuming). Under ``torchrun`` every rank runs this; only rank 0 writes.
    """
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)                      # LoRA's random A matrices: equal on every rank
    parts = build(config)
    out = Path(config.out)
    record = provenance(parts)
    done_at = finished(out, config)
    found = checkpoints(out)
    if done_at is not None or found:
        check_provenance(recorded(done_at or found[-1][1]), record, done_at or found[-1][1])
    if done_at is not None:
        logger.info("%s: this run already finished with these settings; nothing to do", done_at)
        return done_at if config.export_merged else out
    if distributed.is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        _write_text(out / CONFIG_FILE, json.dumps(config.to_dict(), indent=2) + "\n")
    optimizer, scheduler = optimizer_for(parts)
    start = 0
    if found:
        start = load_checkpoint(parts, optimizer, scheduler, found[-1][1])
        logger.info("resuming from %s (step %d of %d)", found[-1][1], start, config.steps)
    log_path = out / LOG_FILE
    _truncate_log(log_path, start)
    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    show = distributed.is_main_process() and (show_progress is None or show_progress)
    with tqdm(total=config.steps, initial=start, desc="rl", unit="step", disable=not show) as bar:
        for step in range(start, end):
            began = time.perf_counter()
            numbers = rl_step(parts, optimizer, scheduler, step)
            numbers["seconds"] = time.perf_counter() - began
            numbers = {**_mean_over_ranks(numbers), "world_size": distributed.world_size()}
            if distributed.is_main_process():
                with open(log_path, "a", encoding="utf-8") as fh:
                    fh.write(_log_line(step + 1, numbers) + "\n")
            bar.set_postfix(_bar_text(numbers))
            bar.update(1)
            done = step + 1
            if config.save_steps and done % config.save_steps == 0 and done < config.steps:
                save_checkpoint(parts, optimizer, scheduler, done, out)
    distributed.barrier()
    if end < config.steps or not config.export_merged:
        save_checkpoint(parts, optimizer, scheduler, end, out)
        distributed.barrier()
        return out
    final = out / "final"
    if distributed.is_main_process():
        _export(parts, final, record)
    distributed.barrier()
    return final


def _export(parts: RLParts, final: Path, record: dict[str, Any]) -> None:
    """The merged model, its config and provenance into ``final`` through a temporary folder, so a
    run killed while exporting leaves no ``final`` that looks finished."""
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    lm = parts.lm
    for param in lm.parameters():
        param.requires_grad_(False)
    export_merged(lm, parts.o1.tokenizer, parts.o1.settings, tmp)
    _write_text(tmp / CONFIG_FILE, json.dumps(parts.config.to_dict(), indent=2) + "\n")
    _write_text(tmp / PROVENANCE_FILE, json.dumps(record, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def _mean_over_ranks(numbers: dict[str, float]) -> dict[str, float]:
    if not distributed.is_distributed():
        return numbers
    names = sorted(numbers)
    total = distributed.all_reduce_sum(torch.tensor([numbers[n] for n in names], dtype=torch.float64))
    return {n: float(v) / distributed.world_size() for n, v in zip(names, total, strict=True)}


def _truncate_log(path: Path, steps: int) -> None:
    """Keep the first ``steps`` lines of the log (a resumed run rewrites what followed its checkpoint)."""
    if not distributed.is_main_process():
        return
    if steps == 0:
        path.unlink(missing_ok=True)
        return
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()[:steps]
        _write_text(path, "".join(line + "\n" for line in lines))


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path) as handle:
        handle.write(text)


def read_log(path: str | Path) -> list[dict[str, float]]:
    """The per-step numbers an RL run logged (``OUT/rl_log.jsonl``)."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
