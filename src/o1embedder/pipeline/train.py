"""Training for the recipe: the contrastive-only baseline and one O1 model per expert, all with the same
rows, steps, batch, learning rate, LoRA and loss settings (the baseline's rows carry no thought, so its
loss is the contrastive part alone at the same weight ``lam``); then the optional RL stage.

One process runs ``o1embedder.training.train`` here; ``training.processes`` > 1 runs the library's own
command, ``o1emb train --config`` (and ``o1emb rl --config``), under torchrun with the configuration
this module writes, so a recipe trains exactly as a user's command line would.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..formats import write_json
from ..log import get_logger, quiet
from .recipe import Recipe
from .stages import resolved_device

logger = get_logger(__name__)


def _last_checkpoint(out: Path) -> str | None:
    found = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
    return str(found[-1]) if found else None


def train_config(recipe: Recipe, base: Path, rows: Path, out: Path, deepspeed: str = "", heldout: str = "") -> Any:
    from ..training import DataConfig, LossConfig, TrainConfig

    t = recipe.training
    args = {"per_device_train_batch_size": t.batch_size, "learning_rate": t.learning_rate, "warmup_steps": t.warmup,
            "lr_scheduler_type": "linear", "logging_steps": 5, "save_strategy": "steps", "save_steps": t.save_steps,
            "save_total_limit": 1, "seed": recipe.seed, "use_cpu": resolved_device(recipe.device) == "cpu",
            "dataloader_pin_memory": False,
            **({"max_steps": t.steps} if t.steps else {"num_train_epochs": t.epochs}),
            **({"gradient_checkpointing": True} if t.gradient_checkpointing else {}),
            **({"deepspeed": deepspeed} if deepspeed else {}), **t.training_args}
    return TrainConfig(
        model=str(base), data=str(rows), out=str(out), mixed_precision=t.mixed_precision,
        data_cfg=DataConfig(group_size=t.group_size, thought_dropout=t.thought_dropout, max_query_tokens=t.query_tokens,
                            max_passage_tokens=t.passage_tokens, max_query_thought_tokens=t.query_thought_tokens,
                            seed=recipe.seed),
        loss=LossConfig(temperature=t.temperature, lam=t.lam, lm_warmup_steps=t.lm_warmup_steps,
                        lm_lr_scale=t.lm_lr_scale),
        eval_thoughts=heldout,
        adapter=replace(t.adapter),
        training_args=args)


def set_think_settings(recipe: Recipe, folder: Path) -> None:
    """Record the recipe's thinking settings in ``o1embedder.json`` (weights and fingerprint untouched),
    so the saved model thinks as evaluated when others load it. Written only when they differ: a
    changed ``n_thoughts`` updates a trained model without retraining it."""
    path = folder / "o1embedder.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    wanted = {**recipe.thinking.sampling(), "seed": 0}
    if any(data["think"].get(k) != v for k, v in wanted.items()):
        data["think"].update(wanted)
        write_json(path, data)


def launch(command: str, config: Any, out: Path, processes: int) -> None:
    """``o1emb COMMAND --config OUT/COMMAND.yaml`` under torchrun with ``processes`` ranks."""
    from ..errors import O1Error
    from ..formats import atomic_write
    from ..options import to_yaml

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{command}.yaml"
    with atomic_write(path) as handle:
        handle.write(to_yaml(config))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", "o1embedder", "--log-level", "WARNING", command, "--config", str(path)]
    logger.info("running %s", " ".join(cmd))
    done = subprocess.run(cmd, check=False)
    if done.returncode != 0:
        raise O1Error(f"{' '.join(cmd)} failed with exit code {done.returncode}")


def _logged(out: Path) -> list[dict[str, Any]]:
    """Losses logged up to the newest checkpoint (its ``trainer_state.json``): what a resumed run, or a
    run in other processes, logged before."""
    last = _last_checkpoint(out)
    state = Path(last) / "trainer_state.json" if last else None
    if state is None or not state.is_file():
        return []
    return [r for r in json.loads(state.read_text(encoding="utf-8")).get("log_history", []) if "contrastive" in r]


def hold_out(recipe: Recipe, rows: Path, scored: bool, out: Path) -> tuple[Path, str]:
    """``training.heldout_thoughts`` rows (a seeded sample of the row ids, the same for every model)
    taken out of ``rows``; with ``scored`` (the O1 models) those of them that carry the expert's
    thought are written for scoring. Returns (the rows to train on, the held-out file or '')."""
    from ..formats import read_training_rows, write_jsonl
    from .data import heldout_sample

    if not recipe.training.heldout_thoughts or recipe.training.heldout_from != "train":
        return rows, ""
    found = read_training_rows(rows)
    held = heldout_sample(recipe, [r.id for r in found])
    kept, thoughts = out / "train-rows.jsonl", out / "heldout-thoughts.jsonl"
    write_jsonl(kept, (r.to_dict() for r in found if r.id not in held))
    if not scored:
        return kept, ""
    write_jsonl(thoughts, (r.to_dict() for r in found if r.id in held and (r.thought or "").strip()))
    return kept, str(thoughts)


def score_heldout(recipe: Recipe, base: Path, model: Path, rows: Path, out: Path) -> Path:
    """The thought LM loss (:func:`o1embedder.training.thought_lm_loss`, at the training run's length
    limits) of ``base`` (before training) and of ``model`` (after) on the thoughts of ``rows``, written
    to ``out`` as ``o1emb train``'s ``thought_lm.json`` is (``before`` / ``after``); rows without a
    thought are not scored (none: both ``null``)."""
    from ..formats import read_training_rows, write_json
    from ..training import thought_lm_loss

    t = recipe.training
    scored = [r for r in read_training_rows(rows) if (r.thought or "").strip()]
    found: dict[str, Any] = {"eval_thoughts": str(rows), "source": "validation", "rows": len(scored), "tokens": 0,
                             "before": None, "after": None}
    if scored:
        limits = {"max_query_tokens": t.query_tokens, "max_query_thought_tokens": t.query_thought_tokens,
                  "device": resolved_device(recipe.device)}
        before, after = (thought_lm_loss(m, scored, **limits) for m in (base, model))
        found.update(tokens=before.tokens, before={"step": 0, "thought_lm": before.loss},
                     after={"thought_lm": after.loss})
        logger.info("%s: held-out thought LM loss %.4f -> %.4f (%d validation rows, %d tokens)", model.parent.name,
                    before.loss, after.loss, len(scored), before.tokens)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, found)
    return out


def train_model(recipe: Recipe, name: str, base: Path, rows: Path, deepspeed: str = "") -> Path:
    """``models/NAME/final``: a merged O1 model (an ``O1Embedder`` folder); cached. With
    ``training.heldout_thoughts`` an O1 model's held-out rows' thoughts are scored before and after."""
    from ..training import LossHistory, train

    out = recipe.root / "models" / name
    final = out / "final"
    if (final / "o1embedder.json").is_file() and (out / "losses.json").is_file():
        return final
    out.mkdir(parents=True, exist_ok=True)
    rows, heldout = hold_out(recipe, rows, name.startswith("o1-"), out)
    config = train_config(recipe, base, rows, out, deepspeed, heldout)
    if recipe.training.processes > 1:
        launch("train", config, out, recipe.training.processes)
        history = _logged(out)
    else:                       # a killed run resumes its newest checkpoint (o1emb train's rule)
        before, losses = _logged(out), LossHistory()
        with quiet("transformers", logging.WARNING):
            train(config, callbacks=[losses])
        done = max((r["step"] for r in before), default=0)
        history = before + [r for r in losses.history if r["step"] > done]
    set_think_settings(recipe, final)
    write_json(out / "losses.json", history)
    if history:
        first, last = history[0], history[-1]
        logger.info("%s: contrastive %.3f -> %.3f, thought LM %s -> %s", name, first.get("contrastive", 0),
                    last.get("contrastive", 0), first.get("thought_lm"), last.get("thought_lm"))
    return final


def rl_config(recipe: Recipe, model: Path, rows: Path, out: Path) -> Any:
    from ..rl.config import RLConfig

    r, t = recipe.rl, recipe.training
    return RLConfig(
        model=str(model), data=str(rows), out=str(out), steps=r.steps, rows_per_step=r.rows_per_step,
        samples=r.samples, group_size=t.group_size, rollout_temperature=r.rollout_temperature,
        max_new_tokens=recipe.thinking.max_new_tokens, temperature=t.temperature, kl_coef=r.kl_coef,
        contrastive_weight=r.contrastive_weight, learning_rate=r.learning_rate, mixed_precision=t.mixed_precision,
        resample=r.resample,
        save_steps=r.save_steps, seed=recipe.seed, device=resolved_device(recipe.device),
        adapter=replace(t.adapter, dropout=0.0))


def rl_model(recipe: Recipe, name: str, model: Path, rows: Path) -> Path:
    """``models/NAME/final``: GRPO on thoughts from the trained ``model``; cached, resumable."""
    from ..rl import rl

    out = recipe.root / "models" / name
    final = out / "final"
    if not (final / "o1embedder.json").is_file():
        config = rl_config(recipe, model, rows, out)
        if recipe.training.processes > 1:
            launch("rl", config, out, recipe.training.processes)
        else:
            with quiet("transformers", logging.WARNING):
                rl(config, show_progress=True)
        set_think_settings(recipe, final)
    return final


def rl_summary(out: Path) -> dict[str, Any]:
    """A summary of an RL run's log (``OUT/rl_log.jsonl``): steps, first and last step's numbers."""
    from ..rl.loop import read_log

    log = read_log(out / "rl_log.jsonl")
    keys = ("reward_mean", "kl", "thought_tokens", "zero_variance")
    return {"steps": len(log), "first": {k: log[0].get(k) for k in keys} if log else None,
            "last": {k: log[-1].get(k) for k in keys} if log else None}
