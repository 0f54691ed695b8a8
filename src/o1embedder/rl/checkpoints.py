"""RL checkpoints, and the run record that decides whether one may be resumed.

``OUT/checkpoint-N`` holds the trainable tensors and the AdamW state as safetensors (nothing is
unpickled), the counters as JSON, and the run record (:mod:`o1embedder.resume`, ``run.provenance.json``):
every setting that shapes the numbers and the fingerprints of the starting model and the data file.
``OUT/final`` and ``OUT`` carry the same record. A run resumes or returns a finished output only when
the records agree; otherwise :func:`resume.plan` names the first setting that differs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from .. import distributed, resume
from ..errors import InputError
from ..provenance import Record
from .config import RLConfig

# Settings that cannot change a run's numbers: where it writes, how often it checkpoints, whether it
# exports, the device (a run may resume on another machine; DDP over R ranks equals one process) and
# the log-probability chunk (it changes float rounding only, tests/test_rl_logprobs.py).
# The model and data *paths* are left out too: their contents are fingerprinted instead (a moved
# folder resumes, a retrained model or an edited file is refused).
FREE_SETTINGS = frozenset({"out", "save_steps", "export_merged", "device", "model", "data", "logprob_chunk"})


LATER_SETTINGS = {"resample": 0}
"""Settings added after RL runs were first recorded: a run recorded before them (it ran as their
defaults do) still resumes."""


def run_record(config: RLConfig) -> Record:
    """What a checkpoint, ``OUT/final`` and ``OUT`` are made from: every setting that shapes the
    numbers, and the fingerprints of the starting model and the data file."""
    settings = {k: v for k, v in config.to_dict().items() if k not in FREE_SETTINGS}
    for key, default in LATER_SETTINGS.items():     # added later: recorded only away from the default
        if settings.get(key) == default:
            settings.pop(key)
    return resume.run_record("rl", settings, model=config.model, data=config.data)


def save_checkpoint(parts: Any, optimizer: Any, scheduler: Any, step: int, out: Path, record: Record) -> None:
    """``OUT/checkpoint-STEP``: trainable tensors and optimizer state (safetensors), counters (JSON),
    the run record; written under a temporary name and renamed. Keeps the newest checkpoint only."""
    from safetensors.torch import save_file

    if not distributed.is_main_process():
        return
    with resume.staged(out / f"{resume.CHECKPOINT}{step}", record, step=step) as tmp:
        state = {k: v.detach().cpu().contiguous() for k, v in parts.joint.state_dict().items()}
        save_file(state, str(tmp / "trainable.safetensors"))
        tensors, meta = _flatten_optimizer(optimizer.state_dict())
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "optimizer.json").write_text(json.dumps(meta))
        (tmp / "state.json").write_text(json.dumps({"step": step, "scheduler": scheduler.state_dict()}))
    for old_step, path in resume.checkpoints(out):
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


def load_checkpoint(parts: Any, optimizer: Any, scheduler: Any, path: Path) -> int:
    """Restore ``path`` into the parts, optimizer and schedule; returns its step."""
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
