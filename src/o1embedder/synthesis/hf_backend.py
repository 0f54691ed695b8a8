"""``hf:PATH``: a local Hugging Face causal LM (a model folder or one ``.gguf`` file) writing candidates.

Concurrent requests from the row workers are grouped by a :class:`~.backends.MicroBatcher` and run in
a worker thread through the library's own decode loop (:class:`o1embedder.model.thinking.Thinker`),
``batch_size`` prompts per call, ``n`` samples each, left-padded. Why not ``model.generate``: it
prefills every sample separately (at k=3 and few-shot prompts of ~500 tokens that triples the
dominant cost), whereas the Thinker prefills each prompt once and copies its KV cache for the ``n``
samples; and its sampling noise is counter-based per sample key, where ``generate`` draws from one
shared generator whose stream every row of the batch consumes.

Reproducibility: the keys of a request's ``n`` samples are derived from the request's seed and the
sample index, so a seeded request gets the same texts whichever other requests share its batch and
whatever the timing (a request without a seed draws random keys). Texts can still differ across
devices, dtypes and library versions (floating point).

The prompt is the tokenizer's chat template (with the generation prompt) when it has one, else the
messages' contents joined by blank lines (then the tokenizer adds its special tokens). Generation
stops at the tokenizer's EOS; further EOS ids listed by the model's generation config stop it too
(folded into that one). Sampling: temperature and top-p as given (``0`` is greedy); left unset
(``None``), they come from the model's generation config. ``min_tokens`` holds EOS back for that
many steps. Other generation-config settings (top-k, repetition penalty) are not applied.

Weights: ``dtype`` None or ``"auto"`` is :func:`o1embedder.checkpoints.resolve_dtype`'s choice (bf16
on CUDA and on CPUs with native bf16, float32 elsewhere). torch and transformers are imported here,
inside functions, never at package import.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError, ModelError
from ..log import get_logger
from .backends import BackendOptions, Completion, GenRequest, MicroBatcher

logger = get_logger(__name__)


def sample_keys(seed: int | None, n: int) -> list[int]:
    """Random keys of one request's ``n`` samples: a function of (seed, sample index); random when unseeded."""
    if seed is None:
        return [secrets.randbits(32) for _ in range(n)]
    return [int.from_bytes(hashlib.sha256(f"{seed}|{j}".encode()).digest()[:4], "little") for j in range(n)]


class _Head:
    """The LM head as the Thinker calls it: raw logits plus what the model's own forward (or ``generate``)
    would do with them, so that greedy decoding matches ``generate``.

    - the model's logit transforms: Gemma-style final soft-capping, Granite's ``logits_scaling``,
      Cohere's ``logit_scale``;
    - extra stop ids folded into ``eos_id`` (its logit becomes their maximum), since the Thinker stops
      at one id only;
    - EOS held back for the first ``min_tokens`` steps (the Thinker calls the head once per step,
      all rows at the same step).
    """

    def __init__(self, lm_head: Any, config: Any, eos_id: int, other_stops: Sequence[int], min_tokens: int) -> None:
        self.lm_head, self.eos_id, self.min_tokens = lm_head, eos_id, min_tokens
        self.other_stops = list(other_stops)
        self.softcap = getattr(config, "final_logit_softcapping", None)
        self.divide = getattr(config, "logits_scaling", None)
        self.multiply = getattr(config, "logit_scale", None)
        self.step = 0

    def __call__(self, hidden: Any) -> Any:
        import torch

        logits = self.lm_head(hidden).float()                                      # [B, V]
        if self.multiply:
            logits = logits * self.multiply
        if self.divide:
            logits = logits / self.divide
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        if self.other_stops:
            stops = [self.eos_id, *self.other_stops]
            logits[:, self.eos_id] = logits[:, stops].max(dim=-1).values
            logits[:, self.other_stops] = -torch.inf
        if self.step < self.min_tokens:
            logits[:, self.eos_id] = -torch.inf
        self.step += 1
        return logits


def _load_folder(path: Path, dtype: Any) -> tuple[Any, Any]:
    """A causal LM folder, safetensors only: without the check transformers would unpickle a
    ``pytorch_model.bin``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..checkpoints import require_safetensors

    require_safetensors(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a causal LM from {path}: {exc}") from None
    return model, tokenizer


def _stop_ids(tokenizer: Any, model: Any) -> tuple[int, list[int]]:
    """The tokenizer's EOS (else the generation config's first) and the generation config's other EOS ids."""
    listed = getattr(model.generation_config, "eos_token_id", None)
    listed = [listed] if isinstance(listed, int) else list(listed or [])
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else (listed[0] if listed else None)
    if eos is None:
        raise ModelError("the expert model has no EOS token (neither its tokenizer nor its generation config "
                         "names one): generation could not stop")
    vocab = model.get_output_embeddings().weight.shape[0]
    return eos, sorted({i for i in listed if i != eos and 0 <= i < vocab})


