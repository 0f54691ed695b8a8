"""One resume rule for ``o1emb train`` and ``o1emb rl`` (src/o1embedder/resume.py), through the command
line: a run interrupted after a checkpoint resumes it and ends with the unbroken run's weights; a
finished run is returned untouched; other settings are refused with exit 2, naming the setting."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")

from safetensors.torch import load_file  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from o1embedder import provenance, resume  # noqa: E402
from o1embedder.cli import main  # noqa: E402
from o1embedder.errors import InputError  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "dist_scripts"))
from helpers import simple_rows, write_rows  # noqa: E402


def _same_weights(a: Path, b: Path) -> float:
    x, y = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert x.keys() == y.keys()
    return max(float((x[k] - y[k]).abs().max()) for k in x)


def _error(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if ": error:" in line]
    assert len(lines) == 1, lines
    return lines[0]


# -- o1emb train ------------------------------------------------------------------------------------
class Steps(TrainerCallback):
    """The optimizer steps a run takes; ``kill_at``: interrupt it, as Ctrl-C would, right after the
    checkpoint of that step is saved (and recorded)."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.taken: list[int] = []
        self.kill_at = kill_at

    def on_step_end(self, args, state, control, **kwargs):
        self.taken.append(state.global_step)

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.kill_at:
            raise KeyboardInterrupt


@pytest.fixture
def watch(monkeypatch):
    """``watch(kill_at=None)``: a :class:`Steps` that the next ``o1emb train`` runs with."""
    from o1embedder.training import api

    real, current = api.train, {"steps": Steps()}

    def train(config, *, callbacks=None):
        return real(config, callbacks=[*(callbacks or []), current["steps"]])

    monkeypatch.setattr(api, "train", train)

    def use(kill_at: int | None = None) -> Steps:
        current["steps"] = Steps(kill_at)
        return current["steps"]

    return use


@pytest.fixture
def train_cli(tiny_qwen_path: Path, tmp_path: Path):
    data = write_rows(tmp_path / "rows.jsonl", simple_rows(8, 3))
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"adapter": {"dropout": 0.0}, "data_cfg": {"thought_dropout": 0.0}}))

    def run(out: Path, *extra: str) -> int:
        return main(["--log-level", "ERROR", "train", "--model", str(tiny_qwen_path), "--data", str(data),
                     "--out", str(out), "--config", str(settings), "--lora-r", "4", "--lora-alpha", "8",
                     "--group-size", "2", "--mixed-precision", "no", "--max_steps", "6",
                     "--per_device_train_batch_size", "2", "--learning_rate", "0.01", "--save_strategy", "steps",
                     "--save_steps", "2", "--report_to", "none", "--disable_tqdm", "true", *extra])

    return run


def test_train_interrupted_resumes_its_last_checkpoint_and_equals_an_unbroken_run(train_cli, watch,
                                                                                   tmp_path: Path) -> None:
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert train_cli(whole) == 0
    steps = watch(kill_at=4)
    assert train_cli(cut) == 130                                          # interrupted after checkpoint-4
    assert steps.taken == [1, 2, 3, 4] and not (cut / "final").exists()
    assert [n for n, _ in resume.checkpoints(cut)] == [2, 4]
    assert resume.read(cut / "checkpoint-4")["complete"] and not resume.read(cut)["complete"]
    steps = watch()
    assert train_cli(cut) == 0                                            # the same command: resumes
    assert steps.taken == [5, 6]
    assert _same_weights(whole / "final", cut / "final") < 1e-6
    assert resume.read(cut)["complete"] and resume.read(cut / "final")["fingerprint"] == resume.read(cut)["fingerprint"]

    # a finished run lost its final model and its complete record: the last checkpoint (6) is resumed,
    # nothing is trained again, and the same model is exported
    first = load_file(str(whole / "final" / "model.safetensors"))
    provenance.remove(whole / "final", whole / "run.provenance.json")
    steps = watch()
    assert train_cli(whole) == 0
    assert steps.taken == []
    again = load_file(str(whole / "final" / "model.safetensors"))
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_train_finished_is_not_redone_and_other_settings_are_refused(train_cli, watch, tmp_path: Path,
                                                                      capsys) -> None:
    out = tmp_path / "run"
    assert train_cli(out) == 0
    model = out / "final" / "model.safetensors"
    stamp, record = model.stat().st_mtime_ns, (out / "run.provenance.json").read_text()
    steps = watch()
    assert train_cli(out) == 0                                            # finished: nothing redone
    assert steps.taken == [] and model.stat().st_mtime_ns == stamp
    assert train_cli(out, "--save_steps", "3", "--logging_steps", "1") == 0     # cadence: not a setting
    assert steps.taken == [] and model.stat().st_mtime_ns == stamp
    capsys.readouterr()
    assert train_cli(out, "--learning_rate", "0.02") == 2
    line = _error(capsys)
    assert line.startswith("o1emb train: error:") and "training_args.learning_rate = 0.01, this run has 0.02" in line
    assert "rerun with the same settings to resume, or use another --out" in line
    assert train_cli(out, "--lam", "0.5") == 2 and "loss.lam = 0.8, this run has 0.5" in _error(capsys)
    assert steps.taken == [] and model.stat().st_mtime_ns == stamp
    assert (out / "run.provenance.json").read_text() == record            # nothing was touched
    # a checkpoint named explicitly wins over "finished": training goes on from it
    assert train_cli(out, "--resume_from_checkpoint", str(out / "checkpoint-4")) == 0
    assert steps.taken == [5, 6]


