"""``vllm:PATH``: vLLM's offline engine (``vllm.LLM``), an optional extra (``pip install o1embedder[vllm]``).

vLLM batches internally and wants many prompts per call, so concurrent requests are grouped by a
:class:`~.backends.MicroBatcher` (up to ``batch_size * 64`` requests per call) and sent to
``LLM.chat`` with one ``SamplingParams`` per request (``n`` samples, the request's seed).
``vllm`` is imported only when the backend starts; an engine object can be injected instead (the
tests use a fake, since vLLM cannot be installed on CPU-only machines).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import InputError
from ..log import get_logger
from .backends import BackendOptions, Completion, GenRequest, MicroBatcher

logger = get_logger(__name__)


class VLLMBackend:
    """The vLLM offline engine behind the backend protocol."""

    def __init__(self, path: str, options: BackendOptions, *, engine: Any = None,
                 sampling_params_cls: Any = None) -> None:
        self.path = path
        self.name = path
        self.options = options
        self.max_concurrency = max(options.batch_size * 64, 64)
        self._engine = engine
        self._params_cls = sampling_params_cls
        self._batcher = MicroBatcher(self._run_batch, max_batch=self.max_concurrency)

    async def start(self) -> None:
        if self._engine is not None and self._params_cls is not None:
            return
        try:
            import vllm
        except ImportError:
            raise InputError("the vllm: expert needs vLLM (pip install 'o1embedder[vllm]', Linux + GPU)",
                             field="expert") from None
        self._params_cls = self._params_cls or vllm.SamplingParams
        if self._engine is None:
            kwargs = dict(self.options.extra.get("vllm_engine_args", {}))
            self._engine = await asyncio.to_thread(vllm.LLM, model=self.path, **kwargs)
        logger.info("expert: vLLM engine for %s", self.path)

    def _params(self, request: GenRequest) -> Any:
        s = self.options.sampling
        kwargs: dict[str, Any] = {"n": request.n, "max_tokens": s.max_tokens}
        for name in ("temperature", "top_p", "min_tokens"):
            if getattr(s, name) is not None:
                kwargs[name] = getattr(s, name)
        if request.seed is not None:
            kwargs["seed"] = request.seed
        return self._params_cls(**kwargs)

    def _run_batch(self, requests: list[GenRequest]) -> list[Completion | BaseException]:
        """Blocking: one ``LLM.chat`` call for the whole batch."""
        outputs = self._engine.chat([r.messages for r in requests],
                                    sampling_params=[self._params(r) for r in requests], use_tqdm=False)
        results: list[Completion | BaseException] = []
        for output in outputs:
            samples = list(output.outputs)
            tokens = sum(len(getattr(o, "token_ids", ()) or ()) for o in samples)
            results.append(Completion(texts=[o.text for o in samples], tokens=tokens or None))
        if len(results) != len(requests):
            raise RuntimeError(f"vLLM returned {len(results)} outputs for {len(requests)} prompts")
        return results

    async def complete(self, request: GenRequest) -> Completion:
        if self._engine is None:
            raise RuntimeError("start() was not called")
        return await self._batcher.submit(request)

    async def aclose(self) -> None:
        self._engine = None


def create(target: str, options: BackendOptions) -> VLLMBackend:
    """Factory for ``vllm:PATH``."""
    return VLLMBackend(target, options)
