"""Loading and saving the causal LM + tokenizer behind an :class:`~o1embedder.model.O1Embedder`.

Three kinds of checkpoint load through one function:

a. saved by o1embedder: has ``o1embedder.json``; its settings are restored exactly;
b. the authors' released format (a merged causal LM whose tokenizer already holds ``<query>``,
   ``</query>``, ``<thought>``, ``<emb>``): used as it is, no second copy of the tokens;
c. a plain base LM: the four tokens are added, their embedding rows (input and output) set to the
   mean of the existing rows, and a warning says they are untrained.

Weights are read from safetensors only (never unpickled), and ``trust_remote_code`` is off unless asked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..checkpoints import (  # noqa: F401 (re-exported)
    is_gguf,
    load_gguf,
    require_safetensors,
    resolve_device,
    resolve_dtype,
)
from ..errors import InputError, ModelError
from ..formats import SPECIAL_TOKENS, atomic_write
from ..log import get_logger
from .policy import POLICY_FILE, POLICY_TENSORS, ThinkPolicy
from .settings import SETTINGS_FILE, O1Settings

logger = get_logger(__name__)


def _check_source(path: str) -> None:
    local = Path(path).expanduser()
    if local.exists():
        if is_gguf(local):
            return
        if not local.is_dir():
            raise ModelError(f"{path}: a model must be a folder (Hugging Face format) or a .gguf file, "
                             "not another kind of file")
        if not (local / "config.json").is_file():
            raise ModelError(f"{path}: no config.json here; not a Hugging Face model folder")
        require_safetensors(local)
        return
    looks_like_hub_id = path.count("/") == 1 and not path.startswith((".", "/", "~"))
    if not looks_like_hub_id:
        raise ModelError(f"{path}: model folder not found")


def load_tokenizer(path: str, *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: could not load the tokenizer: {exc}") from None
    return _with_pad(tokenizer, path)


def _with_pad(tokenizer: Any, path: str) -> Any:
    if tokenizer.eos_token_id is None:
        raise ModelError(f"{path}: the tokenizer has no EOS token")
    if tokenizer.pad_token_id is None:
        # Padding positions are always masked, so reusing EOS as the pad id is harmless here.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(path: str, *, device: Any, dtype: Any, trust_remote_code: bool = False) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        model, info = AutoModelForCausalLM.from_pretrained(
            path, config=config, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code,
            output_loading_info=True)
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc):
            kind = getattr(locals().get("config"), "model_type", "?")
            raise ModelError(f"{path}: model type {kind!r} is not a causal LM (no LM head); O1 Embedder "
                             "needs a decoder that can generate") from None
        raise ModelError(f"{path}: could not load the model: {exc}") from None
    except OSError as exc:
        raise ModelError(f"{path}: could not load the model: {exc}") from None
    if model.get_output_embeddings() is None:
        raise ModelError(f"{path}: the model has no LM head; O1 Embedder needs a causal LM")
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        # A bare decoder (e.g. saved from ``Qwen2Model``) would otherwise get a random LM head silently.
        head = [k for k in missing if "lm_head" in k or "embed_out" in k or "output" in k.split(".")[0]]
        what = "the LM head" if head else "weights"
        raise ModelError(f"{path}: the checkpoint lacks {what} ({', '.join(missing[:3])}"
                         f"{' ...' if len(missing) > 3 else ''}); O1 Embedder needs a full causal LM")
    return model.to(device).eval()


def has_special_tokens(tokenizer: Any, tokens: tuple[str, ...] = SPECIAL_TOKENS) -> bool:
    vocab = tokenizer.get_vocab()
    return all(t in vocab for t in tokens)


def add_special_tokens(model: Any, tokenizer: Any, tokens: tuple[str, ...] = SPECIAL_TOKENS) -> int:
    """Add the four tokens; new input/output embedding rows start at the mean of the old rows.

    Why the mean and not random: a random row can dominate attention and the LM head's softmax at
    first; the mean row behaves like an average token, which is a calmer start for fine-tuning
    (``resize_token_embeddings(mean_resizing=True)`` would instead sample around the mean).
    """
    import torch

    missing = [t for t in tokens if t not in tokenizer.get_vocab()]
    if not missing:
        return 0
    tokenizer.add_tokens(missing, special_tokens=True)  # same call in transformers 4.x and 5.x
    old = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        embeddings = [model.get_input_embeddings().weight]
        out = model.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != embeddings[0].data_ptr():
            embeddings.append(out.weight)
        for weight in embeddings:
            weight[old:] = weight[:old].float().mean(dim=0).to(weight.dtype)
    logger.warning("added %d special tokens %s with mean-initialised rows: this model is untrained "
                   "for O1 Embedder until fine-tuned", len(missing), missing)
    return len(missing)


def check_vocab(model: Any, tokenizer: Any, path: str) -> None:
    """Every token id the tokenizer can produce must have an embedding row (more rows is normal)."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise ModelError(f"{path}: the tokenizer has {len(tokenizer)} tokens but the model's embedding "
                         f"matrix has {rows} rows; tokenizer and weights do not belong together")


