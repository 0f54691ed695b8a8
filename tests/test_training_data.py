"""Training data: sequences and LM targets, groups, thought dropout, bad rows, config validation."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from o1embedder.errors import InputError
from o1embedder.templates import Template
from o1embedder.training.config import DataConfig, TrainConfig, read_config
from o1embedder.training.data import JointCollator, TrainingSet, load_rows

sys.path.insert(0, str(Path(__file__).parent / "dist_scripts"))
from helpers import simple_rows, write_rows  # noqa: E402


@pytest.fixture(scope="module")
def template(tiny_qwen) -> Template:
    return tiny_qwen.template


def _rows(tmp_path: Path, rows: list, name: str = "rows.jsonl") -> Path:
    return write_rows(tmp_path / name, rows)


def test_collator_labels_are_thought_and_eos_only(tmp_path: Path, template: Template) -> None:
    rows = load_rows(_rows(tmp_path, simple_rows(3, 3)), template, DataConfig(group_size=4))
    ds = TrainingSet(rows, template, DataConfig(group_size=4, thought_dropout=0.0))
    examples = [ds[i] for i in range(3)]
    batch = JointCollator(template.tokenizer.pad_token_id)(examples)
    assert batch["d_ids"].shape[0] == 12 and batch["q_ids"].shape[0] == 3
    assert (batch["q_ids"][:, -1] == template.emb_id).all() and (batch["d_ids"][:, -1] == template.emb_id).all()
    for r, row in enumerate(rows):
        thought = template.encode_text(row.thought)
        sel = batch["lm_rows"] == r
        labels = batch["lm_labels"][sel].tolist()
        assert labels == [*thought, template.eos_id]
        # the state at col predicts the token at col + 1
        nxt = batch["q_ids"][r, batch["lm_cols"][sel] + 1].tolist()
        assert nxt == labels


def test_groups_without_replacement_then_with(tmp_path: Path, template: Template) -> None:
    rows = load_rows(_rows(tmp_path, simple_rows(2, 6)), template, DataConfig(group_size=4))
    ex = TrainingSet(rows, template, DataConfig(group_size=4))[0]
    assert len(ex["doc_ids"]) == 4 and len({tuple(d) for d in ex["doc_ids"][1:]}) == 3
    few = load_rows(_rows(tmp_path, simple_rows(2, 2)), template, DataConfig(group_size=6))
    ex = TrainingSet(few, template, DataConfig(group_size=6))[0]
    assert len(ex["doc_ids"]) == 6 and len({tuple(d) for d in ex["doc_ids"][1:]}) <= 2


def test_thought_dropout_rate_and_epoch_determinism(tmp_path: Path, template: Template) -> None:
    rows = load_rows(_rows(tmp_path, simple_rows(200, 1)), template, DataConfig(group_size=2))
    ds = TrainingSet(rows, template, DataConfig(group_size=2))           # default rate 0.1
    dropped = sum(ds[i]["n_lm"] == 0 for i in range(200))
    assert 8 <= dropped <= 35
    again = [ds[i]["n_lm"] for i in range(200)]
    assert again == [ds[i]["n_lm"] for i in range(200)]                     # same epoch, same draw
    ds.set_epoch(1)
    assert again != [ds[i]["n_lm"] for i in range(200)]


@pytest.mark.parametrize(("row", "field", "needle"), [
    ({"query": "q", "neg": ["n"], "thought": "t"}, "pos", "missing"),
    ({"query": "q", "pos": ["p"], "neg": [], "thought": "t"}, "neg", "no hard negatives"),
    ({"query": "q", "pos": "p", "neg": [3], "thought": "t"}, "neg", "list of strings"),
    ({"query": 7, "pos": ["p"], "neg": ["n"]}, "query", "expected a string"),
    ({"query": "q", "pos": ["p"], "neg": ["n"], "thought": "so <emb> it is"}, "thought", "<emb>"),
    ({"query": "q", "pos": ["p"], "neg": ["n"], "thought": "ends<|endoftext|>"}, "thought", "special token"),
])
def test_bad_rows_name_file_line_and_field(tmp_path: Path, template: Template, row: dict, field: str,
                                           needle: str) -> None:
    good = {"query": "fine", "pos": ["p"], "neg": ["n"], "thought": "ok"}
    path = _rows(tmp_path, [good, good, row])
    with pytest.raises(InputError) as err:
        load_rows(path, template, DataConfig(group_size=2))
    assert err.value.line == 3 and err.value.field == field and str(path) in str(err.value)
    assert needle in str(err.value)


def test_distillation_without_scores_is_an_error(tmp_path: Path, template: Template) -> None:
    path = _rows(tmp_path, [{"query": "q", "pos": ["p"], "neg": ["n"], "pos_scores": [1.0],
                             "neg_scores": [0.5]}, {"query": "q2", "pos": ["p"], "neg": ["n"]}])
    with pytest.raises(InputError, match=r"rows.jsonl:2: field 'pos_scores': distillation"):
        load_rows(path, template, DataConfig(group_size=2), need_scores=True)
    rows = load_rows(path, template, DataConfig(group_size=2))       # fine without distillation
    assert len(rows) == 2


def test_config_rejects_unknown_keys_and_reads_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown setting 'lossy'"):
        TrainConfig.from_dict({"model": "m", "lossy": 1})
    with pytest.raises(InputError, match="unknown setting 'temprature' in loss"):
        TrainConfig.from_dict({"loss": {"temprature": 0.1}})
    cfg = TrainConfig.from_dict({"model": "m", "data": "d", "out": "o", "loss": {"lam": 0.5},
                                 "training_args": {"max_steps": 3}})
    assert cfg.loss.lam == 0.5 and cfg.data_cfg.group_size == 16 and cfg.adapter.r == 32
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert TrainConfig.from_dict(read_config(path)) == cfg
    (tmp_path / "c.yaml").write_text("model: m\nadapter:\n  mode: full\n")
    assert TrainConfig.from_dict(read_config(tmp_path / "c.yaml")).adapter.mode == "full"
    with pytest.raises(InputError, match="mode"):
        TrainConfig.from_dict({"model": "m", "data": "d", "out": "o", "adapter": {"mode": "qlora"}}).validate()


def test_every_epoch_trains_on_that_epochs_draw(tiny_qwen_path: Path, tmp_path: Path, monkeypatch) -> None:
    """Negatives and thought dropout are re-drawn per epoch in training itself, not only when a test
    calls set_epoch: accelerate's loader passes the epoch to its seedable sampler and then skips the
    dataset (an if/elif), so the trainer sets it on the dataset at each epoch's start."""
    from helpers import config

    from o1embedder.training import train

    seen: list[int] = []
    draw = TrainingSet.__getitem__
    monkeypatch.setattr(TrainingSet, "__getitem__", lambda self, i: (seen.append(self.epoch), draw(self, i))[1])
    data = _rows(tmp_path, simple_rows(4, 3))
    train(config(tiny_qwen_path, data, tmp_path / "out", num_train_epochs=3, per_device_train_batch_size=2,
                 save_strategy="no", learning_rate=1e-4, use_cpu=True))
    assert seen == [0] * 4 + [1] * 4 + [2] * 4


def test_persistent_loader_workers_are_refused(tiny_qwen_path: Path, tmp_path: Path) -> None:
    """Persistent workers keep the first epoch's copy of the data: every epoch would train on epoch 0's
    negatives and thought dropout."""
    from helpers import config

    from o1embedder.training import train

    data = _rows(tmp_path, simple_rows(4, 3))
    cfg = config(tiny_qwen_path, data, tmp_path / "out", num_train_epochs=2, dataloader_num_workers=1,
                 dataloader_persistent_workers=True, use_cpu=True)
    with pytest.raises(InputError, match="persistent"):
        train(cfg)