def test_train_with_the_lm_settings_resumes_and_records_them(train_cli, watch, tmp_path: Path, capsys) -> None:
    """An LM warm-up that the interruption cuts, the LM head's own learning rate (its own optimizer group)
    and held-out scoring: the resumed run ends with the unbroken run's weights and scores; the warm-up is
    part of the run record, the held-out file is not."""
    held = write_rows(tmp_path / "held.jsonl", simple_rows(12, 3)[8:])
    lm = ("--lm-warmup-steps", "5", "--lm-lr-scale", "0.5", "--eval-thoughts", str(held))   # steps 1-5: LM only
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert train_cli(whole, *lm) == 0
    watch(kill_at=4)
    assert train_cli(cut, *lm) == 130
    steps = watch()
    assert train_cli(cut, *lm) == 0 and steps.taken == [5, 6]
    assert _same_weights(whole / "final", cut / "final") < 1e-6
    scores = {run: json.loads((run / "thought_lm.json").read_text()) for run in (whole, cut)}
    assert [e["step"] for e in scores[whole]["history"]] == [0, 6]
    assert [e["step"] for e in scores[cut]["history"]] == [0, 4, 6]          # the earlier attempt's kept
    for key in ("before", "after"):
        assert abs(scores[whole][key]["thought_lm"] - scores[cut][key]["thought_lm"]) < 1e-5
    settings = resume.read(cut)["settings"]
    assert settings["loss"]["lm_warmup_steps"] == 5 and "eval_thoughts" not in settings
    steps = watch()
    assert train_cli(cut, *lm[:-2]) == 0 and steps.taken == []              # no scoring: finished as it is
    capsys.readouterr()
    assert train_cli(cut, "--lm-warmup-steps", "2", *lm[2:]) == 2
    assert "loss.lm_warmup_steps = 5, this run has 2" in _error(capsys)


# -- o1emb rl ----------------------------------------------------------------------------------------
RL = {"steps": 4, "rows_per_step": 2, "samples": 2, "group_size": 2, "max_new_tokens": 4, "save_steps": 1,
      "mixed_precision": "no", "learning_rate": 0.01, "warmup_steps": 0}


@pytest.fixture
def rl_cli(tiny_qwen_path: Path, tmp_path: Path):
    data = write_rows(tmp_path / "rows.jsonl", simple_rows(6, 3))

    def run(out: Path, **changed) -> int:
        flags = [x for k, v in {**RL, **changed}.items() for x in ("--" + k.replace("_", "-"), str(v))]
        return main(["--log-level", "ERROR", "rl", "--model", str(tiny_qwen_path), "--data", str(data),
                     "--out", str(out), "--full", *flags])

    return run


@pytest.fixture
def rl_steps(monkeypatch):
    """The steps (from 0) the next ``o1emb rl`` runs; ``kill_at``: interrupt it as that step begins."""
    from o1embedder.rl import loop

    real, seen = loop.rl_step, {"taken": [], "kill_at": None}

    def step(parts, optimizer, scheduler, index):
        if index == seen["kill_at"]:
            raise KeyboardInterrupt
        seen["taken"].append(index)
        return real(parts, optimizer, scheduler, index)

    monkeypatch.setattr(loop, "rl_step", step)

    def use(kill_at: int | None = None) -> list[int]:
        seen["taken"], seen["kill_at"] = [], kill_at
        return seen["taken"]

    return use


