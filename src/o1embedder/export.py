"""``o1emb export``: a trained O1 model for the generation engines - a GGUF file for llama.cpp, and a
plain Hugging Face folder for vLLM and other servers (docs/serving.md, "Thinking on another engine").

The engines only write the thoughts; the vector still comes from our model (the given-thoughts path),
so what an export must keep exactly is the language model and its tokenizer: the O1 special tokens
(``<query>``, ``</query>``, ``<thought>``, ``<emb>``) keep their ids, the LoRA is already merged into an
O1 folder's weights, and the chat template travels along.

GGUF (``gguf`` package's writer, no llama.cpp needed to write it):

- architectures: Llama-family configs (``llama``, ``mistral``: GGUF ``llama``) and Qwen2 (``qwen2``), with
  the hyper-parameters llama.cpp reads (context, widths, heads, RMS epsilon, RoPE base: ``rope_theta``
  or, as transformers 5 writes it, ``rope_parameters.rope_theta``; scaled RoPE types are refused);
- Llama's query and key projections are permuted from Hugging Face's half-split rotary layout to the
  interleaved one llama.cpp's ``llama`` architecture rotates (Qwen2 in llama.cpp rotates the half-split
  layout: its weights go as they are);
- tensor types: ``f32``, ``f16``, ``bf16``, ``q8_0``, ``q4_0``, ``q4_1``, ``q5_0``, ``q5_1`` for the 2-D
  weights (norms and biases stay float32; a weight whose rows do not divide into the type's blocks
  falls back to ``f16``, logged);
- tokenizer: byte-level BPE (``tokenizer.ggml.model`` ``gpt2``): tokens, merges, token types (the
  tokenizer's special tokens CONTROL, other added tokens USER_DEFINED), BOS / EOS / padding ids and
  the chat template; ``pre`` names llama.cpp's pre-tokenizer (``smollm`` for SmolLM2, ``qwen2``, ...;
  default ``default``). The engines are given token ids, not text, so the pre-tokenizer only matters
  to callers who send text. SentencePiece tokenizers are refused for now;
- the model's ``o1embedder.json`` is kept as the string ``o1embedder.config``.

Written under a temporary name and renamed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, ModelError
from .formats import atomic_write
from .log import get_logger

logger = get_logger(__name__)
GGUF_EXTRA = "pip install 'o1embedder[gguf]'  (the gguf package)"
ARCHITECTURES = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2"}
"""Hugging Face ``model_type`` -> GGUF architecture."""
TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1")
HF_FILES = ("config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
            "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
            "vocab.json", "merges.txt", "added_tokens.json")


def _gguf() -> Any:
    try:
        import gguf
    except ImportError:
        raise InputError(f"writing a GGUF file needs the gguf package: {GGUF_EXTRA}") from None
    return gguf


def rotary_interleave(weight: np.ndarray, heads: int) -> np.ndarray:
    """[heads * head_dim, in] from Hugging Face's rotary layout (each head's first half holds the
    first element of every pair) to the interleaved one (pairs side by side), per head."""
    rows = weight.shape[0]
    if rows % (2 * heads):
        raise ModelError(f"a projection of {rows} rows does not split into {heads} heads of pairs")
    half = rows // heads // 2
    return weight.reshape(heads, 2, half, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def weight_files(folder: Path) -> list[Path]:
    """The model's own safetensors files: ``model.safetensors``, or the shards its index names (an O1
    folder also holds other safetensors, such as the think policy's)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, KeyError, AttributeError) as exc:
            raise ModelError(f"{index}: not a safetensors index ({exc})") from None
        return [folder / name for name in names]
    single = folder / "model.safetensors"
    return [single] if single.is_file() else []


