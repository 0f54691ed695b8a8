"""Thought synthesis, exploration step: an expert LLM writes k candidate thoughts per training row.

``synthesize(input, out, expert)`` reads training rows, prompts the expert (task line, leak-free
few-shot examples, the query) and writes each row once with ``candidates`` and the settings used,
resumable after any crash. Experts are ``openai:BASE_URL[#MODEL]``, ``hf:PATH``, ``vllm:PATH`` or a
prefix added with :func:`register_backend`. Importing this package loads neither httpx nor torch.
"""

from __future__ import annotations

from .backends import (
    Backend,
    BackendOptions,
    Completion,
    ExpertUnavailableError,
    GenRequest,
    MicroBatcher,
    SamplingParams,
    available_backends,
    make_backend,
    register_backend,
)
from .config import SynthesisConfig, SynthesisReport, default_failures_path
from .prompts import DEFAULT_TASK, DEFAULT_TEMPLATE, FewShotSampler, PromptTemplate
from .quality import candidate_problem
from .runner import synthesize

__all__ = [
    "DEFAULT_TASK", "DEFAULT_TEMPLATE", "Backend", "BackendOptions", "Completion", "ExpertUnavailableError",
    "FewShotSampler", "GenRequest", "MicroBatcher", "PromptTemplate", "SamplingParams", "SynthesisConfig",
    "SynthesisReport", "available_backends", "candidate_problem", "default_failures_path", "make_backend",
    "register_backend", "synthesize",
]
