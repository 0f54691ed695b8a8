"""``train(config)``: the one library function behind ``o1emb train``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import distributed, resume
from ..errors import InputError
from ..log import get_logger
from ..provenance import Record
from ..templates import Template
from .adapters import export_merged, lm_only_parameters, prepare_model
from .config import TrainConfig
from .data import JointCollator, TrainingSet, load_rows
from .forward import JointModel
from .heldout import HeldOutThoughts, thought_rows
from .trainer import (
    EpochDraws,
    LossBar,
    LossLines,
    NothingLeft,
    O1Trainer,
    SaveConfigCallback,
    StopWhenDone,
    save_config,
)

logger = get_logger(__name__)

# Reference settings (method.md section 3) where they differ from the Trainer's defaults.
DEFAULT_TRAINING_ARGS: dict[str, Any] = {
    "learning_rate": 1e-4, "warmup_steps": 0.1, "num_train_epochs": 1, "lr_scheduler_type": "linear",
    "per_device_train_batch_size": 8, "logging_steps": 10, "save_strategy": "epoch", "report_to": "none",
    "remove_unused_columns": False, "dataloader_drop_last": False,
}

# What a run's record leaves out (resume.py): where it writes and reads (the model and data are
# fingerprinted instead), whether it exports, the device, and the TrainingArguments that cannot change the numbers -
# cadence of logs, saves and evaluation, reporting, devices and launch plumbing, data-loader workers,
# activation checkpointing (memory only), resuming. bf16/fp16 count only when given: otherwise
# ``mixed_precision`` (recorded) chose them for the hardware, and a run may resume on other hardware.
FREE_SETTINGS = frozenset({"model", "data", "out", "export_merged", "device", "training_args", "eval_thoughts",
                           "eval_thoughts_steps"})
# Settings added after runs were first recorded: recorded only away from their defaults, so that a run
# recorded before they existed (it trained as their defaults do) still resumes.
LATER_SETTINGS = {("loss", "lm_warmup_steps"): 0, ("loss", "lm_lr_scale"): 1.0}
FREE_ARGS = frozenset({
    "output_dir", "overwrite_output_dir", "run_name", "project", "report_to", "disable_tqdm", "debug",
    "resume_from_checkpoint", "do_train", "do_eval", "do_predict", "skip_memory_metrics", "push_to_hub",
    "use_cpu", "no_cuda", "use_mps_device", "local_rank", "per_device_eval_batch_size", "prediction_loss_only",
    "load_best_model_at_end", "metric_for_best_model", "greater_is_better", "batch_eval_metrics",
    "bf16_full_eval", "fp16_full_eval", "enable_jit_checkpoint", "torch_empty_cache_steps",
    "dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers",
    "dataloader_prefetch_factor", "dataloader_multiprocessing_context", "dataloader_in_order",
    "gradient_checkpointing", "gradient_checkpointing_kwargs", "activation_checkpointing",
    "activation_checkpointing_kwargs"})
FREE_ARG_PREFIXES = ("logging_", "log_", "save_", "eval_", "hub_", "trackio_", "include_", "ddp_", "tpu_")


@dataclass
class TrainingParts:
    """What :func:`build` assembles: enough for the Trainer, tests and benchmarks."""

    model: JointModel
    tokenizer: Any
    settings: Any
    template: Template
    dataset: TrainingSet
    collator: JointCollator


def load_base(config: TrainConfig) -> tuple[Any, Any, Any]:
    """The base causal LM, its tokenizer (four tokens added if missing) and O1 settings with our limits."""
    from ..model import O1Embedder

    base = O1Embedder.from_pretrained(config.model, device="cpu", dtype=config.dtype,
                                      template=config.data_cfg.template())
    return base.model, base.tokenizer, base.settings


def build(config: TrainConfig) -> TrainingParts:
    config.validate()
    lm, tokenizer, settings = load_base(config)
    template = Template(tokenizer, settings.template)
    rows = load_rows(config.data, template, config.data_cfg, need_scores=config.loss.distill)
    dataset = TrainingSet(rows, template, config.data_cfg, with_scores=config.loss.distill)
    lm = prepare_model(lm, template, config.adapter)
    lm_only_parameters(lm, config.loss.lm_lr_scale)        # refuses a scale with nothing to scale
    model = JointModel(lm, trainable_only_state=config.adapter.mode == "lora")
    return TrainingParts(model, tokenizer, settings, template, dataset, JointCollator(tokenizer.pad_token_id))


def mixed_precision_args(config: TrainConfig) -> dict[str, Any]:
    """``{"bf16": True}`` / ``{"fp16": True}`` / ``{}`` from ``config.mixed_precision``.

    ``auto`` turns bf16 autocast on where the hardware computes bf16 natively: CUDA with bf16, and
    CPUs with AMX / AVX512-BF16 (the Trainer then runs ``torch.autocast("cpu", bfloat16)``). A bf16 or
    fp16 flag given in ``training_args`` wins.
    """
    if "bf16" in config.training_args or "fp16" in config.training_args:
        return {}
    mode = config.mixed_precision
    if mode == "auto":
        import torch

        from ..checkpoints import auto_dtype

        use_cpu = bool(config.training_args.get("use_cpu")) or not torch.cuda.is_available()
        device = torch.device("cpu" if use_cpu else "cuda")
        mode = "bf16" if auto_dtype(device) == torch.bfloat16 else "no"
        if mode == "bf16":
            logger.info("mixed precision: bf16 autocast (%s with native bf16)", device.type)
    out: dict[str, Any] = {"bf16": True} if mode == "bf16" else {"fp16": True} if mode == "fp16" else {}
    if out:
        import torch

        if not torch.cuda.is_available():
            out["use_cpu"] = True         # the Trainer refuses bf16 without a GPU unless told it is on CPU
    return out


def warmup_as_ratio_where_needed(kwargs: dict[str, Any]) -> dict[str, Any]:
    """transformers 5 reads a ``warmup_steps`` below 1 as a share of the steps; 4.x wants an integer
    and has ``warmup_ratio`` for that, so a fraction moves there (without overriding a given ratio)."""
    import transformers

    steps = kwargs.get("warmup_steps")
    old = int(transformers.__version__.split(".")[0]) < 5
    if old and isinstance(steps, float) and 0 < steps < 1:
        kwargs = {k: v for k, v in kwargs.items() if k != "warmup_steps"}
        kwargs.setdefault("warmup_ratio", steps)
    return kwargs


def training_arguments(config: TrainConfig) -> Any:
    import torch
    from transformers import TrainingArguments

    # Without CUDA the Trainer must be told it is on CPU: otherwise accelerate sees torchrun's ranks
    # but no accelerator, runs each rank as a lone process (no DDP, no data sharding) and every rank
    # trains, and writes, a copy of the same job.
    on_cpu = {} if torch.cuda.is_available() else {"use_cpu": True}
    kwargs = warmup_as_ratio_where_needed({**DEFAULT_TRAINING_ARGS, **on_cpu, **mixed_precision_args(config),
                                          **config.training_args, "output_dir": config.out})
    try:
        return TrainingArguments(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad Trainer argument: {exc}") from None


def run_record(config: TrainConfig, args: Any) -> Record:
    """What ``OUT``, its checkpoints and ``OUT/final`` are made from (:mod:`o1embedder.resume`): our
    settings, the effective TrainingArguments that shape the numbers (a flag given at its default
    equals one left out), the number of processes (per-device batch x processes is the batch), and
    the fingerprints of the starting model and the data file."""
    given = config.training_args
    trainer = {k: v for k, v in args.to_dict().items()
               if k not in FREE_ARGS and not k.startswith(FREE_ARG_PREFIXES) and (k not in ("bf16", "fp16") or k in given)}
    settings = {k: v for k, v in config.to_dict().items() if k not in FREE_SETTINGS}
    for (section, key), default in LATER_SETTINGS.items():
        if settings[section].get(key) == default:
            del settings[section][key]
    settings.update(training_args=trainer, world_size=distributed.world_size())
    return resume.run_record("train", settings, model=config.model, data=config.data)


def explicit_checkpoint(args: Any) -> str | None:
    """A checkpoint named with ``resume_from_checkpoint`` (``true`` names none: the newest, which a
    rerun resumes anyway)."""
    given = args.resume_from_checkpoint
    if isinstance(given, bool) or str(given).lower() in {"", "none", "true", "false"}:
        return None
    return str(given)


def refuse_zero3(config: TrainConfig) -> None:
    """DeepSpeed ZeRO-3 partitions the weights while the model loads (``zero.Init``): each rank holds
    a slice of every tensor, whereas the O1 loader checks the vocabulary against the embedding, adds
    the special tokens, fingerprints and exports whole tensors. Tried on 2 CPU ranks (2026-12-06): it
    stops at the embedding check (0 rows). Refused up front rather than failing midway; ZeRO-2 (tested)
    shards the optimizer state and gradients, FSDP the weights too."""
    import json

    given = config.training_args.get("deepspeed")
    if not given:
        return
    try:
        ds = given if isinstance(given, dict) else json.loads(Path(given).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the DeepSpeed config: {exc}", path=str(given)) from None
    if int((ds.get("zero_optimization") or {}).get("stage", 0)) == 3:
        raise InputError("DeepSpeed ZeRO-3 is not supported (it partitions the weights at load; the O1 loader "
                         "needs whole tensors): use ZeRO-2 (examples/train_deepspeed_zero2.json) or FSDP",
                         path=None if isinstance(given, dict) else str(given))


def train(config: TrainConfig, *, callbacks: list[Any] | None = None) -> Path:
    """Train per ``config``; return the merged O1 model folder (``OUT/final``), or ``OUT`` without export.

    Resumes by the rule of :mod:`o1embedder.resume`: from the newest ``OUT/checkpoint-N`` made with
    the same settings, model and data (a checkpoint named in ``training_args.resume_from_checkpoint``
    wins); a finished run is returned as it is, nothing retrained; anything else in ``OUT`` is refused
    (:class:`InputError` names the first setting that differs). Under torchrun rank 0 decides for all.
    """
    from transformers import set_seed
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    # torchrun: join the process group (our timeout, each rank on its own device) before the Trainer's
    # accelerate state, which keeps a group that already exists.
    refuse_zero3(config)
    config.validate()
    distributed.init_from_env("cpu" if config.training_args.get("use_cpu") else None)
    args = training_arguments(config)
    if args.dataloader_persistent_workers and args.dataloader_num_workers > 0:
        raise InputError("dataloader_persistent_workers is not supported: the workers would keep the first "
                         "epoch's copy of the data, so every epoch would train on epoch 0's negatives and thought "
                         "dropout; leave it off (workers are then started afresh each epoch)")
    out = Path(config.out)
    record = run_record(config, args)
    explicit = explicit_checkpoint(args)
    plan = resume.decide(out, record, final=config.export_merged, explicit=explicit)
    if plan.finished:
        logger.info("%s: this run already finished with these settings; nothing to do", plan.path)
        return plan.path
    set_seed(args.seed)                      # LoRA's random init must be the same on every rank / resume
    parts = build(config)
    heldout = thought_rows(config.eval_thoughts, parts.template) if config.eval_thoughts else None
    resume.begin(out, record)
    if distributed.is_main_process():
        save_config(config, out)
    trainer = O1Trainer(model=parts.model, args=args, train_dataset=parts.dataset,
                        data_collator=parts.collator, loss_config=config.loss, gradcache=config.gradcache,
                        callbacks=[SaveConfigCallback(config, parts.tokenizer, record), EpochDraws(parts.dataset),
                                   *(callbacks or [])])
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and not trainer.is_fsdp_enabled:
        # accelerate turns an FSDP launch config into FSDP for GPU-class devices only; on the CPU it
        # runs plain DDP (measured: the same losses as DDP to the printed digits), so say so
        logger.warning("FSDP was asked for, but accelerate runs FSDP on GPUs only: this run uses DDP "
                       "(every rank holds the whole model)")
    if trainer.pop_callback(ProgressCallback) is not None:       # the bar shows the loss parts instead
        trainer.add_callback(LossBar())
    if trainer.pop_callback(PrinterCallback) is not None:        # no bar: compact log lines, not dicts
        trainer.add_callback(LossLines())
    if heldout is not None:                  # before StopWhenDone: a run with nothing left still scores
        trainer.add_callback(HeldOutThoughts(trainer, parts.template, heldout, pad_id=parts.tokenizer.pad_token_id,
                                             source=config.eval_thoughts, out=out, every=config.eval_thoughts_steps))
    trainer.add_callback(StopWhenDone())
    if plan.checkpoint is not None:
        logger.info("resuming from %s", plan.checkpoint)
    try:
        trainer.train(resume_from_checkpoint=None if plan.checkpoint is None else str(plan.checkpoint))
    except NothingLeft:
        logger.info("%s is the run's last step: nothing left to train", plan.checkpoint)
        trainer.callback_handler.on_train_end(args, trainer.state, trainer.control)
    distributed.barrier()
    if not config.export_merged:
        resume.finish(out, record, steps=trainer.state.global_step)
        return out
    final = out / resume.FINAL
    if distributed.is_main_process():
        lm = trainer.accelerator.unwrap_model(trainer.model).lm
        with resume.staged(final, record, steps=trainer.state.global_step) as tmp:
            export_merged(lm, parts.tokenizer, parts.settings, tmp)
            save_config(config, tmp)
        resume.finish(out, record, steps=trainer.state.global_step, final=resume.FINAL)
    distributed.barrier()
    return final