def _tensors(folder: Path) -> dict[str, np.ndarray]:
    """Every tensor of the model's safetensors files, as float32 numpy arrays."""
    import torch
    from safetensors.torch import load_file

    files = weight_files(folder)
    if not files:
        raise ModelError(f"{folder}: no model.safetensors (or the shards model.safetensors.index.json names); export "
                         "an O1 model folder (o1emb train's OUT/final)")
    out: dict[str, np.ndarray] = {}
    for file in files:
        for name, tensor in load_file(str(file)).items():
            out[name] = tensor.to(torch.float32).numpy()
    return out


def _vocabulary(folder: Path, rows: int) -> tuple[list[str], list[int], Any]:
    """Tokens (id order, padded to the embedding's rows), their GGUF token types, and the tokenizer."""
    from transformers import AutoTokenizer

    gguf = _gguf()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")) if (folder / "tokenizer.json").is_file() \
        else {}
    model = data.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback") or (data.get("decoder") or {}).get("type") != "ByteLevel":
        raise InputError(f"{folder}: only byte-level BPE tokenizers (GPT-2 style: SmolLM2, Qwen2, Llama 3) are "
                         "exported to GGUF so far; this one is not")
    size = len(tokenizer)
    if size > rows:
        raise ModelError(f"{folder}: the tokenizer has {size} tokens but the embedding only {rows} rows")
    tokens = tokenizer.convert_ids_to_tokens(list(range(size)))
    special = set(tokenizer.all_special_ids)
    added = {i: t for i, t in tokenizer.added_tokens_decoder.items()}
    types = []
    for i in range(size):
        if i in special or (i in added and added[i].special):
            types.append(int(gguf.TokenType.CONTROL))
        elif i in added:
            types.append(int(gguf.TokenType.USER_DEFINED))
        else:
            types.append(int(gguf.TokenType.NORMAL))
    for i in range(size, rows):                     # embedding rows past the vocabulary (padded vocabularies)
        tokens.append(f"[PAD{i}]")
        types.append(int(gguf.TokenType.UNUSED))
    return tokens, types, tokenizer


def rope_theta(config: dict[str, Any], folder: Path) -> float:
    """The rotary base of a config: top-level ``rope_theta`` (transformers 4) or ``rope_parameters``
    (transformers 5 writes it there); scaled rotary embeddings (llama3, yarn, ...) are refused."""
    params = config.get("rope_parameters") or {}
    scaling = config.get("rope_scaling") or {}
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if kind != "default":
        raise InputError(f"{folder}: rotary embeddings of type {kind!r} are not exported to GGUF yet")
    theta = config.get("rope_theta", params.get("rope_theta"))
    if theta is None:
        raise ModelError(f"{folder}: config.json names no rope_theta")
    return float(theta)


def _quantized(gguf: Any, name: str, data: np.ndarray, qtype: str) -> tuple[np.ndarray, Any]:
    q = gguf.GGMLQuantizationType
    if data.ndim == 1 or qtype == "f32":
        return data.astype(np.float32), q.F32
    if qtype == "f16":
        return data.astype(np.float16), q.F16
    wanted = {"bf16": q.BF16, "q8_0": q.Q8_0, "q4_0": q.Q4_0, "q4_1": q.Q4_1, "q5_0": q.Q5_0, "q5_1": q.Q5_1}[qtype]
    block = gguf.GGML_QUANT_SIZES[wanted][0]
    if data.shape[-1] % block:
        logger.info("%s: rows of %d do not divide into %s blocks of %d: written as f16", name, data.shape[-1],
                    qtype, block)
        return data.astype(np.float16), q.F16
    return gguf.quants.quantize(data.astype(np.float32), wanted), wanted


def _file_type(gguf: Any, qtype: str) -> int:
    t = gguf.LlamaFileType
    return int({"f32": t.ALL_F32, "f16": t.MOSTLY_F16, "bf16": t.MOSTLY_BF16, "q8_0": t.MOSTLY_Q8_0,
                "q4_0": t.MOSTLY_Q4_0, "q4_1": t.MOSTLY_Q4_1, "q5_0": t.MOSTLY_Q5_0, "q5_1": t.MOSTLY_Q5_1}[qtype])