class HFBackend:
    """A local causal LM behind the backend protocol (see the module docstring)."""

    def __init__(self, path: str, options: BackendOptions) -> None:
        self.path = path
        self.name = path
        self.options = options
        self.max_concurrency = max(2 * options.batch_size, 2)
        self._model: Any = None
        self._tokenizer: Any = None
        self._eos_id = self._pad_id = 0
        self._other_stops: list[int] = []
        self._batcher = MicroBatcher(self._run_batch, max_batch=options.batch_size)

    async def start(self) -> None:
        if not Path(self.path).expanduser().exists():
            raise InputError("model folder or .gguf file not found", path=self.path, field="expert")
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        from .. import checkpoints

        device = checkpoints.resolve_device(self.options.device)
        dtype = checkpoints.resolve_dtype(self.options.dtype, device)
        path = Path(self.path).expanduser()
        if checkpoints.is_gguf(path):
            model, tokenizer = checkpoints.load_gguf(path, dtype=dtype)
        elif path.is_dir():
            model, tokenizer = _load_folder(path, dtype)
        else:
            raise InputError("not a model folder or a .gguf file", path=self.path, field="expert")
        self._model, self._tokenizer = model.to(device).eval(), tokenizer
        self._eos_id, self._other_stops = _stop_ids(tokenizer, model)
        pad = tokenizer.pad_token_id
        self._pad_id = self._eos_id if pad is None else pad
        logger.info("expert: local model %s on %s (%s)", self.path, device, checkpoints.dtype_name(dtype))

    def _prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """Token ids of the prompt: the chat template when present (its special tokens are in the text)."""
        tok = self._tokenizer
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return list(tok(text, add_special_tokens=False)["input_ids"])
        return list(tok("\n\n".join(m["content"] for m in messages), add_special_tokens=True)["input_ids"])

    def _sampling(self) -> tuple[float, float]:
        """Temperature and top-p: the options', else the model's generation config (greedy unless it samples)."""
        s, gen = self.options.sampling, self._model.generation_config
        temperature = s.temperature
        if temperature is None:
            temperature = float(gen.temperature if gen.temperature is not None else 1.0) if gen.do_sample else 0.0
        top_p = s.top_p if s.top_p is not None else float(gen.top_p if gen.top_p is not None else 1.0)
        return temperature, top_p

    def _run_batch(self, requests: list[GenRequest]) -> list[Completion | BaseException]:
        """Blocking: every request's ``n`` samples; requests with the same ``n`` share decode calls."""
        prompts = [self._prompt_ids(r.messages) for r in requests]
        results: list[Completion | BaseException] = [Completion(texts=[], tokens=0) for _ in requests]
        size = self.options.batch_size
        for n in sorted({r.n for r in requests}):
            group = sorted((i for i, r in enumerate(requests) if r.n == n), key=lambda i: -len(prompts[i]))
            for start in range(0, len(group), size):
                chunk = group[start:start + size]
                for i, completion in zip(chunk, self._generate([prompts[i] for i in chunk],
                                                               [requests[i] for i in chunk], n), strict=True):
                    results[i] = completion
        return results

    def _generate(self, prompts: list[list[int]], requests: list[GenRequest], n: int) -> list[Completion]:
        """One Thinker call: ``n`` samples for each prompt."""
        import torch

        from ..model.settings import ThinkConfig
        from ..model.thinking import Thinker, pad_multiple_for

        s = self.options.sampling
        temperature, top_p = self._sampling()
        head = _Head(self._model.get_output_embeddings(), self._model.config, self._eos_id, self._other_stops,
                     s.min_tokens or 0)
        param = next(self._model.parameters())
        thinker = Thinker(self._model.get_decoder(), head, eos_id=self._eos_id, emb_id=self._pad_id,
                          pad_id=self._pad_id, pad_multiple=pad_multiple_for(param.device, param.dtype))
        keys = torch.tensor([key for r in requests for key in sample_keys(r.seed, n)], dtype=torch.long)
        cfg = ThinkConfig(n_thoughts=n, temperature=temperature, top_p=top_p, max_new_tokens=s.max_tokens)
        result = thinker.run(prompts, [s.max_tokens] * len(prompts), cfg, keys, embed=False)
        out = []
        for j in range(len(prompts)):
            ids = result.thought_ids[j * n:(j + 1) * n]
            texts = self._tokenizer.batch_decode(ids, skip_special_tokens=True)
            out.append(Completion(texts=texts, tokens=sum(len(t) for t in ids)))
        return out

    async def complete(self, request: GenRequest) -> Completion:
        if self._model is None:
            raise RuntimeError("start() was not called")
        return await self._batcher.submit(request)

    async def aclose(self) -> None:
        self._model = None


def create(target: str, options: BackendOptions) -> HFBackend:
    """Factory for ``hf:PATH``."""
    return HFBackend(target, options)
