"""Checkpoints in the forms users hold them: Hugging Face folders and single ``.gguf`` files; dtypes.

Everything that loads a causal LM (the O1 model, the ``hf:`` expert, training) goes through here, so
a ``.gguf`` file works wherever a model path does, and ``--dtype auto`` means one thing everywhere:

- ``auto``: bfloat16 on CUDA (when the GPU supports it) and on CPUs with native bf16 arithmetic
  (x86 ``avx512_bf16`` / ``amx_bf16``, Arm ``bf16``), float32 elsewhere. On a CPU without native
  bf16, bf16 is emulated and slower than float32, so ``auto`` does not pick it there.
- a GGUF file is dequantized on load by transformers (needs the ``gguf`` and ``accelerate``
  packages: the ``gguf`` extra). The quantizer that transformers attaches is dropped, so the model
  saves as a plain safetensors checkpoint; :func:`convert` does that once, and later loads of the
  folder take seconds instead of a dequantization.

torch and transformers are imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from pathlib import Path
from typing import Any

from .errors import InputError, ModelError
from .log import get_logger

logger = get_logger(__name__)

GGUF_MAGIC = b"GGUF"
GGUF_EXTRA = "pip install 'o1embedder[gguf]'  (the gguf and accelerate packages)"
DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")
_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}


# -- dtypes ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True on CPUs that compute in bf16 natively (AMX, AVX512-BF16, Armv8.6 BF16).

    ``O1EMB_CPU_BF16=0/1`` overrides the detection (for a machine that misreports, or to compare).
    """
    forced = os.environ.get("O1EMB_CPU_BF16")
    if forced in {"0", "1"}:
        return forced == "1"
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False                       # macOS, Windows: no cheap reliable probe; stay with float32
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in {"flags", "Features"}:
            flags = set(value.split())
            return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    return False


def resolve_device(device: Any = None) -> Any:
    """``None`` -> CUDA when available, else CPU; anything else through ``torch.device``."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"unknown device {device!r}: {exc}") from None


def auto_dtype(device: Any) -> Any:
    """The ``auto`` choice for ``device`` (see the module docstring)."""
    import torch

    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


def resolve_dtype(dtype: Any, device: Any) -> Any:
    """``None``/``"auto"`` -> :func:`auto_dtype`; a name or a ``torch.dtype`` -> that dtype."""
    import torch

    if dtype is None or dtype == "auto":
        return auto_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    name = _ALIASES.get(dtype, dtype)
    if name not in DTYPE_NAMES:
        raise InputError(f"unknown dtype {dtype!r} (choose from {', '.join(DTYPE_NAMES)})")
    return getattr(torch, name)


def dtype_name(dtype: Any) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")


# -- safetensors only -----------------------------------------------------------------------------

PICKLED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
"""Weight files that are Python pickles: loading one can run code, so o1embedder never does."""


def require_safetensors(folder: str | os.PathLike[str], *, subfolders: bool = False) -> None:
    """Refuse a local model folder whose weights are not safetensors (:class:`ModelError`, one line).

    Every loader calls this before transformers or sentence-transformers sees the folder: both
    would otherwise fall back to ``pytorch_model.bin`` (a pickle) when no ``*.safetensors`` is
    there. ``subfolders``: also check the module folders one level down (sentence-transformers keeps
    e.g. a ``2_Dense/`` layer's weights there); a folder with pickled weights and no safetensors
    anywhere is refused. A pickled file beside safetensors (``training_args.bin``) is left alone.
    """
    root = Path(folder).expanduser()
    places = [root] + (sorted(p for p in root.iterdir() if p.is_dir()) if subfolders else [])
    found = False
    for place in places:
        names = sorted(p.name for p in place.iterdir() if p.is_file())
        safe = any(n.endswith(".safetensors") for n in names)
        pickled = [n for n in names if n.lower().endswith(PICKLED_SUFFIXES)]
        if pickled and not safe:
            raise ModelError(f"{place}: only pickled weights ({', '.join(pickled[:3])}) here; o1embedder loads "
                             "safetensors only (re-save with save_pretrained(safe_serialization=True))")
        found = found or safe
    if not found:
        raise ModelError(f"{root}: no *.safetensors weights found (o1embedder loads safetensors only)")


# -- GGUF -----------------------------------------------------------------------------------------

def is_gguf(path: str | os.PathLike[str]) -> bool:
    """A file named ``*.gguf``, or any file that starts with the GGUF magic."""
    path = Path(path).expanduser()
    if not path.is_file():
        return False
    if path.suffix.lower() == ".gguf":
        return True
    with contextlib.suppress(OSError), open(path, "rb") as handle:
        return handle.read(4) == GGUF_MAGIC
    return False


def _require_gguf_packages(path: Path) -> None:
    for package in ("gguf", "accelerate"):
        try:
            __import__(package)
        except ImportError:
            raise ModelError(f"{path}: reading a GGUF file needs the {package!r} package: {GGUF_EXTRA}") from None


def check_gguf(path: str | os.PathLike[str]) -> str:
    """Validate a GGUF file before transformers reads it; return its architecture.

    One clear :class:`ModelError` for: a missing ``gguf``/``accelerate`` package, a file that is not
    GGUF, a truncated or corrupt file (header or tensor data cut short), an architecture that
    transformers cannot dequantize.
    """
    path = Path(path).expanduser()
    with open(path, "rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise ModelError(f"{path}: not a GGUF file (it does not start with the GGUF magic bytes)")
    _require_gguf_packages(path)
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
        field = reader.fields["general.architecture"]
        architecture = bytes(field.parts[field.data[0]]).decode("utf-8")
    except KeyError:
        raise ModelError(f"{path}: corrupt GGUF file (no general.architecture field)") from None
    except (ValueError, IndexError, TypeError, OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: truncated or corrupt GGUF file ({type(exc).__name__}: {exc})") from None
    size = path.stat().st_size
    end = max((t.data_offset + t.n_bytes for t in reader.tensors), default=0)
    if end > size:
        raise ModelError(f"{path}: truncated GGUF file ({size} bytes; its tensors need {end})")
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    if architecture not in GGUF_SUPPORTED_ARCHITECTURES:
        raise ModelError(f"{path}: GGUF architecture {architecture!r} is not supported by transformers "
                         f"(supported: {', '.join(a for a in GGUF_SUPPORTED_ARCHITECTURES if a != 'general')})")
    return architecture


def _drop_quantizer(model: Any) -> Any:
    """Forget the GGUF quantizer transformers attached: the weights are already dequantized, and a
    model that still carries it refuses ``save_pretrained`` (and writes a misleading config)."""
    for attr in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attr):
            setattr(model, attr, None)
    if hasattr(model, "is_quantized"):
        model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    return model


def load_gguf(path: str | os.PathLike[str], *, dtype: Any) -> tuple[Any, Any]:
    """A dequantized causal LM (on CPU, in ``dtype``) and its tokenizer from one ``.gguf`` file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path).expanduser().resolve()
    architecture = check_gguf(path)
    logger.info("dequantizing %s (GGUF, %s); `o1emb convert` makes later loads fast", path.name, architecture)
    folder, name = str(path.parent), path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype)
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc):
            raise ModelError(f"{path}: the GGUF model ({architecture}) is not a causal LM") from None
        raise ModelError(f"{path}: could not load the GGUF model: {exc}") from None
    except (OSError, KeyError, RuntimeError) as exc:
        raise ModelError(f"{path}: could not load the GGUF model: {type(exc).__name__}: {exc}") from None
    _special_tokens_as_in_gguf(tokenizer, path)
    return _drop_quantizer(model), tokenizer


