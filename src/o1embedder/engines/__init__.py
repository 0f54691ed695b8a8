"""Thinking engines: who writes an O1 model's thoughts when it is not the model's own decode loop
(docs/serving.md, "Thinking on another engine").

An engine is given the prompts as token ids (the O1 template's ``[bos] <query> q </query> <thought>``,
exactly the ids the one-pass path starts from), each with its thought budget, the thinking settings
and one random key per (query, sample); it returns the thought ids (EOS excluded). The query vector
then comes from one forward of the O1 model over ``prompt + thought + EOS + <emb>``: the given-thoughts
path, so it is exactly what the model embeds for those thoughts, whichever engine wrote them.

- ``one-pass`` (``None``): the model's own loop, thought and vector in one pass (the default);
  ``one-pass-fast``: the same loop with ``model.decode = "fast"`` (faster kernels, other rounding);
  ``one-pass-compiled``: with ``model.decode = "compiled"`` (its one-query step under ``torch.compile``);
- ``llama.cpp:FILE.gguf``: llama-cpp-python in this process, on the model exported by ``o1emb export``;
- ``openai:URL#MODEL``: any OpenAI-compatible completions server (vLLM, llama.cpp's server, TGI,
  SGLang) serving the exported model (``o1emb export --hf``).

Attach one with ``model.engine = make_engine(spec, model)`` (or ``--think-engine`` on the command line
and the server). Its ``identity`` joins the thought cache's key, so thoughts written by one engine are
never served as another's.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..errors import InputError

ONE_PASS = "one-pass"
ONE_PASS_FAST = "one-pass-fast"
"""The model's own loop with ``decode = "fast"`` (:mod:`o1embedder.model.fastdecode`): the packed attention
kernel and, for one query thinking (k <= 4) in bf16 on a CPU, fused float16 weight copies; other rounding."""
ONE_PASS_COMPILED = "one-pass-compiled"
"""``one-pass-fast`` with its one-query step under ``torch.compile`` (``decode = "compiled"``,
:mod:`o1embedder.model.onequery`): the fastest one-query path; compiles once per process (20-40 s at the
SmolLM2 shape on 2 cores)."""
ENGINE_HELP = ("who writes the thoughts: one-pass (the model's own loop, default), one-pass-fast (that loop with "
               "faster kernels and other rounding), one-pass-compiled (one-pass-fast under torch.compile: fastest "
               "for one query, 20-40 s to compile per process), llama.cpp:FILE.gguf or openai:URL[#MODEL] "
               "(o1emb export; the vector still comes from the model)")
"""The help text of every ``--think-engine`` / ``engine`` setting."""
MODEL_LOOPS = {ONE_PASS: None, ONE_PASS_FAST: "fast", ONE_PASS_COMPILED: "compiled"}
"""The model's own loop by engine name, with the ``decode`` mode each sets (``None``: leaves it)."""


class ThoughtEngine(Protocol):
    identity: str
    """What the engine is, for cache keys and reports (``llama.cpp:NAME@SIZE``, ``openai:URL#MODEL``)."""

    def write(self, prompts: list[list[int]], budgets: list[int], cfg: Any, keys: list[int]) -> list[list[int]]:
        """``cfg.n_thoughts`` thoughts per prompt, row-major (prompt ``i``'s samples at ``i*n .. i*n+n-1``)."""


def check_settings(cfg: Any, engine: str, *, repetition: bool = False) -> None:
    """Settings only the one-pass loop has are refused, never silently ignored. ``repetition``: the engine
    applies :mod:`~o1embedder.model.repetition`'s control itself (both kinds, as the one-pass loop)."""
    if cfg.exit_eps > 0:
        raise InputError(f"early exit (exit_eps) watches the query vector while the thought is written: only "
                         f"the one-pass engine has it, not {engine}")
    if cfg.no_repeat_ngram_size > 0 and not repetition:
        raise InputError(f"no_repeat_ngram_size is not available on {engine}: use repetition_penalty, or the "
                         "one-pass engine")


def make_engine(spec: str | None, model: Any, **options: Any) -> ThoughtEngine | None:
    """The engine ``spec`` names for ``model`` (an :class:`~o1embedder.model.O1Embedder`; ``None`` or
    ``one-pass``: the model's own loop)."""
    if spec in (None, "") or spec in MODEL_LOOPS:
        return None
    kind, _, target = spec.partition(":")
    if kind == "llama.cpp" and target:
        from .llamacpp import LlamaCppEngine

        return LlamaCppEngine(target, eos_id=model.template.eos_id, **options)
    if kind == "openai" and target:
        from .openai import OpenAIEngine

        return OpenAIEngine(target, tokenizer=model.tokenizer, eos_id=model.template.eos_id, **options)
    raise InputError(f"unknown thinking engine {spec!r}: one-pass, one-pass-fast, one-pass-compiled, "
                     "llama.cpp:FILE.gguf or openai:URL[#MODEL]")


def attach(model: Any, spec: str | None, **options: Any) -> Any:
    """Set ``model.engine`` to the engine ``spec`` names (``None``/``one-pass``: the model's own loop;
    ``one-pass-fast`` / ``one-pass-compiled``: that loop with ``model.decode = "fast"`` / ``"compiled"``);
    returns the model."""
    model.engine = make_engine(spec, model, **options)
    decode = MODEL_LOOPS.get(spec or "")
    if decode:
        model.decode = decode
    return model


def apply_think_options(model: Any, options: dict[str, Any] | None) -> Any:
    """Attach the engine ``options`` names (if any) to ``model`` and return the model's thinking settings
    with the other given (not ``None``) overrides applied, validated (the command line's and the server's
    thinking options)."""
    from dataclasses import replace

    engine, rest = split_engine(options)
    if engine is not None:
        attach(model, engine)
    return replace(model.settings.think, **{k: v for k, v in rest.items() if v is not None}).validate()


def split_engine(options: dict[str, Any] | None) -> tuple[str | None, dict[str, Any]]:
    """``(engine spec, the other thinking overrides)`` from a dict of thinking overrides (``engine`` is a
    key of the command line's and the server's thinking options, not of ``ThinkConfig``)."""
    rest = dict(options or {})
    return rest.pop("engine", None), rest
