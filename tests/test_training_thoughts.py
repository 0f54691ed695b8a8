"""An LM that stays able to think (docs/training.md, "Keeping the thought LM"): the held-out thought LM
loss (the training LM loss's quantity, before and after training), the LM warm-up and the learning
rate of the parameters only the LM loss trains."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import TrainerCallback

from o1embedder.cli import main
from o1embedder.errors import InputError
from o1embedder.model import O1Embedder
from o1embedder.training import LossHistory, thought_lm_loss, train
from o1embedder.training.api import build, run_record, training_arguments
from o1embedder.training.config import LossConfig
from o1embedder.training.forward import joint_parts
from o1embedder.training.heldout import main as heldout_main
from o1embedder.training.trainer import O1Trainer

sys.path.insert(0, str(Path(__file__).parent / "dist_scripts"))
from helpers import config, fixed_batch, grads, simple_rows, write_rows  # noqa: E402

ROWS = simple_rows(6, 3, thought_every=2)          # rows 0, 2, 4 have a thought
HELD_OUT = simple_rows(12, 3)[8:]


def _hand_loss(path: Path, rows: list[dict]) -> tuple[float, int]:
    """Mean CE over thought + EOS tokens, one row at a time, from HF's full logits."""
    model = O1Embedder.from_pretrained(path, device="cpu", dtype="float32")
    total, count = 0.0, 0
    for row in rows:
        if not row.get("thought"):
            continue
        ids, n_thought = model.template.query_ids(row["query"], row["thought"])
        assert ids[-2] == model.tokenizer.eos_token_id                      # ... thought <eos> <emb>
        with torch.no_grad():
            logits = model.model(input_ids=torch.tensor([ids])).logits[0].double()
        targets = range(len(ids) - 2 - n_thought, len(ids) - 1)             # the thought tokens, then EOS
        total += sum(float(F.cross_entropy(logits[k - 1], torch.tensor(ids[k]))) for k in targets)
        count += len(targets)
    return total / count, count


def test_heldout_loss_is_the_training_lm_loss_computed_by_hand(tiny_qwen_path: Path, tmp_path: Path) -> None:
    data = write_rows(tmp_path / "rows.jsonl", ROWS)
    expected, tokens = _hand_loss(tiny_qwen_path, ROWS)
    for batch_size in (1, 2, 8):                                            # padding changes nothing
        got = thought_lm_loss(tiny_qwen_path, data, batch_size=batch_size, device="cpu")
        assert got.rows == 3 and got.tokens == tokens
        assert abs(got.loss - expected) < 1e-5 * expected
    # the same quantity as the training LM loss on these rows (no thought dropout)
    parts = build(config(tiny_qwen_path, data, tmp_path / "o", mode="lora"))
    with torch.no_grad():
        out = parts.model.eval()(**fixed_batch(parts, list(range(6))))
    trained = joint_parts(out["q"], out["d"], out["lm_sum"], out["lm_count"], None, LossConfig())["thought_lm"]
    assert abs(float(trained) - expected) < 1e-5 * expected


