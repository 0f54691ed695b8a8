"""``hf:PATH``: a local Hugging Face causal LM generating candidates in batches (offline, tests).

Concurrent requests from the row workers are grouped by a :class:`~.backends.MicroBatcher` and run
through ``model.generate`` in a worker thread, ``batch_size`` sequences at a time (a request for
``n`` candidates contributes ``n`` sequences), left-padded. The prompt is the tokenizer's chat
template when it has one, else the messages' contents joined by blank lines.

Sampling: ``temperature``/``top_p`` left unset fall back to the model's ``generation_config``;
``temperature=0`` is greedy. Seeds: ``torch.manual_seed`` is set from the first seeded request of
each generate call, so results are reproducible only for the same batch composition (which depends
on timing); use the ``openai:`` backend against a seeded vLLM server for per-request determinism.
torch and transformers are imported here, inside functions, never at package import.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..errors import InputError, ModelError
from ..log import get_logger
from .backends import BackendOptions, Completion, GenRequest, MicroBatcher

logger = get_logger(__name__)


class HFBackend:
    """A local causal LM behind the backend protocol."""

    def __init__(self, path: str, options: BackendOptions) -> None:
        self.path = path
        self.name = path
        self.options = options
        self.max_concurrency = max(2 * options.batch_size, 2)
        self._model: Any = None
        self._tokenizer: Any = None
        self._batcher = MicroBatcher(self._run_batch, max_batch=options.batch_size)

    async def start(self) -> None:
        if not Path(self.path).exists():
            raise InputError("model folder not found", path=self.path, field="expert")
        await asyncio.to_thread(self._load)
        logger.info("expert: local model %s on %s", self.path, self._model.device)

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = self.options.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype_name = self.options.dtype or ("bfloat16" if device.startswith("cuda") else "float32")
        dtype = getattr(torch, dtype_name) if dtype_name != "auto" else "auto"
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self.path)
            self._model = AutoModelForCausalLM.from_pretrained(self.path, dtype=dtype).to(device).eval()
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load a causal LM from {self.path}: {exc}") from exc
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token_id is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token

    def _render(self, messages: list[dict[str, str]]) -> tuple[str, bool]:
        """Prompt text and whether the tokenizer should add its special tokens itself."""
        if getattr(self._tokenizer, "chat_template", None):
            text = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return text, False
        return "\n\n".join(m["content"] for m in messages), True

    def _generate_kwargs(self) -> dict[str, Any]:
        s = self.options.sampling
        kwargs: dict[str, Any] = {"max_new_tokens": s.max_tokens, "pad_token_id": self._tokenizer.pad_token_id}
        if s.min_tokens:
            kwargs["min_new_tokens"] = s.min_tokens
        if s.temperature == 0:
            kwargs["do_sample"] = False
        elif s.temperature is not None:
            kwargs.update(do_sample=True, temperature=s.temperature)
        if s.top_p is not None and s.temperature != 0:
            kwargs.update(do_sample=True, top_p=s.top_p)
        return kwargs

    def _run_batch(self, requests: list[GenRequest]) -> list[Completion | BaseException]:
        """Blocking: generate every request's ``n`` samples, ``batch_size`` sequences per call."""
        flat = [(i, self._render(r.messages)) for i, r in enumerate(requests) for _ in range(r.n)]
        texts: list[list[str]] = [[] for _ in requests]
        tokens = [0] * len(requests)
        size = self.options.batch_size
        for start in range(0, len(flat), size):
            chunk = flat[start:start + size]
            seeds = [requests[i].seed for i, _ in chunk if requests[i].seed is not None]
            outputs, counts = self._generate([p for _, p in chunk], seeds[0] if seeds else None)
            for (i, _), text, count in zip(chunk, outputs, counts, strict=True):
                texts[i].append(text)
                tokens[i] += count
        return [Completion(texts=t, tokens=n) for t, n in zip(texts, tokens, strict=True)]

    def _generate(self, prompts: list[tuple[str, bool]], seed: int | None) -> tuple[list[str], list[int]]:
        import torch

        tok = self._tokenizer
        add_special = prompts[0][1]
        enc = tok([p for p, _ in prompts], return_tensors="pt", padding=True, add_special_tokens=add_special)
        enc = {k: v.to(self._model.device) for k, v in enc.items()}
        if seed is not None:
            torch.manual_seed(seed)
        with torch.no_grad():
            out = self._model.generate(**enc, **self._generate_kwargs())  # [B, T_prompt + T_new]
        new = out[:, enc["input_ids"].shape[1]:]                           # [B, T_new]
        texts = tok.batch_decode(new, skip_special_tokens=True)
        stop = {tok.pad_token_id, tok.eos_token_id}
        counts = [sum(1 for t in seq.tolist() if t not in stop) for seq in new]
        return texts, counts

    async def complete(self, request: GenRequest) -> Completion:
        if self._model is None:
            raise RuntimeError("start() was not called")
        return await self._batcher.submit(request)

    async def aclose(self) -> None:
        self._model = None


def create(target: str, options: BackendOptions) -> HFBackend:
    """Factory for ``hf:PATH``."""
    return HFBackend(target, options)
