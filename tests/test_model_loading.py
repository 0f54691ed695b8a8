"""Round trips and the three checkpoint kinds: ours, the authors' released layout, a plain base LM."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from o1embedder.errors import ModelError
from o1embedder.formats import SPECIAL_TOKENS
from o1embedder.model import O1Embedder, ThinkConfig
from o1embedder.model.settings import SETTINGS_FILE
from o1embedder.toy import build_model, train_tokenizer

DOCS = [{"title": "Tokyo Tower", "text": "Tokyo Tower was designed by Tachu Naito."}, "a plain string document",
        {"title": "", "text": "no title here"}]
QUERIES = ["who designed tokyo tower?", "what else did the designer build?"]


def _vectors(model: O1Embedder) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    docs = model.encode_corpus(DOCS)
    think = model.encode_queries(QUERIES, n_thoughts=2, temperature=1.0, max_new_tokens=6, seed=5)
    plain = model.encode_queries(QUERIES, think=False)
    return docs, think, plain


def test_save_load_round_trip_gives_identical_vectors(tiny_qwen: O1Embedder, tmp_path):
    tiny_qwen.settings.think = ThinkConfig(n_thoughts=2, temperature=0.7, top_p=0.8, max_new_tokens=9, seed=4)
    try:
        tiny_qwen.save_pretrained(tmp_path / "m")
        again = O1Embedder.from_pretrained(tmp_path / "m", device="cpu", dtype="float32")
        assert again.settings == tiny_qwen.settings
        for a, b in zip(_vectors(tiny_qwen), _vectors(again)):
            assert np.array_equal(a, b)
        assert again.fingerprint() == tiny_qwen.fingerprint()
        saved = json.loads((tmp_path / "m" / SETTINGS_FILE).read_text())
        assert saved["library_version"] and saved["template"]["emb"] == "<emb>"
        assert list((tmp_path / "m").glob("*.safetensors")) and not list((tmp_path / "m").glob("*.bin"))
    finally:
        tiny_qwen.settings.think = ThinkConfig()


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_authors_layout_loads_without_adding_tokens(family: str, tmp_path, caplog):
    """A merged causal LM whose tokenizer already holds the four tokens, saved by plain HF code."""
    tokenizer = train_tokenizer(family=family, with_special_tokens=True)
    model = build_model(tokenizer, family=family, seed=3)
    model.save_pretrained(tmp_path, safe_serialization=True)
    tokenizer.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="o1embedder"):
        loaded = O1Embedder.from_pretrained(tmp_path, device="cpu", dtype="float32")
    assert "added" not in caplog.text
    assert len(loaded.tokenizer) == len(tokenizer)
    assert loaded.model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    # parity with a manual forward of the authors' text template through the HF model
    for query in QUERIES:
        text = f"<query>{query}</query><thought><emb>"
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        assert ids == loaded.template.query_ids(query, None)[0]
        with torch.no_grad():
            hidden = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0, -1]
        manual = torch.nn.functional.normalize(hidden, dim=-1).numpy()
        ours = loaded.encode_queries([query], think=False)[0]
        assert float(ours @ manual) >= 0.99999
    doc_ids = tokenizer("Tokyo Tower Tokyo Tower was designed by Tachu Naito.<emb>")["input_ids"]
    assert doc_ids == loaded.template.document_ids(DOCS[0])


def test_base_lm_gets_tokens_with_mean_rows_and_a_warning(tmp_path, caplog):
    tokenizer = train_tokenizer(family="llama")
    model = build_model(tokenizer, family="llama", seed=1)
    model.save_pretrained(tmp_path, safe_serialization=True)
    tokenizer.save_pretrained(tmp_path)
    old_rows = model.get_input_embeddings().weight.detach().clone()
    old_head = model.get_output_embeddings().weight.detach().clone()
    with caplog.at_level(logging.WARNING, logger="o1embedder"):
        loaded = O1Embedder.from_pretrained(tmp_path, device="cpu", dtype="float32")
    assert "untrained" in caplog.text
    assert len(loaded.tokenizer) == len(tokenizer) + 4
    ids = loaded.tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    emb = loaded.model.get_input_embeddings().weight.detach()
    head = loaded.model.get_output_embeddings().weight.detach()
    assert torch.allclose(emb[ids], old_rows.mean(0).expand(4, -1), atol=1e-6)
    assert torch.allclose(head[ids], old_head.mean(0).expand(4, -1), atol=1e-6)
    assert torch.equal(emb[: old_rows.shape[0]], old_rows)
    # Llama-style tokenizer: exactly one BOS, never two
    seq = loaded.template.query_ids("who?", "a thought")[0]
    assert seq[0] == loaded.tokenizer.bos_token_id and seq[1] != loaded.tokenizer.bos_token_id
    assert seq.count(loaded.tokenizer.bos_token_id) == 1
    # saved again, it is "ours" and loads without adding anything
    loaded.save_pretrained(tmp_path / "o1")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="o1embedder"):
        again = O1Embedder.from_pretrained(tmp_path / "o1", device="cpu", dtype="float32")
    assert "added" not in caplog.text and len(again.tokenizer) == len(loaded.tokenizer)


def test_qwen_style_tokenizer_gets_no_bos(tiny_qwen: O1Embedder):
    assert tiny_qwen.template.bos == []
    assert tiny_qwen.template.query_ids("q", None)[0][0] == tiny_qwen.template.query_start_id


def test_loading_is_safe_by_default(tiny_qwen_path, tmp_path):
    """Pickled weights are refused; remote code is off unless asked."""
    import shutil

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_qwen_path, folder)
    for f in folder.glob("*.safetensors"):
        f.unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(ModelError, match="safetensors only"):
        O1Embedder.from_pretrained(folder)


def test_model_without_lm_head_is_refused(tmp_path):
    tokenizer = train_tokenizer(with_special_tokens=True)
    model = build_model(tokenizer)
    model.get_decoder().save_pretrained(tmp_path / "bare")  # a Qwen2Model: no lm_head weights
    tokenizer.save_pretrained(tmp_path / "bare")
    with pytest.raises(ModelError, match="LM head"):
        O1Embedder.from_pretrained(tmp_path / "bare")
    from transformers import DistilBertConfig, DistilBertModel

    DistilBertModel(DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=1, n_heads=2,
                                     hidden_dim=64)).save_pretrained(tmp_path / "encoder")
    tokenizer.save_pretrained(tmp_path / "encoder")
    with pytest.raises(ModelError, match="not a causal LM"):
        O1Embedder.from_pretrained(tmp_path / "encoder")


def test_missing_and_broken_paths(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        O1Embedder.from_pretrained(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ModelError, match="folder"):
        O1Embedder.from_pretrained(tmp_path / "file.txt")
    with pytest.raises(ModelError, match="config.json"):
        O1Embedder.from_pretrained(tmp_path)


def test_broken_settings_file_is_a_clear_error(tiny_qwen_path, tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(tiny_qwen_path, folder)
    (folder / SETTINGS_FILE).write_text(json.dumps({"pooling": "emb_token", "colour": "blue"}))
    with pytest.raises(ModelError, match="unknown model settings"):
        O1Embedder.from_pretrained(folder)


def test_settings_are_read_from_a_hub_repository(tiny_qwen_path, tmp_path):
    """A hub id finds ``o1embedder.json`` as a folder does: here from a local hub cache, offline."""
    import shutil
    import subprocess
    import sys

    settings = json.loads((tiny_qwen_path / SETTINGS_FILE).read_text())
    settings["think"]["n_thoughts"] = 5                      # not the default: proves the file was read
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--acme--o1-tiny"
    snapshot = repo / "snapshots" / commit
    shutil.copytree(tiny_qwen_path, snapshot)
    (snapshot / SETTINGS_FILE).write_text(json.dumps(settings))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    code = ("from o1embedder.model import O1Embedder; "
            "m = O1Embedder.from_pretrained('acme/o1-tiny', device='cpu', dtype='float32'); "
            "print(m.settings.think.n_thoughts, len(m.tokenizer))")
    env = {**__import__("os").environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[0] == "5"
    assert "untrained" not in proc.stderr                   # special tokens found: no mean-initialised rows
