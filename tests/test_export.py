"""``o1emb export``: GGUF files that transformers (and so llama.cpp's format readers) load back into the
same model and tokenizer - weights exact in f32, close in q8_0, the O1 special tokens whole, the same
greedy thoughts - and plain Hugging Face folders; errors name what is wrong. (llama.cpp itself:
tests/test_llamacpp.py, when llama-cpp-python is installed.)"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import with_rope

from o1embedder.cli import main
from o1embedder.errors import InputError
from o1embedder.export import export_gguf, export_hf, rotary_interleave

pytest.importorskip("gguf")

QUERIES = ["alpha river tower", "which bridge crosses the ocean", "copper and silver"]


def _model(family: str, request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue("tiny_llama_path" if family == "llama" else "tiny_qwen_path")


def _loaded(folder: Path, name: str | None = None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    extra = {"gguf_file": name} if name else {}
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **extra)
    return model, AutoTokenizer.from_pretrained(folder, **extra)


@pytest.mark.parametrize("family", ["llama", "qwen"])
def test_an_f32_gguf_loads_back_into_the_same_weights_and_tokenizer(family: str, request, tmp_path: Path) -> None:
    folder = _model(family, request)
    export_gguf(folder, tmp_path / "m.gguf", qtype="f32")
    back, back_tok = _loaded(tmp_path, "m.gguf")
    original, tok = _loaded(folder)
    ours, theirs = original.state_dict(), back.state_dict()
    assert set(ours) <= set(theirs)
    for name, tensor in ours.items():
        assert torch.equal(theirs[name], tensor), name               # q/k permuted there and back exactly
    text = "<query>alpha beta</query><thought>river tower<emb>"
    assert back_tok.encode(text, add_special_tokens=False) == tok.encode(text, add_special_tokens=False)
    for special in ("<query>", "</query>", "<thought>", "<emb>"):
        assert back_tok.convert_tokens_to_ids(special) == tok.convert_tokens_to_ids(special), special
    assert back_tok.eos_token_id == tok.eos_token_id


def test_q8_0_is_close_and_f16_thinks_the_same_greedy_thoughts(tiny_llama_path: Path, tmp_path: Path) -> None:
    from o1embedder.model import O1Embedder

    export_gguf(tiny_llama_path, tmp_path / "f16.gguf", qtype="f16")
    export_gguf(tiny_llama_path, tmp_path / "q8.gguf", qtype="q8_0")
    original, _ = _loaded(tiny_llama_path)
    q8, _ = _loaded(tmp_path, "q8.gguf")
    for name, tensor in original.state_dict().items():
        if tensor.ndim == 2:
            assert float((q8.state_dict()[name] - tensor).abs().max()) <= 0.01 * float(tensor.abs().max()), name
    ours = O1Embedder.from_pretrained(tiny_llama_path, device="cpu", dtype="float32")
    exported = O1Embedder.from_pretrained(tmp_path / "f16.gguf", device="cpu", dtype="float32")
    greedy = {"n_thoughts": 1, "temperature": 0.0, "max_new_tokens": 6, "embed": False, "show_progress": False}
    a, b = ours.think(QUERIES, **greedy).ids, exported.think(QUERIES, **greedy).ids
    agree = sum(x == y for x, y in zip(a, b, strict=True))
    assert agree >= len(QUERIES) - 1, (a, b)                         # f16 rounding may flip a near-tie


def test_rotary_interleave_puts_each_pair_side_by_side() -> None:
    w = np.arange(8, dtype=np.float32).reshape(8, 1)                  # 2 heads x head_dim 4: [x0 x1 | y0 y1]
    assert rotary_interleave(w, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_the_hf_export_is_the_causal_lm_alone(tiny_qwen_path: Path, tmp_path: Path) -> None:
    out = export_hf(tiny_qwen_path, tmp_path / "hf")
    assert (out / "config.json").is_file() and not (out / "o1embedder.json").exists()
    model, tok = _loaded(out)
    original, _ = _loaded(tiny_qwen_path)
    for name, tensor in original.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert tok.convert_tokens_to_ids("<emb>") == _loaded(tiny_qwen_path)[1].convert_tokens_to_ids("<emb>")
    with pytest.raises(InputError, match="not empty"):
        export_hf(tiny_qwen_path, out)


def test_bad_input_gets_one_line(tiny_qwen_path: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    assert main(["export", str(tiny_qwen_path)]) == 2
    assert "nothing to write" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--gguf", str(tmp_path / "x.gguf")]) == 2
    assert "config.json" in capsys.readouterr().err
    spm = tmp_path / "spm"
    shutil.copytree(tiny_qwen_path, spm)
    data = json.loads((spm / "tokenizer.json").read_text())
    data["model"]["byte_fallback"] = True
    (spm / "tokenizer.json").write_text(json.dumps(data))
    assert main(["export", str(spm), "--gguf", str(tmp_path / "y.gguf")]) == 2
    assert "byte-level BPE" in capsys.readouterr().err and not (tmp_path / "y.gguf").exists()
    monkeypatch.setitem(sys.modules, "gguf", None)
    assert main(["export", str(tiny_qwen_path), "--gguf", str(tmp_path / "z.gguf")]) == 2
    assert "o1embedder[gguf]" in capsys.readouterr().err


def test_the_rotary_base_is_read_where_transformers_5_writes_it(tiny_llama_path: Path, tmp_path: Path) -> None:
    """transformers 5 keeps rope_theta under ``rope_parameters``: an export that read only the top-level
    key wrote llama.cpp's default base (10,000) for SmolLM2's 100,000, and llama.cpp's greedy thoughts
    diverged from ours within a few tokens. Scaled RoPE types are refused."""
    from gguf import GGUFReader

    folder = tmp_path / "theta"
    config = with_rope(tiny_llama_path, folder, {"rope_theta": 100000.0, "rope_type": "default"})
    reader = GGUFReader(str(export_gguf(folder, tmp_path / "theta.gguf", qtype="f32")))
    field = reader.fields["llama.rope.freq_base"]
    assert float(field.parts[field.data[0]][0]) == 100000.0
    config["rope_parameters"] = {"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0,
                                 "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                 "original_max_position_embeddings": 8192}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="llama3"):
        export_gguf(folder, tmp_path / "scaled.gguf")