def test_heldout_rows_are_checked_and_the_module_prints_json(tiny_qwen_path: Path, tmp_path: Path, capsys) -> None:
    no_thought = write_rows(tmp_path / "none.jsonl", [{"query": "q"}, {"query": "r", "thought": "  "}])
    with pytest.raises(InputError, match="no row with a thought among 2"):
        thought_lm_loss(tiny_qwen_path, no_thought, device="cpu")
    bad = write_rows(tmp_path / "bad.jsonl", [{"query": "q", "thought": "t"}, {"query": "q", "thought": "a <emb> b"}])
    with pytest.raises(InputError, match=r"bad.jsonl:2: field 'thought'"):
        thought_lm_loss(tiny_qwen_path, bad, device="cpu")
    data = write_rows(tmp_path / "rows.jsonl", [{"query": r["query"], "thought": r["thought"]} for r in HELD_OUT])
    assert heldout_main([str(tiny_qwen_path), str(data), "--device", "cpu", "--max-query-thought-tokens", "20"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cut = thought_lm_loss(tiny_qwen_path, data, device="cpu", max_query_thought_tokens=20)
    assert printed == cut.to_dict() and printed["rows"] == 4
    assert cut.tokens < thought_lm_loss(tiny_qwen_path, data, device="cpu").tokens     # the limit cut thoughts


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_train_records_the_heldout_loss_before_and_after(tiny_qwen_path: Path, tmp_path: Path) -> None:
    data = write_rows(tmp_path / "rows.jsonl", simple_rows(8, 3))
    held = write_rows(tmp_path / "held.jsonl", HELD_OUT)
    common = {"max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 1e-2, "logging_steps": 1,
              "save_strategy": "no"}
    plain = train(config(tiny_qwen_path, data, tmp_path / "plain", **common))
    cfg = config(tiny_qwen_path, data, tmp_path / "out", **common)
    cfg.eval_thoughts, cfg.eval_thoughts_steps = str(held), 2
    history = LossHistory()
    final = train(cfg, callbacks=[history])
    saved = json.loads((tmp_path / "out" / "thought_lm.json").read_text())
    assert [e["step"] for e in saved["history"]] == [0, 2, 3] and saved["rows"] == 4 and saved["tokens"] > 0
    assert saved["before"] == saved["history"][0] and saved["after"] == saved["history"][-1]
    before = thought_lm_loss(tiny_qwen_path, held, device="cpu")
    after = thought_lm_loss(final, held, device="cpu")
    assert abs(saved["before"]["thought_lm"] - before.loss) < 1e-5 and saved["tokens"] == before.tokens
    assert abs(saved["after"]["thought_lm"] - after.loss) < 1e-4
    assert saved["after"]["thought_lm"] < saved["before"]["thought_lm"]    # the same thought style: it learns
    # in the log: its own records, and the LossHistory's ``thoughts`` (``history`` keeps the training records)
    assert [t["step"] for t in history.thoughts] == [0, 2, 3]
    assert [t["heldout_thought_lm"] for t in history.thoughts] == [round(e["thought_lm"], 6) for e in saved["history"]]
    assert [h["step"] for h in history.history] == [1, 2, 3]
    # scoring changes no number of the training itself, so it is not part of the run record
    a, b = _weights(plain), _weights(final)
    assert all(torch.equal(a[k], b[k]) for k in a)
    record = json.loads((tmp_path / "out" / "run.provenance.json").read_text())
    assert "eval_thoughts" not in json.dumps(record["settings"])


def _trainer(cfg, parts) -> O1Trainer:
    return O1Trainer(model=parts.model, args=training_arguments(cfg), train_dataset=parts.dataset,
                     data_collator=parts.collator, loss_config=cfg.loss)


@pytest.mark.parametrize("gradcache", [False, True])
def test_during_the_lm_warmup_only_the_lm_loss_has_a_gradient(tiny_qwen_path: Path, tmp_path: Path,
                                                              gradcache: bool) -> None:
    data = write_rows(tmp_path / "rows.jsonl", simple_rows(6, 3))
    cfg = config(tiny_qwen_path, data, tmp_path / "o", mode="full")
    cfg.loss.lm_warmup_steps = 2
    cfg.gradcache.enabled, cfg.gradcache.query_chunk, cfg.gradcache.doc_chunk = gradcache, 2, 5
    parts = build(cfg)
    model = parts.model.double().train()
    batch = fixed_batch(parts, list(range(6)))
    out = model(**batch)
    (out["lm_sum"] / out["lm_count"]).backward()
    lm_only = grads(model)
    joint = {}
    trainer = _trainer(cfg, parts)
    for step in (0, 1, 2):
        model.zero_grad()
        trainer.state.global_step = step
        loss, got = trainer.compute_loss(model, batch, return_outputs=True)
        loss.backward()
        if step < 2:
            assert abs(float(loss.detach()) - float(got["thought_lm"].detach())) < 1e-12
            assert all((g - lm_only[n]).abs().max() < 1e-10 for n, g in grads(model).items())
        else:
            joint = grads(model)
            expected = 0.8 * float(got["contrastive"]) + 0.2 * float(got["thought_lm"])
            assert abs(float(loss.detach()) - expected) < 1e-10
    assert max(float((joint[n] - lm_only[n]).abs().max()) for n in joint) > 1e-3
    model.float()


def test_lm_warmup_shows_in_the_logged_parts(tiny_qwen_path: Path, tmp_path: Path) -> None:
    data = write_rows(tmp_path / "rows.jsonl", simple_rows(8, 3))
    cfg = config(tiny_qwen_path, data, tmp_path / "out", max_steps=4, per_device_train_batch_size=4,
                 learning_rate=1e-2, logging_steps=1, save_strategy="no")
    cfg.loss.lm_warmup_steps = 2
    history = LossHistory()
    train(cfg, callbacks=[history])
    assert [h["lam"] for h in history.history] == [0.0, 0.0, 0.8, 0.8]
    for h in history.history:
        expected = h["lam"] * h["contrastive"] + (1 - h["lam"]) * h["thought_lm"]
        assert abs(h["loss"] - expected) < 1e-5 * max(1.0, abs(expected))
    plain = LossHistory()
    cfg.loss.lm_warmup_steps, cfg.out = 0, str(tmp_path / "plain")
    train(cfg, callbacks=[plain])
    assert all("lam" not in h for h in plain.history)                 # no warm-up: the logs as before


class _GroupRates(TrainerCallback):
    def __init__(self) -> None:
        self.rates: list[list[float]] = []

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs) -> None:
        self.rates.append([g["lr"] for g in optimizer.param_groups])


def test_lm_lr_scale_changes_the_lm_head_step_and_nothing_else(tiny_qwen_path: Path, tmp_path: Path) -> None:
    """Full fine-tuning of an untied model: one AdamW step moves each weight by lr x a sign-like factor, so
    the LM head's step is scaled exactly and every other weight is bitwise the same as without it."""
    data = write_rows(tmp_path / "rows.jsonl", simple_rows(8, 3))
    base = _weights(tiny_qwen_path)
    runs = {}
    for name, scale in (("default", None), ("one", 1.0), ("quarter", 0.25)):
        cfg = config(tiny_qwen_path, data, tmp_path / name, max_steps=1, per_device_train_batch_size=4,
                     learning_rate=1e-2, warmup_steps=0, save_strategy="no")
        if scale is not None:
            cfg.loss.lm_lr_scale = scale
        rates = _GroupRates()
        runs[name] = (_weights(train(cfg, callbacks=[rates])), rates.rates)
    (default, default_rates), (one, _), (quarter, quarter_rates) = runs["default"], runs["one"], runs["quarter"]
    assert all(torch.equal(default[k], one[k]) for k in default)                  # 1.0: as today
    assert len(default_rates[0]) == 2 and quarter_rates[0] == [1e-2, 1e-2, 2.5e-3]   # one more group, x 0.25
    for key in default:
        if key == "lm_head.weight":
            moved, scaled = default[key] - base[key], quarter[key] - base[key]
            assert moved.abs().max() > 1e-3
            assert (scaled - 0.25 * moved).abs().max() < 1e-6
        else:
            assert torch.equal(default[key], quarter[key]), key


def test_lm_lr_scale_under_lora_is_the_head_side_token_rows(tiny_qwen_path: Path, tmp_path: Path) -> None:
    data = write_rows(tmp_path / "rows.jsonl", simple_rows(8, 3))
    cfg = config(tiny_qwen_path, data, tmp_path / "out", mode="lora", max_steps=3, per_device_train_batch_size=4,
                 learning_rate=1e-2, save_strategy="no")
    cfg.loss.lm_lr_scale = 0.0
    final = train(cfg)
    base, trained = _weights(tiny_qwen_path), _weights(final)
    ids = sorted(O1Embedder.from_pretrained(final, device="cpu", dtype="float32").template.special_ids)
    assert torch.equal(trained["lm_head.weight"], base["lm_head.weight"])           # the head side: still
    assert (trained["model.embed_tokens.weight"][ids] - base["model.embed_tokens.weight"][ids]).abs().max() > 1e-4


def test_lm_lr_scale_is_refused_where_the_head_is_tied(tiny_qwen_path: Path, tmp_path: Path, capsys) -> None:
    tied = O1Embedder.from_pretrained(tiny_qwen_path, device="cpu", dtype="float32")
    tied.model.config.tie_word_embeddings = True
    tied.model.lm_head.weight = tied.model.model.embed_tokens.weight
    tied.save_pretrained(tmp_path / "tied")
    data = write_rows(tmp_path / "rows.jsonl", simple_rows(4, 3))
    argv = ["--log-level", "ERROR", "train", "--model", str(tmp_path / "tied"), "--data", str(data), "--out",
            str(tmp_path / "out"), "--group-size", "2", "--max_steps", "1", "--report_to", "none"]
    assert main([*argv, "--lm-lr-scale", "0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("o1emb train: error: loss.lm_lr_scale: this model has no parameter") and "tied" in err


def test_new_settings_are_recorded_only_away_from_their_defaults(tiny_qwen_path: Path, tmp_path: Path) -> None:
    """A run recorded before these settings existed resumes (it trained as their defaults do); a run that
    uses them records them, so another value is refused."""
    data = write_rows(tmp_path / "rows.jsonl", simple_rows(4, 3))
    cfg = config(tiny_qwen_path, data, tmp_path / "o")
    cfg.eval_thoughts, cfg.eval_thoughts_steps = str(data), 5
    settings = run_record(cfg, training_arguments(cfg)).settings
    assert {"lm_warmup_steps", "lm_lr_scale"}.isdisjoint(settings["loss"]) and "eval_thoughts" not in settings
    cfg.loss.lm_warmup_steps, cfg.loss.lm_lr_scale = 3, 0.5
    settings = run_record(cfg, training_arguments(cfg)).settings
    assert settings["loss"]["lm_warmup_steps"] == 3 and settings["loss"]["lm_lr_scale"] == 0.5


@pytest.mark.parametrize(("flag", "value", "key"), [("--lm-warmup-steps", "-1", "lm_warmup_steps"),
                                                    ("--lm-lr-scale", "-0.5", "lm_lr_scale"),
                                                    ("--eval-thoughts-steps", "-2", "eval_thoughts_steps")])
def test_bad_values_are_refused(flag: str, value: str, key: str, capsys) -> None:
    assert main(["train", "--model", "m", "--data", "d", "--out", "o", flag, value]) == 2
    assert f"{key} must be >= 0" in capsys.readouterr().err


def test_the_flags_reach_the_config(capsys) -> None:
    import yaml

    assert main(["train", "--model", "m", "--data", "d", "--out", "o", "--lm-warmup-steps", "5", "--lm-lr-scale",
                 "0.1", "--eval-thoughts", "held.jsonl", "--eval-thoughts-steps", "10", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["loss"]["lm_warmup_steps"] == 5 and printed["loss"]["lm_lr_scale"] == 0.1
    assert printed["eval_thoughts"] == "held.jsonl" and printed["eval_thoughts_steps"] == 10