def load_lm_and_tokenizer(path: str, *, device: Any, dtype: Any, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """The causal LM (on ``device``, in ``dtype``, eval mode) and its tokenizer; folder or ``.gguf``."""
    if is_gguf(path):
        model, tokenizer = load_gguf(path, dtype=dtype)
        return model.to(device).eval(), _with_pad(tokenizer, path)
    tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    return load_causal_lm(path, device=device, dtype=dtype, trust_remote_code=trust_remote_code), tokenizer


def _hub_settings_file(repo_id: str, name: str = SETTINGS_FILE) -> Path | None:
    """``o1embedder.json`` (or another file ``name``) of a hub repository (from the local cache when
    offline); ``None`` if the repository has none or cannot be reached (the model load then reports
    what is wrong)."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:                                   # transformers brings huggingface_hub
        return None
    try:
        return Path(hf_hub_download(repo_id, name))
    except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError):
        return None


def read_settings(path: str) -> O1Settings | None:
    """The ``o1embedder.json`` of a model folder or hub repository, if it has one."""
    local = Path(path).expanduser()
    if local.exists():
        file: Path | None = local / SETTINGS_FILE if local.is_dir() else None
    elif path.count("/") == 1 and not path.startswith((".", "/", "~")):
        file = _hub_settings_file(path)
    else:
        file = None
    if file is None or not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{file}: invalid JSON: {exc}") from None
    try:
        return O1Settings.from_dict(data)
    except (InputError, TypeError) as exc:
        raise ModelError(f"{file}: {exc}") from None


def save(model: Any, tokenizer: Any, settings: O1Settings, directory: str | os.PathLike[str]) -> None:
    """HF format (safetensors) + tokenizer + ``o1embedder.json``, written last as the completion mark."""
    from .. import __version__

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    settings.library_version = __version__
    with atomic_write(directory / SETTINGS_FILE) as handle:
        json.dump(settings.to_dict(), handle, indent=2)
        handle.write("\n")


def read_policy(path: str, fingerprint: Callable[[], str]) -> ThinkPolicy | None:
    """The think policy of a model folder or hub repository, if it has one for these weights: one
    fitted for other weights (``fingerprint()`` differs, e.g. the model was trained since) is ignored
    with a warning."""
    local = Path(path).expanduser()
    if local.exists():
        folder = local if local.is_dir() else None
    elif path.count("/") == 1 and not path.startswith((".", "/", "~")):
        found = _hub_settings_file(path, POLICY_FILE)
        folder = found.parent if found is not None and _hub_settings_file(path, POLICY_TENSORS) else None
    else:
        folder = None
    policy = ThinkPolicy.load(folder) if folder is not None else None
    if policy is not None and policy.model_fingerprint and policy.model_fingerprint != fingerprint():
        logger.warning("%s: %s was fitted for other weights (fingerprint %s, this model %s); ignored - think='auto' "
                       "uses the margin rule. Refit it: o1emb fit-policy", path, POLICY_FILE,
                       policy.model_fingerprint, fingerprint())
        return None
    return policy


def save_policy(policy: ThinkPolicy, fingerprint: str, directory: str | os.PathLike[str]) -> None:
    """Write ``policy`` beside a saved model, unless it was fitted for other weights (a warning)."""
    if policy.model_fingerprint and policy.model_fingerprint != fingerprint:
        logger.warning("not saving the think policy: it was fitted for other weights (fingerprint %s, these %s); "
                       "refit it with o1emb fit-policy", policy.model_fingerprint, fingerprint)
        return
    policy.save(directory)
