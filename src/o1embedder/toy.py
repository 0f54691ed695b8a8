"""Tiny random causal LMs and in-process BPE tokenizers: for tests, benchmarks and the demo.

Nothing is downloaded: the tokenizer is trained on the given texts in well under a second, and the
model is built from a config with random weights (seeded). ``family="llama"`` gives a tokenizer that
prepends BOS by itself (as Llama/Mistral do), ``family="qwen2"`` one that does not (as Qwen2).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .formats import SPECIAL_TOKENS

_DEFAULT_TEXT = (
    "the quick brown fox jumps over the lazy dog. who designed the tower in tokyo? "
    "a retriever thinks before it retrieves: it writes a thought, then embeds query and thought. "
    "documents are embedded once, offline. scientific claims need evidence from abstracts. "
    "nutrition facts, vitamins and diseases; rivers, cities, bridges, architects and towers. "
    "0 1 2 3 4 5 6 7 8 9 what when where why how which is are was were did does built designed"
)


def train_tokenizer(texts: Iterable[str] = (), *, vocab_size: int = 1000, family: str = "qwen2",
                    with_special_tokens: bool = False) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``texts`` (pad/eos, optional bos)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if family not in {"qwen2", "llama"}:
        raise ValueError(f"family must be 'qwen2' or 'llama', got {family!r}")
    texts = list(texts) or [_DEFAULT_TEXT] * 20
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    # eos is spelled as GPT-2, Qwen2 and SmolLM2 spell it: transformers reads a byte-level GGUF through
    # GPT2Tokenizer, which adds a "<|endoftext|>" of its own to a vocabulary without one (o1emb export)
    names = {"pad": "<|pad|>", "bos": "<|bos|>", "eos": "<|endoftext|>", "unk": "<|unk|>"}
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(names.values()),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(texts, trainer)
    # naming unk explicitly keeps transformers 5's model-specific tokenizer classes (Qwen2Tokenizer)
    # from adding a default "<|endoftext|>" of their own on reload
    kwargs: dict[str, Any] = {"pad_token": names["pad"], "eos_token": names["eos"], "unk_token": names["unk"]}
    if family == "llama":
        bos_id = core.token_to_id(names["bos"])
        core.post_processor = processors.TemplateProcessing(
            single=f"{names['bos']} $A", pair=f"{names['bos']} $A $B", special_tokens=[(names["bos"], bos_id)])
        kwargs["bos_token"] = names["bos"]
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, **kwargs)
    if with_special_tokens:
        tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS)})
    return tokenizer


def build_model(tokenizer: Any, *, family: str = "qwen2", hidden: int = 64, layers: int = 2,
                heads: int = 4, kv_heads: int = 2, intermediate: int | None = None, seed: int = 0,
                max_positions: int = 1024) -> Any:
    """A random-weight ``Qwen2ForCausalLM`` / ``LlamaForCausalLM`` sized to ``tokenizer``."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    config_cls = {"qwen2": Qwen2Config, "llama": LlamaConfig}[family]
    config = config_cls(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv_heads, intermediate_size=intermediate or 2 * hidden,
        max_position_embeddings=max_positions, tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).eval()


def save_tiny(directory: str | os.PathLike[str], *, family: str = "qwen2", with_special_tokens: bool = False,
              texts: Iterable[str] = (), vocab_size: int = 1000, **model_kwargs: Any) -> Path:
    """Train a tokenizer, build a random model, ``save_pretrained`` both (safetensors) into ``directory``."""
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size, family=family,
                                with_special_tokens=with_special_tokens)
    model = build_model(tokenizer, family=family, **model_kwargs)
    directory = Path(directory)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory
