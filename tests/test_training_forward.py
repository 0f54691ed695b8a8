"""The training forward: parity with HF's full-logits LM loss and with inference pooling; GradCache
equivalence with the plain path (single process; the 2-rank case is in test_distributed.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from o1embedder.model import O1Embedder
from o1embedder.model.thinking import positions_from_mask
from o1embedder.training.api import build
from o1embedder.training.config import GradCacheConfig
from o1embedder.training.forward import joint_parts
from o1embedder.training.gradcache import gradcache_parts

sys.path.insert(0, str(Path(__file__).parent / "dist_scripts"))
from helpers import config, fixed_batch, grads, simple_rows, write_rows  # noqa: E402


@pytest.fixture(scope="module")
def setup(tiny_qwen_path: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("fwd")
    data = write_rows(tmp / "rows.jsonl", simple_rows(6, 3, thought_every=2))
    return tiny_qwen_path, data, tmp


def test_thought_lm_loss_equals_hf_full_logits_loss(setup) -> None:
    """Acceptance 3 (parity): our selected-positions loss == HF causal-LM loss with labels -100 elsewhere."""
    model_path, data, tmp = setup
    parts = build(config(model_path, data, tmp / "o", mode="full"))
    model = parts.model.double().eval()
    batch = fixed_batch(parts, list(range(6)))
    ours = model.encode_queries(batch["q_ids"], batch["q_mask"], batch["lm_rows"], batch["lm_cols"],
                                batch["lm_labels"])
    labels = torch.full_like(batch["q_ids"], -100)
    labels[batch["lm_rows"], batch["lm_cols"] + 1] = batch["lm_labels"]        # HF shifts inside
    hf = model.lm(input_ids=batch["q_ids"], attention_mask=batch["q_mask"],
                  position_ids=positions_from_mask(batch["q_mask"]), labels=labels, use_cache=False).loss
    assert abs(float(ours.lm_sum.detach()) / ours.lm_count - float(hf.detach())) < 1e-5
    model.float()


def test_training_vectors_equal_inference_vectors(setup) -> None:
    model_path, data, tmp = setup
    parts = build(config(model_path, data, tmp / "o", mode="full"))
    batch = fixed_batch(parts, [0, 1, 2])
    with torch.no_grad():
        out = parts.model.eval()(**batch)
    inference = O1Embedder(parts.model.lm, parts.tokenizer, parts.settings)
    seqs = [parts.dataset[i]["query_ids"] for i in range(3)]
    docs = [d for i in range(3) for d in parts.dataset[i]["doc_ids"]]
    assert np.allclose(out["q"].numpy(), inference.embed_ids(seqs), atol=1e-5)
    assert np.allclose(out["d"].numpy(), inference.embed_ids(docs), atol=1e-5)


@pytest.mark.parametrize(("mode", "dropout", "chunks"), [("full", 0.0, (4, 5)), ("lora", 0.0, (2, 7)),
                                                       ("lora", 0.1, (6, 24))])
def test_gradcache_matches_plain_path(setup, mode: str, dropout: float, chunks: tuple[int, int]) -> None:
    """Acceptance 2 (equivalence): same loss parts and gradients (float64 to 1e-5, in fact ~1e-12).

    With dropout the masks depend on how the batch is cut, so that case uses one chunk per side:
    it checks that the replay reproduces the first pass's masks (saved RNG states).
    """
    model_path, data, tmp = setup
    cfg = config(model_path, data, tmp / "o", mode=mode)
    cfg.adapter.dropout = dropout
    results = []
    for cached in (False, True):
        torch.manual_seed(1234)                      # LoRA A is randomly initialised
        parts = build(cfg)
        model = parts.model.double().train()
        batch = fixed_batch(parts, list(range(6)))
        torch.manual_seed(0)
        if cached:
            loss = gradcache_parts(model, batch, cfg.loss, GradCacheConfig(True, *chunks))
        else:
            out = model(**batch)
            loss = joint_parts(out["q"], out["d"], out["lm_sum"], out["lm_count"], None, cfg.loss)
        loss["loss"].backward()
        results.append(({k: float(v.detach()) for k, v in loss.items()}, grads(model)))
    (plain_loss, plain_grads), (gc_loss, gc_grads) = results
    for name, value in plain_loss.items():
        assert abs(gc_loss[name] - value) < 1e-5, name
    assert plain_grads.keys() == gc_grads.keys() and plain_grads
    worst = max(float((gc_grads[n] - g).abs().max()) for n, g in plain_grads.items())
    assert worst < 1e-5


def test_empty_thought_batch_gives_zero_lm_loss(setup) -> None:
    model_path, data, tmp = setup
    cfg = config(model_path, data, tmp / "o", mode="full")
    parts = build(cfg)
    batch = fixed_batch(parts, [1, 3])                 # rows without thoughts
    assert batch["lm_labels"].numel() == 0
    out = parts.model.train()(**batch)
    loss = joint_parts(out["q"], out["d"], out["lm_sum"], out["lm_count"], None, cfg.loss)
    assert float(loss["thought_lm"].detach()) == 0.0 and torch.isfinite(loss["loss"])
    loss["loss"].backward()
