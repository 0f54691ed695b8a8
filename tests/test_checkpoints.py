"""Checkpoints and dtypes: ``auto`` resolution, a fingerprint that ignores the load dtype, indexes
shared across dtypes, and bad GGUF files refused with one line (exit 2, nothing written)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from o1embedder.checkpoints import auto_dtype, check_gguf, cpu_has_native_bf16, is_gguf, resolve_dtype
from o1embedder.cli import main
from o1embedder.errors import IndexMismatchError, InputError, ModelError
from o1embedder.model import O1Embedder

DOCS = {f"d{i}": {"title": f"Doc {i}", "text": f"text about topic {i} and thing {i % 3}"} for i in range(12)}


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch):
    def set_flag(value: bool) -> None:
        monkeypatch.setenv("O1EMB_CPU_BF16", "1" if value else "0")
        cpu_has_native_bf16.cache_clear()

    yield set_flag
    cpu_has_native_bf16.cache_clear()


def test_auto_dtype_follows_the_cpu(native_bf16) -> None:
    cpu = torch.device("cpu")
    native_bf16(True)
    assert auto_dtype(cpu) == torch.bfloat16 and resolve_dtype("auto", cpu) == torch.bfloat16
    assert resolve_dtype(None, cpu) == torch.bfloat16
    native_bf16(False)
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16 and resolve_dtype("float16", cpu) == torch.float16
    with pytest.raises(InputError, match="unknown dtype"):
        resolve_dtype("int8", cpu)


def test_auto_dtype_is_what_a_model_loads_with(tiny_qwen_path: Path, native_bf16) -> None:
    native_bf16(True)
    assert O1Embedder.from_pretrained(tiny_qwen_path, device="cpu").dtype == torch.bfloat16
    native_bf16(False)
    assert O1Embedder.from_pretrained(tiny_qwen_path, device="cpu").dtype == torch.float32


def test_fingerprint_is_the_same_for_every_dtype_and_after_save(tiny_llama_path: Path, tmp_path: Path) -> None:
    models = {d: O1Embedder.from_pretrained(tiny_llama_path, device="cpu", dtype=d)
              for d in ("float32", "bfloat16", "float16")}
    assert {m.dtype for m in models.values()} == {torch.float32, torch.bfloat16, torch.float16}
    prints = {d: m.fingerprint() for d, m in models.items()}
    assert len(set(prints.values())) == 1, prints
    for d, m in models.items():                      # saved in its own dtype, loaded in another
        m.save_pretrained(tmp_path / d)
        other = "float32" if d != "float32" else "bfloat16"
        assert O1Embedder.from_pretrained(tmp_path / d, device="cpu", dtype=other).fingerprint() == prints[d]


def test_fingerprint_follows_weight_changes(tiny_qwen_path: Path) -> None:
    model = O1Embedder.from_pretrained(tiny_qwen_path, device="cpu", dtype="float32")
    before = model.fingerprint()
    with torch.no_grad():                            # an in-place update, as an optimizer step does
        next(model.model.parameters()).add_(0.5)
    assert model.fingerprint() != before


@pytest.mark.parametrize(("built", "searched"), [("bfloat16", "float32"), ("float32", "bfloat16")])
def test_index_built_in_one_dtype_searches_in_another(tiny_qwen_path: Path, tmp_path: Path, built: str,
                                                      searched: str) -> None:
    from o1embedder.retrieval import build_index, open_retriever

    build_index(str(tiny_qwen_path), DOCS, tmp_path / "index", dtype=built, show_progress=False)
    retriever = open_retriever(tmp_path / "index", dtype=searched, think=False)
    assert retriever.encoder.model.dtype == getattr(torch, searched)
    assert retriever.manifest["encoder"]["dtype"] == built
    queries = ["topic 3", "thing 1"]
    results = retriever.search(queries, k=3)
    # the same scores computed by hand: documents by the build dtype, queries by the search dtype
    docs = O1Embedder.from_pretrained(tiny_qwen_path, device="cpu", dtype=built).encode_corpus(list(DOCS.values()))
    q = O1Embedder.from_pretrained(tiny_qwen_path, device="cpu", dtype=searched).encode_queries(queries, think=False)
    scores, ids = q @ docs.T, list(DOCS)
    for row, result in zip(scores, results, strict=True):
        assert [d for d, _ in result.hits] == [ids[i] for i in np.argsort(-row, kind="stable")[:3]]
        np.testing.assert_allclose([s for _, s in result.hits], np.sort(row)[::-1][:3], atol=1e-5)


def test_another_model_is_still_refused(tiny_qwen_path: Path, tiny_llama_path: Path, tmp_path: Path) -> None:
    from o1embedder.retrieval import build_index, open_retriever

    build_index(str(tiny_qwen_path), DOCS, tmp_path / "index", dtype="bfloat16", show_progress=False)
    with pytest.raises(IndexMismatchError):
        open_retriever(tmp_path / "index", model=str(tiny_llama_path), dtype="float32", think=False)


# -- GGUF files -----------------------------------------------------------------------------------

def _write_gguf(path: Path, architecture: str, values: int = 4096) -> Path:
    gguf = pytest.importorskip("gguf")
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.arange(values, dtype=np.float32).reshape(-1, 64))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_is_gguf(tmp_path: Path) -> None:
    plain = tmp_path / "weights.bin"
    plain.write_bytes(b"GGUF\x03\x00\x00\x00")
    assert is_gguf(plain) and is_gguf(_write_gguf(tmp_path / "m.gguf", "llama"))
    (tmp_path / "x.txt").write_text("hello")
    assert not is_gguf(tmp_path / "x.txt") and not is_gguf(tmp_path)


def test_unsupported_architecture_is_named(tmp_path: Path) -> None:
    path = _write_gguf(tmp_path / "bert.gguf", "bert")
    with pytest.raises(ModelError, match="architecture 'bert' is not supported"):
        check_gguf(path)


def test_truncated_gguf_is_named(tmp_path: Path) -> None:
    whole = _write_gguf(tmp_path / "whole.gguf", "llama").read_bytes()
    for cut in (len(whole) - 1000, 200, 10):
        (tmp_path / "cut.gguf").write_bytes(whole[:cut])
        with pytest.raises(ModelError, match="truncated|corrupt"):
            check_gguf(tmp_path / "cut.gguf")
    (tmp_path / "fake.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(ModelError, match="not a GGUF file"):
        check_gguf(tmp_path / "fake.gguf")


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("command", ["convert", "think"])
def test_bad_gguf_exits_2_with_one_line_and_writes_nothing(tmp_path: Path, capsys, command: str) -> None:
    bad = {"unsupported": _write_gguf(tmp_path / "bert.gguf", "bert")}
    whole = _write_gguf(tmp_path / "whole.gguf", "llama").read_bytes()
    bad["truncated"] = tmp_path / "cut.gguf"
    bad["truncated"].write_bytes(whole[: len(whole) // 2])
    for name, path in bad.items():
        out = tmp_path / f"out-{name}"
        args = ["convert", str(path), str(out)] if command == "convert" else ["think", "--model", str(path), "q"]
        code, err = _cli(args, capsys)
        assert code == 2, (name, err)
        assert len(err.splitlines()) == 1 and str(path) in err, err
        assert not out.exists()
        assert not list(tmp_path.glob(".out-*"))        # no temporary folder left behind


def test_missing_gguf_package_names_the_extra(tmp_path: Path) -> None:
    path = _write_gguf(tmp_path / "m.gguf", "llama")
    code = ("import sys; sys.modules['gguf'] = None\n"
            "from o1embedder.cli import main\n"
            f"sys.exit(main(['convert', {str(path)!r}, {str(tmp_path / 'out')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "o1embedder[gguf]" in lines[0] and "'gguf' package" in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


def test_convert_refuses_a_non_empty_output(tmp_path: Path, capsys, tiny_qwen_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    code, err = _cli(["convert", str(tiny_qwen_path), str(tmp_path / "out")], capsys)
    assert code == 2 and "not an empty folder" in err
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_convert_a_folder_keeps_the_weights(tmp_path: Path, capsys, tiny_llama_path: Path) -> None:
    code, _ = _cli(["convert", str(tiny_llama_path), str(tmp_path / "plain"), "--dtype", "bfloat16"], capsys)
    assert code == 0
    original = O1Embedder.from_pretrained(tiny_llama_path, device="cpu", dtype="bfloat16")
    converted = O1Embedder.from_pretrained(tmp_path / "plain", device="cpu", dtype="bfloat16")
    assert converted.fingerprint() == original.fingerprint()
