"""LoRA or full fine-tuning set-up, and the merged export that ``O1Embedder.from_pretrained`` loads.

Under LoRA the base weights stay frozen, but the four special tokens are *new*: their embedding and
LM-head rows must learn (the reference left them random and frozen). peft's
``trainable_token_indices`` trains exactly those rows (a small delta per row, merged into the
weights on export) instead of ``modules_to_save`` on the whole embedding matrix (a full copy of
``V x H`` per matrix, e.g. 1.1 GB at a 152k vocabulary and H 3584).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import InputError, ModelError
from ..log import get_logger
from ..templates import Template
from .config import AdapterConfig

logger = get_logger(__name__)


def _module_name(model: Any, module: Any) -> str:
    for name, candidate in model.named_modules():
        if candidate is module:
            return name.rsplit(".", 1)[-1]
    raise ModelError("could not locate the embedding module by name")


def token_rows(model: Any, template: Template) -> dict[str, list[int]]:
    """``{module name: special token ids}`` for the input embedding and (if untied) the LM head."""
    ids = sorted(template.special_ids)
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    rows = {_module_name(model, emb): ids}
    if head is not None and head.weight is not emb.weight:
        rows[_module_name(model, head)] = ids
    return rows


def prepare_model(model: Any, template: Template, cfg: AdapterConfig) -> Any:
    """Full fine-tuning: every weight trainable. LoRA: adapters + special-token rows, the rest frozen."""
    if cfg.mode == "full":
        for param in model.parameters():
            param.requires_grad_(True)
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ModelError("LoRA training needs peft (pip install 'o1embedder[train]')") from None
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in cfg.target_modules if t in present]
    if not targets:
        raise ModelError(f"none of the LoRA target modules {cfg.target_modules} exist in this model")
    lora = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets,
                      task_type="CAUSAL_LM",
                      trainable_token_indices=token_rows(model, template) if cfg.train_special_tokens else None)
    peft_model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    logger.info("LoRA r=%d alpha=%d on %s; special-token rows trainable: %s; %d of %d parameters train",
                cfg.r, cfg.alpha, targets, cfg.train_special_tokens, trainable, total)
    return peft_model


def lm_only_parameters(model: Any, lr_scale: float = 1.0) -> list[Any]:
    """The trainable parameters only the thought LM loss reaches: those of the LM head (the output
    embedding: its whole matrix under full fine-tuning, its special-token rows or adapters under LoRA)
    that are not also the input embedding's. Empty when the head is tied to the input embedding (the
    contrastive loss reaches that matrix through the inputs) or frozen; with an ``lr_scale`` (the
    ``loss.lm_lr_scale`` to give them) other than 1 that is an :class:`InputError`."""
    head, inputs = model.get_output_embeddings(), model.get_input_embeddings()
    shared = {id(p) for p in inputs.parameters()} if inputs is not None else set()
    found = [] if head is None else [p for p in head.parameters() if p.requires_grad and id(p) not in shared]
    if not found and lr_scale != 1.0:
        raise InputError("loss.lm_lr_scale: this model has no parameter that only the thought LM loss trains "
                         "(its LM head is tied to the input embedding, or frozen), so there is nothing to "
                         "scale; leave it at 1")
    return found


def is_peft(model: Any) -> bool:
    return hasattr(model, "merge_and_unload") and hasattr(model, "peft_config")


def merged(model: Any) -> Any:
    """The plain causal LM with adapters (and token-row deltas) merged in; in place for peft models."""
    return model.merge_and_unload() if is_peft(model) else model


def export_merged(model: Any, tokenizer: Any, settings: Any, directory: str | os.PathLike[str]) -> Path:
    """Write an O1 model (safetensors, tokenizer, ``o1embedder.json``) that ``from_pretrained`` loads."""
    from ..model import O1Embedder

    directory = Path(directory)
    base = merged(model)
    for param in base.parameters():
        param.requires_grad_(False)
    O1Embedder(base, tokenizer, settings).save_pretrained(directory)
    logger.info("wrote the merged O1 model to %s", directory)
    return directory
