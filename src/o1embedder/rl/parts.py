"""What an RL run is made of (:class:`RLParts`) and how :func:`build` puts it together: the O1 model
(its own template and limits kept) with its LM wrapped for training (LoRA or full), the rows, the
reference model before RL, and the gradient-carrying module (:mod:`.policy`); the run's autocast."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any

import torch

from .. import distributed
from ..templates import Template
from ..training.adapters import prepare_model
from ..training.config import DataConfig
from ..training.data import TrainingSet, load_rows
from ..training.forward import JointModel
from .config import RLConfig


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
    policy: Any = None
    """The module whose forward carries every gradient of a step (:class:`~.policy.PolicyModule`,
    DDP-wrapped under several processes); set by :func:`build`."""

    @property
    def lm(self) -> Any:
        return self.joint.lm


def build(config: RLConfig) -> RLParts:
    """The O1 model (its own template and limits kept), the rows, LoRA or full set-up, the reference."""
    from ..model import O1Embedder
    from .policy import wrap_policy

    config.validate()
    device = distributed.init_from_env(config.device or None)
    o1 = O1Embedder.from_pretrained(config.model, device=device, dtype=config.dtype)
    template = o1.template
    data_cfg = DataConfig(group_size=config.group_size, thought_dropout=1.0, seed=config.seed)
    rows = load_rows(config.data, template, data_cfg, warn_no_thought=False)
    reference = None
    if config.adapter.mode == "full":     # under LoRA the reference is the same model, adapters off
        reference = copy.deepcopy(o1.model).eval().requires_grad_(False)
    lm = prepare_model(o1.model, template, config.adapter)
    o1.model = lm
    joint = JointModel(lm, trainable_only_state=config.adapter.mode == "lora")
    parts = RLParts(o1, joint, reference, template, TrainingSet(rows, template, data_cfg), config, device)
    parts.policy = wrap_policy(parts)
    return parts


def autocast_for(config: RLConfig, device: torch.device) -> Any:
    """bf16 or fp16 autocast where asked, or (``auto``) bf16 where the hardware computes it natively."""
    from ..checkpoints import auto_dtype

    mode = config.mixed_precision
    if mode == "auto":
        mode = "bf16" if auto_dtype(device) == torch.bfloat16 else "no"
    if mode == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if mode == "fp16":              # with loss scaling in the step (precision.grad_scaler)
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()
