"""``o1emb train``: options, config file, pass-through Trainer flags, saved config, errors (exit 2)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from o1embedder.cli import main

sys.path.insert(0, str(Path(__file__).parent / "dist_scripts"))
from helpers import simple_rows, write_rows  # noqa: E402


def test_train_command_runs_and_saves_config(tiny_qwen_path: Path, tmp_path: Path) -> None:
    data = write_rows(tmp_path / "rows.jsonl", simple_rows(6, 3))
    config = tmp_path / "cfg.yaml"
    config.write_text("loss:\n  lam: 0.7\ndata_cfg:\n  group_size: 8\ntraining_args:\n  learning_rate: 0.001\n")
    out = tmp_path / "out"
    code = main(["train", "--model", str(tiny_qwen_path), "--data", str(data), "--out", str(out), "--full",
                 "--config", str(config), "--group-size", "4", "--max_steps", "2",
                 "--per_device_train_batch_size", "3", "--save_strategy", "no", "--report_to", "none",
                 "--disable_tqdm", "true"])
    assert code == 0
    saved = json.loads((out / "o1emb_train.json").read_text())
    assert saved["adapter"]["mode"] == "full" and saved["loss"]["lam"] == 0.7
    assert saved["data_cfg"]["group_size"] == 4                      # flag beats config file
    assert saved["training_args"] == {"learning_rate": 0.001, "max_steps": 2, "per_device_train_batch_size": 3,
                                      "save_strategy": "no", "report_to": "none", "disable_tqdm": True}
    assert (out / "final" / "o1embedder.json").is_file() and (out / "final" / "o1emb_train.json").is_file()


@pytest.mark.parametrize(("extra", "needle"), [
    (["--no_such_trainer_flag", "1"], "unknown options"),
    (["--group-size", "4"], "rows.jsonl:1: field 'neg': no hard negatives"),
])
def test_train_command_bad_input_exits_2(tiny_qwen_path: Path, tmp_path: Path, capsys, extra: list,
                                          needle: str) -> None:
    rows = [{"query": "q", "pos": ["p"], "neg": [], "thought": "t"}] if "--group-size" in extra else simple_rows(2)
    data = write_rows(tmp_path / "rows.jsonl", rows)
    code = main(["train", "--model", str(tiny_qwen_path), "--data", str(data), "--out", str(tmp_path / "o"),
                 *extra])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert needle in err.splitlines()[-1] and err.splitlines()[-1].startswith("o1emb train: error:")
    assert "Traceback" not in err


def test_training_shows_a_bar_with_the_loss_not_dictionaries(tiny_qwen_path: Path, tmp_path: Path, capsys) -> None:
    data = write_rows(tmp_path / "rows.jsonl", simple_rows(6, 3))
    out = tmp_path / "out"
    code = main(["train", "--model", str(tiny_qwen_path), "--data", str(data), "--out", str(out), "--full",
                 "--group-size", "2", "--max_steps", "3", "--per_device_train_batch_size", "2",
                 "--logging_steps", "1", "--save_strategy", "steps", "--save_steps", "3", "--report_to", "none"])
    err = capsys.readouterr().err
    assert code == 0
    assert "contrastive=" in err and "lr=" in err and "3/3" in err          # the bar, with the loss parts
    assert "{'loss'" not in err and "'contrastive':" not in err              # no raw dictionaries
    history = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())["log_history"]
    logged = [h for h in history if "contrastive" in h]
    assert [h["step"] for h in logged] == [1, 2, 3]                           # every number kept
    assert all({"loss", "contrastive", "thought_lm", "learning_rate"} <= set(h) for h in logged)


def test_without_the_bar_training_logs_compact_lines(tiny_qwen_path: Path, tmp_path: Path, capsys) -> None:
    data = write_rows(tmp_path / "rows.jsonl", simple_rows(6, 3))
    code = main(["train", "--model", str(tiny_qwen_path), "--data", str(data), "--out", str(tmp_path / "out"),
                 "--full", "--group-size", "2", "--max_steps", "2", "--per_device_train_batch_size", "2",
                 "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true"])
    captured = capsys.readouterr()
    both = captured.out + captured.err
    assert code == 0
    assert "step 1/2: loss" in both and "step 2/2: loss" in both and "contrastive" in both
    assert "{'loss'" not in both and "'contrastive':" not in both


def test_deepspeed_zero3_is_refused_before_anything_loads(tiny_qwen_path: Path, tmp_path: Path, capsys) -> None:
    """ZeRO-3 partitions weights at load, which the O1 loader cannot take: one line, exit 2, nothing written
    (docs/training.md); ZeRO-2 is let through (its run needs the deepspeed package, not installed here)."""
    data = write_rows(tmp_path / "rows.jsonl", simple_rows(4, 2))
    ds = tmp_path / "zero3.json"
    ds.write_text(json.dumps({"zero_optimization": {"stage": 3}, "train_batch_size": "auto"}))
    code = main(["--log-level", "ERROR", "train", "--model", str(tiny_qwen_path), "--data", str(data),
                 "--out", str(tmp_path / "out"), "--deepspeed", str(ds)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "ZeRO-3 is not supported" in err[0] and "zero3.json" in err[0]
    assert not (tmp_path / "out").exists()
