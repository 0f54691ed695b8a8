"""``o1emb rl --mixed-precision fp16``: fp16 autocast with loss scaling (``torch.amp.GradScaler``) around
the backward, the clipping and the optimizer step; on the CPU too (torch >= 2.3 has both there)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")

from o1embedder.rl.config import RLConfig  # noqa: E402
from o1embedder.rl.loop import build, optimizer_for, rl_step  # noqa: E402
from o1embedder.rl.precision import grad_scaler  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "dist_scripts"))
from helpers import simple_rows, write_rows  # noqa: E402


def _parts(model: Path, tmp_path: Path, mode: str):
    data = write_rows(tmp_path / "rows.jsonl", simple_rows(6, 3))
    config = RLConfig.from_dict(dict(model=str(model), data=str(data), out=str(tmp_path / "rl"), steps=2,
                                     rows_per_step=4, samples=3, group_size=2, max_new_tokens=6,
                                     learning_rate=1e-2, warmup_steps=0, mixed_precision=mode, save_steps=0,
                                     adapter={"mode": "full"}))
    return build(config)


def test_two_fp16_steps_have_finite_losses_and_move_the_weights(tiny_qwen_path: Path, tmp_path: Path) -> None:
    parts = _parts(tiny_qwen_path, tmp_path, "fp16")
    trainable = {n: p for n, p in parts.joint.named_parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in trainable.items()}
    optimizer, scheduler = optimizer_for(parts)
    logs = [rl_step(parts, optimizer, scheduler, step) for step in range(2)]
    scaler = grad_scaler(optimizer, "fp16", parts.device)
    assert scaler.is_enabled() and scaler.get_scale() > 0
    for numbers in logs:
        assert all(math.isfinite(numbers[k]) for k in ("loss", "policy", "contrastive", "reward_mean")), numbers
    assert all(p.dtype == torch.float32 for p in trainable.values())          # master weights stay float32
    moved = max(float((p.detach() - before[n]).abs().max()) for n, p in trainable.items())
    assert moved > 0


def test_without_fp16_the_scaler_passes_through(tiny_qwen_path: Path, tmp_path: Path) -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    for mode in ("no", "bf16", "auto"):
        assert not grad_scaler(torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1), mode,
                               torch.device("cpu")).is_enabled()
    scaler = grad_scaler(optimizer, "no", torch.device("cpu"))
    loss = (optimizer.param_groups[0]["params"][0] ** 2).sum()
    assert scaler.scale(loss) is loss
