"""Acceptance 4: under LoRA the special-token rows learn, the base weights do not; the merged export
loads with ``O1Embedder.from_pretrained`` and gives the adapter model's vectors. Also: resume."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from o1embedder.model import O1Embedder
from o1embedder.training import train
from o1embedder.training.adapters import export_merged
from o1embedder.training.api import build, training_arguments
from o1embedder.training.trainer import O1Trainer

sys.path.insert(0, str(Path(__file__).parent / "dist_scripts"))
from helpers import config, simple_rows, write_rows  # noqa: E402


def _vectors(model: O1Embedder, rows: list[dict]) -> np.ndarray:
    queries = [r["query"] for r in rows]
    return np.concatenate([
        model.encode_queries(queries, think=False, show_progress=False),
        model.encode_queries(queries, thoughts=[r["thought"] for r in rows], show_progress=False),
        model.encode_corpus([r["pos"][0] for r in rows], show_progress=False)])


def test_lora_trains_token_rows_freezes_base_and_exports(tiny_qwen_path: Path, tmp_path: Path) -> None:
    rows = simple_rows(16, 3)
    cfg = config(tiny_qwen_path, write_rows(tmp_path / "rows.jsonl", rows), tmp_path / "out", mode="lora",
                 max_steps=8, per_device_train_batch_size=4, learning_rate=1e-2, save_strategy="no")
    torch.manual_seed(0)
    parts = build(cfg)
    lm, ids = parts.model.lm, sorted(parts.template.special_ids)
    frozen = {n: p.detach().clone() for n, p in lm.named_parameters() if not p.requires_grad}
    base = load_file(str(tiny_qwen_path / "model.safetensors"))
    O1Trainer(model=parts.model, args=training_arguments(cfg), train_dataset=parts.dataset,
              data_collator=parts.collator, loss_config=cfg.loss).train()
    for name, param in lm.named_parameters():
        if not param.requires_grad:
            assert torch.equal(param, frozen[name]), name
    adapter_vectors = _vectors(O1Embedder(lm, parts.tokenizer, parts.settings), rows)
    out = export_merged(lm, parts.tokenizer, parts.settings, tmp_path / "merged")
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))          # safetensors only
    merged = O1Embedder.from_pretrained(out, device="cpu", dtype="float32")
    assert np.abs(_vectors(merged, rows) - adapter_vectors).max() < 1e-5
    emb = merged.model.get_input_embeddings().weight.detach()
    head = merged.model.get_output_embeddings().weight.detach()
    others = [i for i in range(emb.shape[0]) if i not in ids]
    for trained, original in ((emb, base["model.embed_tokens.weight"]), (head, base["lm_head.weight"])):
        assert torch.equal(trained[others], original[others])                 # ordinary rows untouched
        assert (trained[ids] - original[ids]).abs().amax(dim=1).min() > 1e-4  # every special row moved


def test_resumed_run_equals_unbroken_run(tiny_qwen_path: Path, tmp_path: Path) -> None:
    data = write_rows(tmp_path / "rows.jsonl", simple_rows(8, 3))
    common = {"max_steps": 4, "per_device_train_batch_size": 4, "learning_rate": 1e-2, "save_strategy": "steps",
              "save_steps": 2}
    whole = train(config(tiny_qwen_path, data, tmp_path / "a", mode="lora", **common))
    assert (tmp_path / "a" / "checkpoint-2" / "o1emb_train.json").is_file()
    ckpt = load_file(str(tmp_path / "a" / "checkpoint-2" / "model.safetensors"))
    assert ckpt and all("lora_" in k or "trainable_tokens" in k for k in ckpt)   # adapters + token rows only
    resumed = train(config(tiny_qwen_path, data, tmp_path / "b", mode="lora", **common,
                           resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-2")))
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6