def _special_tokens_as_in_gguf(tokenizer: Any, path: Path) -> None:
    """Set BOS / EOS / pad to the ids the GGUF's ``tokenizer.ggml.*_token_id`` fields name, and
    whether BOS is prepended to ``tokenizer.ggml.add_bos_token``.

    transformers 4.56 took SmolLM2's EOS to be ``<|im_start|>`` (the file says id 2, ``<|im_end|>``):
    thoughts would stop at the wrong token; and it prepended a BOS the file says not to add. The
    file is the authority (transformers 5 already agrees with it).
    """
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields
    vocab_size = len(tokenizer)
    for role in ("bos", "eos", "pad"):
        found = fields.get(f"tokenizer.ggml.{'padding' if role == 'pad' else role}_token_id")
        if found is None:
            continue
        token_id = int(found.parts[found.data[0]][0])
        if 0 <= token_id < vocab_size and getattr(tokenizer, f"{role}_token_id") != token_id:
            token = tokenizer.convert_ids_to_tokens(token_id)
            logger.info("GGUF %s token: %s (id %d)", role, token, token_id)
            setattr(tokenizer, f"{role}_token", token)
    found = fields.get("tokenizer.ggml.add_bos_token")      # 4.56 also prepended BOS against the file
    if found is not None and hasattr(tokenizer, "add_bos_token"):
        wanted = bool(found.parts[found.data[0]][0])
        if tokenizer.add_bos_token != wanted:
            tokenizer.add_bos_token = wanted


# -- conversion -----------------------------------------------------------------------------------

def convert(src: str | os.PathLike[str], out: str | os.PathLike[str], *, dtype: Any = "float32",
            trust_remote_code: bool = False) -> Path:
    """Write ``src`` (a ``.gguf`` file or a model folder) as a plain safetensors checkpoint in ``out``.

    The causal LM and its tokenizer (chat template included) are written as they are, without the
    O1 special tokens: the folder serves as a base for training, as an ``hf:`` expert and as the
    ``base`` model of an evaluation. ``dtype`` defaults to float32, which keeps GGUF dequantized
    values exactly. The folder appears only when complete (written under a temporary name first).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, out = Path(src).expanduser(), Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError("output exists and is not an empty folder", path=out)
    torch_dtype = resolve_dtype(dtype, torch.device("cpu"))
    if is_gguf(src):
        model, tokenizer = load_gguf(src, dtype=torch_dtype)
    elif src.is_dir():
        require_safetensors(src)
        try:
            tokenizer = AutoTokenizer.from_pretrained(src, trust_remote_code=trust_remote_code)
            model = AutoModelForCausalLM.from_pretrained(src, dtype=torch_dtype, use_safetensors=True,
                                                         trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{src}: could not load a causal LM: {exc}") from None
        model = _drop_quantizer(model)
    else:
        raise InputError("not a .gguf file or a model folder", path=src)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
