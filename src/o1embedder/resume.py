"""One checkpoint-and-resume rule for ``o1emb train`` and ``o1emb rl``, on :mod:`o1embedder.provenance`.

A run's record (:func:`run_record`) is a :class:`provenance.Record`: the stage (``train`` or ``rl``),
every setting that shapes the numbers, and the fingerprints of the starting model
(:func:`model_fingerprint`) and of the data file. It is written as ``run.provenance.json``:

- in ``OUT``: pending when the run starts, complete when it ends;
- in every ``OUT/checkpoint-N``, once the checkpoint is whole (one without it was cut short and is
  never resumed);
- in ``OUT/final``, which only ever appears whole (:func:`staged`: filled under a temporary name,
  then renamed).

It lives inside ``OUT``, not beside it: ``OUT.provenance.json`` belongs to whoever made ``OUT`` as one
stage of something bigger (the real recipe's ``models/NAME.provenance.json``).

The rule (:func:`plan`), the same for both commands:

1. every record in ``OUT`` must be this run's, or :class:`InputError` names the first setting or input
   that differs ("rerun with the same settings to resume, or use another --out"); checkpoints or a
   final model without any record (an older version's) are refused the same way;
2. ``OUT/final`` with its complete record (``OUT`` with a complete record when the run exports
   nothing): finished, returned as it is, nothing redone;
3. else the newest ``OUT/checkpoint-N`` with its record: resumed;
4. else (``OUT`` absent or empty of checkpoints): started afresh.

Under several processes rank 0 decides and every rank takes its answer (:func:`decide`); only rank
0 writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import distributed, provenance
from .errors import InputError
from .log import get_logger

logger = get_logger(__name__)

NAME = "run"
"""A folder's record is ``FOLDER/run.provenance.json`` (:func:`provenance.record_path` of ``FOLDER/run``)."""
FINAL = "final"
CHECKPOINT = "checkpoint-"
INPUT_NAMES = {"model": "the model", "data": "the data file"}
_MIB = 1 << 20


@dataclass(frozen=True)
class Plan:
    """What a run does with its ``OUT``: ``finished`` (``path`` is the output to return), ``resume``
    (``path`` is the checkpoint) or ``fresh``."""

    action: str
    path: Path | None = None

    @property
    def finished(self) -> bool:
        return self.action == "finished"

    @property
    def checkpoint(self) -> Path | None:
        return self.path if self.action == "resume" else None


# -- the record ----------------------------------------------------------------------------------
def run_record(stage: str, settings: dict[str, Any], *, model: str, data: str) -> provenance.Record:
    """The record of a run: ``settings`` (as JSON stores them: tuples become lists) and the
    fingerprints of the starting ``model`` and the ``data`` file."""
    if not Path(data).is_file():
        raise InputError("file not found" if not Path(data).exists() else "not a file", path=data)
    settings = json.loads(json.dumps(settings, default=str))
    return provenance.Record(stage, settings, {"model": model_fingerprint(model),
                                               "data": provenance.file_digest(data)})


