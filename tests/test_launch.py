"""Every command that runs under ``torchrun`` runs as ONE job across the processes (issue 20, acceptance
1): launched through the command line exactly as a user launches it (``torchrun --nproc_per_node 2 -m
o1embedder CMD ...``, gloo on CPU), each gives what one process gives on the same input, shows one
progress bar and writes its outputs once (rank 0).

The reference is the same command in one process (a subprocess too, with the same thread count, so
the only difference is the launch). float32 throughout: per-step numbers and weights to 1e-5.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "dist_scripts"))
from helpers import save_model, simple_rows, write_rows  # noqa: E402

pytest.importorskip("peft")

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
       "TQDM_MININTERVAL": "0"}       # every bar update is printed: a second bar cannot hide
WORDS = "alpha beta gamma delta omega river tower bridge castle forest desert ocean island valley copper silver".split()


def o1emb(*args: str, ranks: int = 1, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``o1emb ARGS`` in one process, or under ``torchrun --nproc_per_node RANKS``."""
    launch = [sys.executable, "-m", "o1embedder"] if ranks == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
        "-m", "o1embedder"]
    proc = subprocess.run([*launch, "--log-level", "WARNING", *args], env=ENV, cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return proc


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def assert_same_weights(a: Path, b: Path, tol: float = 1e-5) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    worst = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    assert worst < tol, worst


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny O1 model, training rows and a small BEIR folder."""
    root = tmp_path_factory.mktemp("launch")
    rows = simple_rows(8, 3)
    save_model(root / "model", [r["query"] + " " + r["pos"][0] for r in rows] * 5)
    write_rows(root / "rows.jsonl", rows)
    beir = root / "beir"
    (beir / "qrels").mkdir(parents=True)
    with open(beir / "corpus.jsonl", "w") as fh:
        for i in range(23):
            text = " ".join(WORDS[(i * j) % 16] for j in range(3 + i % 7))
            fh.write(json.dumps({"_id": f"d{i}", "title": WORDS[i % 16], "text": text}) + "\n")
    with open(beir / "queries.jsonl", "w") as fq, open(beir / "qrels" / "test.tsv", "w") as fr:
        fr.write("query-id\tcorpus-id\tscore\n")
        for i in range(7):
            fq.write(json.dumps({"_id": f"q{i}", "text": f"which {WORDS[i]} {WORDS[(i * 3) % 16]}"}) + "\n")
            fr.write(f"q{i}\td{i * 3}\t1\n")
            fr.write(f"q{i}\td{(i * 5 + 1) % 23}\t1\n")
    return root


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_rl_under_torchrun_is_one_job_equal_to_one_process(world: Path, tmp_path: Path, mode: str) -> None:
    args = ["rl", "--model", str(world / "model"), "--data", str(world / "rows.jsonl"), f"--{mode}",
            "--steps", "3", "--rows-per-step", "4", "--samples", "2", "--group-size", "2",
            "--max-new-tokens", "6", "--learning-rate", "1e-3", "--warmup-steps", "0",
            "--mixed-precision", "no", "--save-steps", "2"]
    one = o1emb(*args, "--out", str(tmp_path / "one"))
    two = o1emb(*args, "--out", str(tmp_path / "two"), ranks=2)
    assert two.stdout.count("RL model:") == 1 and one.stdout.count("RL model:") == 1
    assert one.stderr.count("rl: ") > 0                                         # one progress bar:
    assert two.stderr.count("rl: ") == one.stderr.count("rl: ")                 # as many refreshes as one
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    log_one = [json.loads(line) for line in (tmp_path / "one" / "rl_log.jsonl").read_text().splitlines()]
    log_two = [json.loads(line) for line in (tmp_path / "two" / "rl_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log_two] == [1, 2, 3]
    assert all(r["world_size"] == 2 for r in log_two) and all(r["world_size"] == 1 for r in log_one)
    for a, b in zip(log_one, log_two, strict=True):
        for key in ("loss", "policy", "kl", "contrastive", "reward_mean", "reward_std", "zero_variance"):
            assert b[key] == pytest.approx(a[key], abs=1e-5), (a["step"], key)
    assert log_one[-1]["kl"] > 0                                                # the runs moved
    assert_same_weights(tmp_path / "one" / "final", tmp_path / "two" / "final")


def test_train_under_torchrun_is_one_job_equal_to_one_process(world: Path, tmp_path: Path) -> None:
    """Two ranks of 2 rows each train exactly as one process on 4 rows (the global batch)."""
    args = ["train", "--model", str(world / "model"), "--data", str(world / "rows.jsonl"), "--full",
            "--group-size", "2", "--thought-dropout", "0", "--mixed-precision", "no", "--max_steps", "2",
            "--logging_steps", "1", "--learning_rate", "1e-3", "--warmup_steps", "0",
            "--save_strategy", "steps", "--save_steps", "2"]
    one = o1emb(*args, "--out", str(tmp_path / "one"), "--per_device_train_batch_size", "4")
    two = o1emb(*args, "--out", str(tmp_path / "two"), "--per_device_train_batch_size", "2", ranks=2)
    assert two.stdout.count("trained model:") == 1 and one.stdout.count("trained model:") == 1
    history = [json.loads((tmp_path / run / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
               for run in ("one", "two")]
    steps = [[r for r in h if "contrastive" in r] for h in history]
    assert len(steps[0]) == 2 and len(steps[1]) == 2
    for a, b in zip(*steps, strict=True):
        for key in ("loss", "contrastive", "thought_lm"):
            assert b[key] == pytest.approx(a[key], abs=1e-5), (a["step"], key)
    assert_same_weights(tmp_path / "one" / "final", tmp_path / "two" / "final")
    assert any(float((weights(tmp_path / "one" / "final")[k] - w).abs().max()) > 1e-4
               for k, w in weights(world / "model").items())                    # and training moved them


def test_train_lm_settings_under_torchrun_equal_one_process(world: Path, tmp_path: Path) -> None:
    """The LM warm-up, the LM head's own learning rate and the held-out thought LM loss (each rank scores
    every other row; sums and token counts all-reduced, rank 0 writes) under two ranks give what one
    process gives."""
    held = write_rows(tmp_path / "held.jsonl", simple_rows(13, 3)[8:])         # 5 rows: unequal shares
    # 2 steps of a global batch of 4: one epoch of the 8 rows
    args = ["train", "--model", str(world / "model"), "--data", str(world / "rows.jsonl"), "--full",
            "--group-size", "2", "--thought-dropout", "0", "--mixed-precision", "no", "--max_steps", "2",
            "--logging_steps", "1", "--learning_rate", "1e-3", "--warmup_steps", "0", "--save_strategy", "no",
            "--lm-warmup-steps", "1", "--lm-lr-scale", "0.5", "--eval-thoughts", str(held),
            "--eval-thoughts-steps", "1"]
    o1emb(*args, "--out", str(tmp_path / "one"), "--per_device_train_batch_size", "4")
    o1emb(*args, "--out", str(tmp_path / "two"), "--per_device_train_batch_size", "2", ranks=2)
    one, two = (json.loads((tmp_path / run / "thought_lm.json").read_text()) for run in ("one", "two"))
    assert (one["rows"], one["tokens"]) == (two["rows"], two["tokens"]) and one["rows"] == 5
    assert [e["step"] for e in two["history"]] == [0, 1, 2]
    for a, b in zip(one["history"], two["history"], strict=True):
        assert b["thought_lm"] == pytest.approx(a["thought_lm"], abs=1e-5), a["step"]
    assert_same_weights(tmp_path / "one" / "final", tmp_path / "two" / "final")


def test_index_under_torchrun_equals_one_process(world: Path, tmp_path: Path) -> None:
    args = ["index", "--model", str(world / "model"), "--corpus", str(world / "beir" / "corpus.jsonl"),
            "--shard-size", "4", "--batch-size", "3", "--dtype", "float32"]
    one = o1emb(*args, "--out", str(tmp_path / "one"))
    two = o1emb(*args, "--out", str(tmp_path / "two"), ranks=2)
    assert two.stdout.count("indexed 23 docs") == 1 and "indexed 23 docs" in one.stdout
    m1, m2 = (json.loads((tmp_path / r / "manifest.json").read_text()) for r in ("one", "two"))
    for key in ("fingerprint", "corpus_fingerprint", "count", "num_shards", "doc_ids_sha256"):
        assert m1[key] == m2[key], key
    for shard in sorted((tmp_path / "one" / "embeddings").glob("shard-*.npy")):
        a, b = np.load(shard), np.load(tmp_path / "two" / "embeddings" / shard.name)
        assert np.abs(a - b).max() < 1e-6, shard.name


def test_eval_and_mine_under_torchrun_equal_one_process(world: Path, tmp_path: Path) -> None:
    """The ranks share the corpus encoding and the (thinking) queries; rank 0 writes one report."""
    args = ["eval", "--model", str(world / "model"), "--data", str(world / "beir"), "--dtype", "float32",
            "--n-thoughts", "2", "--max-new-tokens", "5", "--no-cache", "--batch-size", "2"]
    o1emb(*args, "--out", str(tmp_path / "one.json"))
    two = o1emb(*args, "--out", str(tmp_path / "two.json"), ranks=2)
    assert two.stdout.count("report:") == 1
    a, b = (json.loads((tmp_path / f"{r}.json").read_text()) for r in ("one", "two"))
    assert a["num_queries"] == b["num_queries"] == 7
    for name, value in a["metrics"].items():
        assert b["metrics"][name] == pytest.approx(value, abs=1e-6), name
    mine = ["mine", "--data", str(world / "beir"), "--split", "test", "--retriever", str(world / "model"),
            "--negatives", "3", "--ranks", "1-10", "--no-think", "--dtype", "float32"]
    o1emb(*mine, "--out", str(tmp_path / "one.jsonl"))
    o1emb(*mine, "--out", str(tmp_path / "two.jsonl"), ranks=2)
    assert (tmp_path / "one.jsonl").read_text() == (tmp_path / "two.jsonl").read_text()


def test_every_rank_redraws_negatives_and_thought_dropout_each_epoch(world: Path, tmp_path: Path) -> None:
    """Three epochs with thought dropout: two ranks train as one process does, which draws every epoch
    anew (tests/test_training_data.py spies on the draws); a rank left on epoch 0's draws would differ."""
    args = ["train", "--model", str(world / "model"), "--data", str(world / "rows.jsonl"), "--full",
            "--group-size", "2", "--thought-dropout", "0.5", "--mixed-precision", "no", "--num_train_epochs", "3",
            "--logging_steps", "1", "--learning_rate", "1e-3", "--warmup_steps", "0", "--save_strategy", "no"]
    o1emb(*args, "--out", str(tmp_path / "one"), "--per_device_train_batch_size", "4")
    o1emb(*args, "--out", str(tmp_path / "two"), "--per_device_train_batch_size", "2", ranks=2)
    assert_same_weights(tmp_path / "one" / "final", tmp_path / "two" / "final")