def export_gguf(model: str | Path, out: str | Path, *, qtype: str = "f16", pre: str = "default") -> Path:
    """Write the O1 (or any Llama / Qwen2 causal-LM) folder ``model`` as one GGUF file ``out``."""
    gguf = _gguf()
    folder, out = Path(model), Path(out)
    if qtype not in TYPES:
        raise InputError(f"unknown GGUF type {qtype!r}: one of {', '.join(TYPES)}")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder}: cannot read config.json ({exc})") from None
    arch = ARCHITECTURES.get(config.get("model_type", ""))
    if arch is None:
        raise InputError(f"{folder}: model_type {config.get('model_type')!r} is not exported to GGUF "
                         f"(supported: {', '.join(sorted(ARCHITECTURES))})")
    theta = rope_theta(config, folder)                  # checked before anything is read or written
    tensors = _tensors(folder)
    embed = tensors.get("model.embed_tokens.weight")
    if embed is None:
        raise ModelError(f"{folder}: no model.embed_tokens.weight")
    tokens, types, tokenizer = _vocabulary(folder, embed.shape[0])
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    layers, hidden = config["num_hidden_layers"], config["hidden_size"]
    head_dim = config.get("head_dim") or hidden // heads
    names = gguf.TensorNameMap(getattr(gguf.MODEL_ARCH, arch.upper()), layers)
    tmp = out.with_name(f".{out.name}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(tmp), arch)
    writer.add_name(folder.resolve().name)
    writer.add_context_length(int(config.get("max_position_embeddings", 2048)))
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(theta)
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_vocab_size(len(tokens))
    writer.add_file_type(_file_type(gguf, qtype))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=len(tokens))
    special.add_to_gguf(writer, quiet=True)
    if getattr(tokenizer, "chat_template", None) and not special.chat_template:
        writer.add_chat_template(tokenizer.chat_template)
    if (folder / "o1embedder.json").is_file():
        writer.add_string("o1embedder.config", (folder / "o1embedder.json").read_text(encoding="utf-8"))
    tied = bool(config.get("tie_word_embeddings", False))
    written = 0
    for name, data in tensors.items():
        if name == "lm_head.weight" and tied:
            continue                                  # llama.cpp reads a missing output.weight as tied
        base, _, suffix = name.rpartition(".")
        mapped = names.get_name(base)
        if mapped is None:
            raise ModelError(f"{folder}: no GGUF name for the tensor {name}")
        if arch == "llama" and suffix == "weight" and name.endswith(("q_proj.weight", "k_proj.weight")):
            data = rotary_interleave(data, heads if "q_proj" in name else kv_heads)
        array, kind = _quantized(gguf, name, data, qtype)
        writer.add_tensor(f"{mapped}.{suffix}", array, raw_dtype=kind)
        written += 1
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    tmp.replace(out)
    logger.info("wrote %s (%s, %s, %d tensors, %d tokens)", out, arch, qtype, written, len(tokens))
    return out


def export_hf(model: str | Path, out: str | Path) -> Path:
    """The causal LM of an O1 folder as a plain Hugging Face folder (weights, config, tokenizer with the
    O1 special tokens and the chat template) for vLLM and other servers; the O1 files stay behind."""
    folder, out = Path(model), Path(out)
    found = [name for name in HF_FILES if (folder / name).is_file()]
    weights = weight_files(folder)
    if "config.json" not in found or not weights:
        raise ModelError(f"{folder}: not a model folder with config.json and safetensors weights")
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} exists and is not empty")
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in {*found, *(p.name for p in weights)}:
        shutil.copy2(folder / name, tmp / name)
    with atomic_write(tmp / "EXPORTED_FROM") as handle:
        handle.write(f"{folder.resolve()}\n")
    if out.exists():
        out.rmdir()
    tmp.replace(out)
    return out
