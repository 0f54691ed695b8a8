"""``rl(config)``: GRPO on thoughts, the one library function behind ``o1emb rl``.

One step: draw ``B`` rows -> roll out ``G`` thoughts per query on the one-pass path (no gradient) ->
embed the rows' documents (with gradient) -> reward each thought by how its one-pass vector retrieves
the positive -> group-relative advantages -> the policy forward over ``prompt + thought + EOS + <emb>``
gives the thought tokens' log-probabilities *and* the sampled-thought query vectors in one pass ->
``policy + kl_coef * KL + contrastive_weight * InfoNCE`` -> one optimizer step (``updates`` > 1 reuses
the rollout with the clipped ratio).

Our own loop rather than the Hugging Face ``Trainer``: a step needs generation between batches, which
the Trainer's loop has no hook for (TRL's GRPOTrainer rebuilds most of that loop to get it).

Under several processes (torchrun), each rank rolls out and rewards its own rows (a row's G samples
never leave their rank, so advantages need no communication); the reward's candidates and the
contrastive term's are every rank's documents (gathered, as training does); token means
and the contrastive mean are global (``losses.global_mean_share``), and gradients are averaged across
ranks after the backward, so each step equals one process's step on the concatenated batch of rows.
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

from .. import distributed
from ..errors import InputError
from ..formats import atomic_write
from ..log import get_logger
from ..templates import Template
from ..training.adapters import export_merged, prepare_model
from ..training.config import DataConfig
from ..training.data import TrainingSet, load_rows
from ..training.forward import JointModel
from . import objective
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

    @property
    def lm(self) -> Any:
        return self.joint.lm


def build(config: RLConfig) -> RLParts:
    """The O1 model (its own template and limits kept), the rows, LoRA or full set-up, the reference."""
    from ..model import O1Embedder

    config.validate()
    o1 = O1Embedder.from_pretrained(config.model, dtype=config.dtype)
    template = o1.template
    data_cfg = DataConfig(group_size=config.group_size, thought_dropout=1.0, seed=config.seed)
    rows = load_rows(config.data, template, data_cfg, warn_no_thought=False)
    reference = None
    if config.adapter.mode == "full":     # under LoRA the reference is the same model, adapters off
        reference = copy.deepcopy(o1.model).eval().requires_grad_(False)
    lm = prepare_model(o1.model, template, config.adapter)
    o1.model = lm
    joint = JointModel(lm, trainable_only_state=config.adapter.mode == "lora")
    return RLParts(o1, joint, reference, template, TrainingSet(rows, template, data_cfg), config)


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
    with torch.no_grad():
        if parts.reference is not None:
            return _thought_logprobs(parts.reference, batch, temperature)
        with parts.lm.disable_adapter():
            return _thought_logprobs(parts.lm, batch, temperature)


def _thought_logprobs(lm: Any, batch: Any, temperature: float) -> torch.Tensor:
    hidden = JointModel(lm)._hidden(batch.ids, batch.mask)                            # [S, T, H]
    logits = lm.get_output_embeddings()(hidden[batch.rows, batch.cols])               # [M, V]
    return objective.token_logprobs(logits, batch.labels, temperature)


def policy_forward(parts: RLParts, batch: Any, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over the sampled sequences -> (thought-token log-probs [M], query vectors [S, H])."""
    hidden = parts.joint._hidden(batch.ids, batch.mask)                             # [S, T, H]
    logits = parts.lm.get_output_embeddings()(hidden[batch.rows, batch.cols])       # [M, V]
    return objective.token_logprobs(logits, batch.labels, temperature), JointModel.pool(hidden)