def test_rl_interrupted_resumes_finished_is_kept_other_settings_refused(rl_cli, rl_steps, tmp_path: Path,
                                                                        capsys) -> None:
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert rl_cli(whole) == 0
    taken = rl_steps(kill_at=2)
    assert rl_cli(cut) == 130                                             # interrupted after checkpoint-2
    assert taken == [0, 1] and [n for n, _ in resume.checkpoints(cut)] == [2]
    assert resume.read(cut / "checkpoint-2")["complete"] and not resume.read(cut)["complete"]
    taken = rl_steps()
    assert rl_cli(cut) == 0                                               # the same command: resumes
    assert taken == [2, 3]
    assert _same_weights(whole / "final", cut / "final") < 1e-6
    model = cut / "final" / "model.safetensors"
    stamp = model.stat().st_mtime_ns
    taken = rl_steps()
    assert rl_cli(cut, save_steps=2, logprob_chunk=3) == 0               # finished: nothing redone
    assert taken == [] and model.stat().st_mtime_ns == stamp
    capsys.readouterr()
    assert rl_cli(cut, learning_rate=0.02) == 2
    line = _error(capsys)
    assert line.startswith("o1emb rl: error:") and "learning_rate = 0.01, this run has 0.02" in line
    assert "rerun with the same settings to resume, or use another --out" in line
    assert taken == [] and model.stat().st_mtime_ns == stamp


# -- the rule itself ---------------------------------------------------------------------------------
def _record(tmp_path: Path, stage: str = "train", **settings) -> provenance.Record:
    data = tmp_path / "rows.jsonl"
    if not data.exists():
        data.write_text('{"query": "q"}\n')
    return resume.run_record(stage, {"lr": 0.1, **settings}, model="org/some-model", data=str(data))


def test_the_rule_on_folders(tmp_path: Path) -> None:
    out, record = tmp_path / "out", _record(tmp_path)
    assert resume.plan(out, record) == resume.Plan("fresh")                          # absent
    (out / "checkpoint-2").mkdir(parents=True)
    with pytest.raises(InputError, match="holds checkpoints but no record"):          # an older version's
        resume.plan(out, record)
    assert resume.plan(out, record, explicit=out / "checkpoint-2").checkpoint == out / "checkpoint-2"
    resume.write(out / "checkpoint-2", record, complete=True)
    (out / "checkpoint-4").mkdir()                                                   # cut short: no record
    assert resume.plan(out, record).checkpoint == out / "checkpoint-2"
    resume.write(out, record, complete=True)
    assert resume.plan(out, record, final=False) == resume.Plan("finished", out)
    assert resume.plan(out, record).checkpoint == out / "checkpoint-2"               # no OUT/final yet
    with resume.staged(out / "final", record) as tmp:
        (tmp / "model.safetensors").write_text("weights")
        assert not (out / "final").exists()
    assert resume.plan(out, record) == resume.Plan("finished", out / "final")
    with pytest.raises(InputError, match=r"final was made with lr = 0.1, this run has 0.2: rerun"):
        resume.plan(out, _record(tmp_path, lr=0.2))
    with pytest.raises(InputError, match="made by o1emb train, not o1emb rl"):
        resume.plan(out, _record(tmp_path, "rl"))
    (tmp_path / "rows.jsonl").write_text('{"query": "q2"}\n')
    with pytest.raises(InputError, match="made with the data file = "):
        resume.plan(out, _record(tmp_path))


def test_model_fingerprints(tiny_qwen_path: Path, tmp_path: Path) -> None:
    saved = json.loads((tiny_qwen_path / "o1embedder.json").read_text())
    assert resume.model_fingerprint(tiny_qwen_path) == saved["identity"]["fingerprint"]
    assert resume.model_fingerprint("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    folder = tmp_path / "plain"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(bytes(5 << 20))                                   # 5 MiB: first and last MiB read
    before = resume.model_fingerprint(folder)
    with open(weights, "r+b") as handle:
        handle.seek((5 << 20) - 10)
        handle.write(b"x")
    assert resume.model_fingerprint(folder) != before
    assert resume.model_fingerprint(weights) != before                    # a single file (.gguf)
