"""RL checkpoints and the provenance that decides whether one may be resumed.

``OUT/checkpoint-N`` holds the trainable tensors and the AdamW state as safetensors (nothing is
unpickled), the counters as JSON, and the run's provenance: every setting that shapes the numbers and
the fingerprints of the starting model and the data file. ``OUT/final`` carries the same record
(``rl_provenance.json``). A run resumes or returns a finished output only when the records agree;
otherwise :func:`check_provenance` names the first setting that differs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from .. import distributed
from ..errors import InputError
from .config import RLConfig

# Settings that cannot change a run's numbers: where it writes, how often it checkpoints, whether it
# exports, the device (a run may resume on another machine; DDP over R ranks equals one process) and
# the log-probability chunk (it changes float rounding only, tests/test_rl_logprobs.py).
# The model and data *paths* are left out too: their contents are fingerprinted instead (a moved
# folder resumes, a retrained model or an edited file is refused).
FREE_SETTINGS = frozenset({"out", "save_steps", "export_merged", "device", "model", "data", "logprob_chunk"})


def provenance(parts: Any) -> dict[str, Any]:
    """What a checkpoint or ``OUT/final`` was made from: every setting that shapes the numbers, and
    the fingerprints of the starting model and the data file."""
    settings = {k: v for k, v in parts.config.to_dict().items() if k not in FREE_SETTINGS}
    return {"settings": settings, "source": dict(parts.source or {})}


def _flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_provenance(found: dict[str, Any] | None, current: dict[str, Any], where: Path) -> None:
    """Refuse to resume (or to call finished) a run made with other settings or from other inputs."""
    old, new = _flat(found or {}), _flat(current)
    if not old:
        raise InputError(f"{where} records no settings (made by an older version?): use another --out "
                         "or delete it")
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            name = key.removeprefix("settings.").replace("source.model", "the model's weights").replace(
                "source.data", "the data file")
            raise InputError(f"{where} was made with {name} = {old.get(key)!r}, this run has "
                             f"{new.get(key)!r}: rerun with the same settings to resume, or use another --out")


PROVENANCE_FILE = "rl_provenance.json"


def finished(out: Path, config: RLConfig) -> Path | None:
    """Where a finished run of ``out`` lives (``OUT/final``, or the last checkpoint without export)."""
    final = out / "final"
    if config.export_merged and (final / PROVENANCE_FILE).is_file():
        return final
    found = checkpoints(out)
    if not config.export_merged and found and found[-1][0] == config.steps:
        return found[-1][1]
    return None


def recorded(where: Path) -> dict[str, Any] | None:
    path = where / PROVENANCE_FILE if where.name == "final" else where / "state.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if where.name == "final" else data.get("provenance")


def checkpoints(out: Path) -> list[tuple[int, Path]]:
    found = []
    for path in out.glob("checkpoint-*"):
        tail = path.name.split("-", 1)[1]
        if tail.isdigit() and (path / "state.json").is_file():
            found.append((int(tail), path))
    return sorted(found)


def save_checkpoint(parts: Any, optimizer: Any, scheduler: Any, step: int, out: Path) -> None:
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
    (tmp / "state.json").write_text(json.dumps({"step": step, "scheduler": scheduler.state_dict(),
                                                "provenance": provenance(parts)}))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old_step, path in checkpoints(out)[:-1]:       # keep the newest only
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