def rl_step(parts: RLParts, optimizer: Any, scheduler: Any, step: int) -> dict[str, float]:
    """Roll out, reward, update; returns the step's logged numbers (this rank's rows)."""
    config, joint = parts.config, parts.joint
    device = next(joint.parameters()).device
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
            d = joint.encode_docs(d_ids, d_mask)                                       # [B*group, H]
            if old_logp is None:
                rewards = rewards_for(rollout, d, config)
                advantages = objective.group_advantages(rewards, config.samples)
            logp, q = policy_forward(parts, batch, config.rollout_temperature)
            old_logp = logp.detach() if old_logp is None else old_logp
            terms = objective.grpo_terms(logp, old_logp, ref_logp, advantages, batch.token_sample,
                                         clip=config.clip)
            terms["contrastive"] = objective.sample_info_nce(q, d, group_size=config.group_size,
                                                             samples=config.samples,
                                                             temperature=config.temperature)
            loss = objective.rl_loss(terms, kl_coef=config.kl_coef, contrastive_weight=config.contrastive_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainable = [p for p in joint.parameters() if p.requires_grad]
        distributed.average_gradients(trainable)
        if config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        optimizer.step()
        for name, value in {"loss": loss, **terms}.items():
            totals[name] = totals.get(name, 0.0) + float(value.detach()) / config.updates
    scheduler.step()
    return {**totals, "reward_mean": float(rewards.mean()), "reward_std": float(rewards.std()),
            "zero_variance": objective.zero_variance_fraction(rewards, config.samples),
            "thought_tokens": float(rollout.lengths.mean()), "lr": float(scheduler.get_last_lr()[0]),
            "rollout_seconds": rollout_seconds}


# -- checkpoints ----------------------------------------------------------------------------------
def _checkpoints(out: Path) -> list[tuple[int, Path]]:
    found = []
    for path in out.glob("checkpoint-*"):
        tail = path.name.split("-", 1)[1]
        if tail.isdigit() and (path / "state.json").is_file():
            found.append((int(tail), path))
    return sorted(found)


def save_checkpoint(parts: RLParts, optimizer: Any, scheduler: Any, step: int, out: Path) -> None:
    """``OUT/checkpoint-STEP``: trainable tensors and optimizer state (safetensors), counters (JSON)."""
    from safetensors.torch import save_file

    if not distributed.is_main_process():
        return
    final, tmp = out / f"checkpoint-{step}", out / f".checkpoint-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {k: v.detach().cpu().contiguous() for k, v in parts.joint.state_dict().items()}
    save_file(state, str(tmp / "trainable.safetensors"))
    tensors, meta = _flatten_optimizer(optimizer.state_dict())
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "optimizer.json").write_text(json.dumps(meta))
    (tmp / "state.json").write_text(json.dumps({"step": step, "scheduler": scheduler.state_dict()}))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old_step, path in _checkpoints(out)[:-1]:       # keep the newest only
        if old_step != step:
            shutil.rmtree(path, ignore_errors=True)


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer ``state_dict`` as named tensors + JSON (so resuming never unpickles)."""
    tensors, scalars = {}, {}
    for index, slots in state["state"].items():
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *meta["scalars"].items()]:
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def load_checkpoint(parts: RLParts, optimizer: Any, scheduler: Any, path: Path) -> int:
    from safetensors.torch import load_file

    state = load_file(str(path / "trainable.safetensors"))
    missing, unexpected = parts.joint.load_state_dict(state, strict=False)
    if unexpected or set(missing) - set(parts.joint._keys_to_ignore_on_save or []):
        raise InputError(f"checkpoint does not fit this model (missing {len(missing)}, unexpected "
                         f"{len(unexpected)} tensors)", path=path)
    meta = json.loads((path / "optimizer.json").read_text())
    optimizer.load_state_dict(_unflatten_optimizer(load_file(str(path / "optimizer.safetensors")), meta))
    counters = json.loads((path / "state.json").read_text())
    scheduler.load_state_dict(counters["scheduler"])
    return int(counters["step"])


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

    Resumes from the newest ``OUT/checkpoint-*``; ``stop_after`` ends the run after that many steps
    of *this* call (for tests of resuming).
    """
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)                      # LoRA's random A matrices: equal on every rank
    parts = build(config)
    out = Path(config.out)
    if distributed.is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        _write_text(out / CONFIG_FILE, json.dumps(config.to_dict(), indent=2) + "\n")
    optimizer, scheduler = optimizer_for(parts)
    start = 0
    found = _checkpoints(out)
    if found:
        start = load_checkpoint(parts, optimizer, scheduler, found[-1][1])
        logger.info("resuming from %s (step %d of %d)", found[-1][1], start, config.steps)
    log_path = out / LOG_FILE
    _truncate_log(log_path, start)
    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    show = distributed.is_main_process() if show_progress is None else show_progress
    with tqdm(total=config.steps, initial=start, desc="rl", unit="step", disable=not show) as bar:
        for step in range(start, end):
            began = time.perf_counter()
            numbers = rl_step(parts, optimizer, scheduler, step)
            numbers["seconds"] = time.perf_counter() - began
            numbers = _mean_over_ranks(numbers)
            if distributed.is_main_process():
                with open(log_path, "a", encoding="utf-8") as fh:
                    fh.write(_log_line(step + 1, numbers) + "\n")
            bar.set_postfix(_bar_text(numbers))
            bar.update(1)
            done = step + 1
            if config.save_steps and done % config.save_steps == 0 and done < config.steps:
                save_checkpoint(parts, optimizer, scheduler, done, out)
    distributed.barrier()
    if end < config.steps:
        save_checkpoint(parts, optimizer, scheduler, end, out)
        return out
    if not config.export_merged:
        save_checkpoint(parts, optimizer, scheduler, end, out)
        return out
    final = out / "final"
    if distributed.is_main_process():
        lm = parts.lm
        for param in lm.parameters():
            param.requires_grad_(False)
        export_merged(lm, parts.o1.tokenizer, parts.o1.settings, final)
        _write_text(final / CONFIG_FILE, json.dumps(config.to_dict(), indent=2) + "\n")
    distributed.barrier()
    return final


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
