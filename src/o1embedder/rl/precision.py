"""Loss scaling of an RL step under ``mixed_precision: fp16`` (the autocast itself: ``parts.autocast_for``).

bf16 needs no loss scaling (its exponent range is float32's); fp16 does: the loss is scaled before
the backward, the gradients are unscaled before clipping, and a step whose gradients hold an inf or
NaN is skipped while the scale shrinks (``torch.amp.GradScaler``). Master weights stay in ``dtype``.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch

_SCALERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
INIT_SCALE = 2.0 ** 10
"""The first loss scale: lower than torch's 2**16, because a step whose gradients overflow is skipped
(and the scale halved), and an RL step skipped wastes its rollout; the tiny test model overflows from
2**13 up."""
GROWTH_INTERVAL = 100
"""Steps without an overflow after which the scale doubles (torch: 2000, more steps than most RL runs)."""


def grad_scaler(optimizer: Any, mode: str, device: torch.device) -> Any:
    """The gradient scaler of ``optimizer``'s steps: one per optimizer (its scale carries over from step
    to step), enabled under ``fp16`` only (``auto`` never means fp16); disabled, it passes ``scale``,
    ``unscale_``, ``step`` and ``update`` straight through. Not checkpointed: a resumed run starts
    from the initial scale again."""
    scaler = _SCALERS.get(optimizer)
    if scaler is None:
        scaler = _SCALERS[optimizer] = torch.amp.GradScaler(device.type, init_scale=INIT_SCALE,
                                                            growth_interval=GROWTH_INTERVAL,
                                                            enabled=mode == "fp16")
    return scaler