def model_fingerprint(model: str | os.PathLike[str]) -> str:
    """An O1 model folder's own fingerprint (``identity.fingerprint`` in ``o1embedder.json``); for any
    other folder or a file (``.gguf``) a cheap digest of its contents (:func:`quick_digest`); a hub
    id is recorded as its name."""
    path = Path(model)
    if path.is_dir():
        try:
            saved = json.loads((path / "o1embedder.json").read_text(encoding="utf-8"))
            found = (saved.get("identity") or {}).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            found = None
        if found:
            return str(found)
        return quick_digest(sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")))
    return quick_digest([path]) if path.is_file() else str(model)


def quick_digest(files: list[Path]) -> str:
    """sha256 of each file's name and size, and of its first and last MiB (all of it up to 2 MiB):
    a weight file of many GB is not read through, yet another checkpoint of the same shape differs."""
    h = hashlib.sha256()
    for path in files:
        size = path.stat().st_size
        h.update(f"{path.name}\0{size}\0".encode())
        with open(path, "rb") as handle:
            h.update(handle.read(_MIB))
            if size > _MIB:
                handle.seek(max(_MIB, size - _MIB))
                h.update(handle.read())
    return h.hexdigest()[:16]


def read(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run record in ``folder`` (``None``: absent or unreadable)."""
    return provenance.read(Path(folder) / NAME)


def write(folder: str | os.PathLike[str], record: provenance.Record, *, complete: bool, **outputs: Any) -> None:
    provenance.write(Path(folder) / NAME, record, complete=complete, outputs=outputs)


def checkpoints(out: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(N, OUT/checkpoint-N)`` of every checkpoint folder, oldest first (recorded or not)."""
    found = []
    for path in Path(out).glob(CHECKPOINT + "*"):
        tail = path.name[len(CHECKPOINT):]
        if tail.isdigit() and path.is_dir():
            found.append((int(tail), path))
    return sorted(found)


# -- the rule ------------------------------------------------------------------------------------
def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def refuse_other(found: dict[str, Any], record: provenance.Record, where: Path) -> None:
    """:class:`InputError` naming the first setting or input in which ``found`` (a stored record) and
    ``record`` differ; nothing when they agree."""
    if found.get("stage") != record.stage:
        raise InputError(f"{where} was made by o1emb {found.get('stage')}, not o1emb {record.stage}: "
                         "use another --out")
    for part in ("settings", "inputs"):
        old, new = _flat(found.get(part) or {}), _flat(getattr(record, part))
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                name = INPUT_NAMES.get(key, key) if part == "inputs" else key
                raise InputError(f"{where} was made with {name} = {old.get(key)!r}, this run has "
                                 f"{new.get(key)!r}: rerun with the same settings to resume, or use another --out")


def plan(out: str | os.PathLike[str], record: provenance.Record, *, final: bool = True,
         explicit: str | os.PathLike[str] | None = None) -> Plan:
    """The rule of this module's docstring for ``OUT`` and this run's ``record``. ``final``: the run
    exports ``OUT/final`` (otherwise ``OUT`` itself is its output). ``explicit``: a checkpoint the user
    named; it wins over the newest checkpoint and over a finished output (the records in ``OUT`` must
    still agree, and ``OUT`` may then hold an older version's checkpoints)."""
    out = Path(out)
    done = out / FINAL
    found = checkpoints(out)
    stored = {where: read(where) for where in (done, out, *(path for _, path in reversed(found)))}
    for where, data in stored.items():
        if data is not None:
            refuse_other(data, record, where)
    if explicit:
        return Plan("resume", Path(explicit))
    if all(data is None for data in stored.values()) and (done.exists() or found):
        raise InputError(f"{out} holds {'checkpoints' if found else 'a final model'} but no record of the "
                         "settings that made them (made by an older version?): use another --out, or delete it")
    output = done if final else out
    if (stored[output] or {}).get("complete") and output.exists():
        return Plan("finished", output)
    ready = [path for _, path in found if stored[path] is not None]
    return Plan("resume", ready[-1]) if ready else Plan("fresh")


def decide(out: str | os.PathLike[str], record: provenance.Record, **options: Any) -> Plan:
    """:func:`plan` on rank 0, and the same answer (or error) on every rank."""
    if not distributed.is_distributed():
        return plan(out, record, **options)
    answer: Plan | str | None = None
    if distributed.is_main_process():
        try:
            answer = plan(out, record, **options)
        except InputError as exc:
            answer = str(exc)
    answer = distributed.broadcast_object(answer)
    if isinstance(answer, str):
        raise InputError(answer)
    return answer


def begin(out: str | os.PathLike[str], record: provenance.Record) -> None:
    """Rank 0: create ``OUT`` and record the run as pending."""
    if distributed.is_main_process():
        Path(out).mkdir(parents=True, exist_ok=True)
        write(out, record, complete=False)


def finish(out: str | os.PathLike[str], record: provenance.Record, **outputs: Any) -> None:
    """Rank 0: record the run as complete."""
    if distributed.is_main_process():
        write(out, record, complete=True, **outputs)


@contextlib.contextmanager
def staged(folder: str | os.PathLike[str], record: provenance.Record, **outputs: Any) -> Iterator[Path]:
    """A temporary folder beside ``folder`` to fill; when the block ends it gets the complete record
    and replaces ``folder``, so that ``folder`` exists only whole (a run killed midway leaves the
    temporary folder, removed by the next attempt)."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    provenance.remove(tmp)
    tmp.mkdir(parents=True)
    yield tmp
    write(tmp, record, complete=True, **outputs)
    provenance.remove(folder)
    tmp.rename(folder)
