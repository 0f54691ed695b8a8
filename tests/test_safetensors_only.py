"""Safetensors only, everywhere: a model folder whose weights are pickled (``pytorch_model.bin``) is
refused by every loader - the ``hf:`` expert, train, rl, index (O1 and ``st:``), convert - with one
line naming safetensors and exit 2; the pickle is never opened."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from o1embedder.cli import main
from o1embedder.errors import ModelError

sys.path.insert(0, str(Path(__file__).parent / "dist_scripts"))
from helpers import simple_rows, write_rows  # noqa: E402


def pickled_copy(src: Path, dst: Path) -> Path:
    """``src`` with its safetensors weights re-saved as a torch pickle (``pytorch_model.bin``)."""
    import torch
    from safetensors.torch import load_file

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors"))
    state = {}
    for weights in src.glob("*.safetensors"):
        state.update(load_file(str(weights)))
    torch.save(state, dst / "pytorch_model.bin")
    return dst


@pytest.fixture(scope="module")
def pickled(tiny_qwen_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pickled_copy(tiny_qwen_path, tmp_path_factory.mktemp("pickled") / "model")


def test_the_pickled_folder_is_a_loadable_model(pickled: Path) -> None:
    """transformers itself would load it (so the refusals below are ours, not a broken fixture)."""
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(pickled) is not None


def _one_line_exit_2(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    code = main(["--log-level", "ERROR", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"o1emb {argv[0]}: error:") and "Traceback" not in err, err
    assert "safetensors" in lines[0]
    return lines[0]


def _corpus(path: Path) -> Path:
    path.write_text("".join(json.dumps({"_id": f"d{i}", "text": f"text {i}"}) + "\n" for i in range(4)))
    return path


def test_cli_loaders_refuse_pickled_weights(pickled: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rows = write_rows(tmp_path / "rows.jsonl", simple_rows(6, 3))
    corpus = _corpus(tmp_path / "corpus.jsonl")
    commands = [
        ["synthesize", "--input", str(rows), "--out", str(tmp_path / "cand.jsonl"), "--expert", f"hf:{pickled}",
         "--no-progress"],
        ["train", "--model", str(pickled), "--data", str(rows), "--out", str(tmp_path / "train"), "--full",
         "--max_steps", "1", "--report_to", "none"],
        ["rl", "--model", str(pickled), "--data", str(rows), "--out", str(tmp_path / "rl")],
        ["index", "--model", str(pickled), "--corpus", str(corpus), "--out", str(tmp_path / "idx")],
        ["convert", str(pickled), str(tmp_path / "converted")],
    ]
    for argv in commands:
        line = _one_line_exit_2(capsys, argv)
        assert "pytorch_model.bin" in line, line
    assert not (tmp_path / "cand.jsonl").exists() and not (tmp_path / "converted").exists()
    assert not (tmp_path / "idx" / "manifest.json").exists()


def test_sentence_transformers_folders_too(minilm_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("sentence_transformers")
    from o1embedder.retrieval.encoders import STEncoder

    st = pickled_copy(minilm_path, tmp_path / "st")
    corpus = _corpus(tmp_path / "corpus.jsonl")
    _one_line_exit_2(capsys, ["index", "--model", f"st:{st}", "--corpus", str(corpus), "--out", str(tmp_path / "i")])
    # a module folder (a Dense layer) with pickled weights only, beside safe root weights
    dense = shutil.copytree(minilm_path, tmp_path / "st-dense")
    (dense / "2_Dense").mkdir()
    (dense / "2_Dense" / "pytorch_model.bin").write_bytes(b"not opened")
    with pytest.raises(ModelError, match="2_Dense.*safetensors only"):
        STEncoder(str(dense))
