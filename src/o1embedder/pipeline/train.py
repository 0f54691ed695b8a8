"""Joint LoRA training of SmolLM2 for the recipe: the O1 models and the contrastive-only baseline.

Every model trains with the same rows, steps, batch, group, learning rate, LoRA and loss settings; the
baseline's rows simply carry no thought (so its loss is the contrastive part alone, at the same weight
``lam``: the same effective learning rate for the contrastive gradient). Checkpoints every 20 steps
make a killed run resume where it stopped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..formats import write_json
from ..log import get_logger
from .config import RealConfig

logger = get_logger(__name__)


def _last_checkpoint(out: Path) -> str | None:
    found = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
    return str(found[-1]) if found else None


def train_config(config: RealConfig, base: Path, rows: Path, out: Path) -> Any:
    from ..training import AdapterConfig, DataConfig, LossConfig, TrainConfig

    args = {"max_steps": config.steps, "per_device_train_batch_size": config.batch_size,
            "learning_rate": config.learning_rate, "warmup_steps": 0.1, "lr_scheduler_type": "linear",
            "logging_steps": 5, "save_strategy": "steps", "save_steps": 20, "save_total_limit": 1,
            "seed": config.seed, "use_cpu": config.resolved_device() == "cpu", "dataloader_pin_memory": False,
            "resume_from_checkpoint": _last_checkpoint(out)}
    return TrainConfig(
        model=str(base), data=str(rows), out=str(out), mixed_precision="auto",
        data_cfg=DataConfig(group_size=config.group_size, thought_dropout=config.thought_dropout,
                            max_passage_tokens=config.passage_tokens,
                            max_query_thought_tokens=config.query_thought_tokens, seed=config.seed),
        loss=LossConfig(temperature=config.temperature, lam=config.lam),
        adapter=AdapterConfig(r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout),
        training_args=args)


def set_think_settings(config: RealConfig, folder: Path) -> None:
    """Record the recipe's thinking settings in ``o1embedder.json`` (weights and fingerprint untouched),
    so the saved model thinks as evaluated when others load it. Written only when they differ: a
    changed ``n_thoughts`` updates a trained model without retraining it."""
    path = folder / "o1embedder.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    wanted = {"n_thoughts": config.n_thoughts, "temperature": config.think_temperature,
              "top_p": config.think_top_p, "max_new_tokens": config.think_max_new_tokens, "seed": 0}
    if any(data["think"].get(k) != v for k, v in wanted.items()):
        data["think"].update(wanted)
        write_json(path, data)


def train_model(config: RealConfig, name: str, base: Path, rows: Path) -> Path:
    """``models/NAME/final``: a merged O1 model (an ``O1Embedder`` folder); cached."""
    from ..training import LossHistory, train

    out = config.root / "models" / name
    final = out / "final"
    if (final / "o1embedder.json").is_file() and (out / "losses.json").is_file():
        return final
    losses = LossHistory()
    logging.getLogger("transformers").setLevel(logging.WARNING)
    train(train_config(config, base, rows, out), callbacks=[losses])
    set_think_settings(config, final)
    write_json(out / "losses.json", losses.history)
    if losses.history:
        first, last = losses.history[0], losses.history[-1]
        logger.info("%s: contrastive %.3f -> %.3f, thought LM %s -> %s", name, first.get("contrastive", 0),
                    last.get("contrastive", 0), first.get("thought_lm"), last.get("thought_lm"))
    return final


def rl_model(config: RealConfig, name: str, model: Path, rows: Path) -> Path:
    """``models/NAME/final``: GRPO on thoughts (LoRA, bf16 autocast) from the trained ``model``; cached,
    resumable (checkpoints every 5 steps)."""
    from dataclasses import fields

    from ..rl.config import RLConfig
    from ..rl.loop import rl
    from ..training import AdapterConfig

    out = config.root / "models" / name
    final = out / "final"
    if not (final / "o1embedder.json").is_file():
        rl_config = RLConfig(
            model=str(model), data=str(rows), out=str(out), steps=config.rl_steps,
            rows_per_step=config.rl_rows_per_step, samples=config.rl_samples, group_size=config.group_size,
            rollout_temperature=config.rl_rollout_temperature, max_new_tokens=config.think_max_new_tokens,
            temperature=config.temperature, kl_coef=config.rl_kl_coef,
            contrastive_weight=config.rl_contrastive_weight, learning_rate=config.rl_learning_rate,
            mixed_precision="auto", save_steps=5, seed=config.seed,
            adapter=AdapterConfig(r=config.lora_r, alpha=config.lora_alpha, dropout=0.0))
        if "device" in {f.name for f in fields(RLConfig)}:      # RLConfig.device: "" = CUDA when present
            rl_config.device = config.resolved_device()
        logging.getLogger("transformers").setLevel(logging.WARNING)
        rl(rl_config, show_progress=True)
        set_think_settings(config, final)
    return final


def rl_summary(out: Path) -> dict[str, Any]:
    """A summary of an RL run's log (``OUT/rl_log.jsonl``): steps, first and last step's numbers."""
    from ..rl.loop import read_log

    log = read_log(out / "rl_log.jsonl")
    keys = ("reward_mean", "kl", "thought_tokens", "zero_variance")
    return {"steps": len(log), "first": {k: log[0].get(k) for k in keys} if log else None,
            "last": {k: log[-1].get(k) for k in keys} if log else None}
