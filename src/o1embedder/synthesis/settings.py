"""``SynthesizeSettings``: the settings of ``o1emb synthesize`` (:mod:`o1embedder.options`: ``--config
FILE``, a flag per setting, ``--set KEY=VALUE``, ``--print-config``), and the library objects they
make (:class:`BackendOptions`, :class:`SynthesisConfig`, :class:`PromptTemplate`). No torch, no httpx."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..options import Dtype, setting
from .backends import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, BackendOptions, SamplingParams
from .config import SynthesisConfig


@dataclass
class SamplingSettings:
    """Sampling: what is sent is recorded per row; a null temperature or top_p sends nothing (the
    server's default; hf: the model's generation config), as ``--temperature default`` does."""

    temperature: float | None = setting(
        "our choice, not the paper's (it kept the vLLM server default, 1.0, where a small expert writes "
        "gibberish); 0: greedy (k identical candidates)", DEFAULT_TEMPERATURE, flag="temperature")
    top_p: float | None = setting("nucleus mass", DEFAULT_TOP_P, flag="top-p")
    max_tokens: int = setting("new tokens per candidate at most", 512, flag="max-tokens")
    min_tokens: int | None = setting("(vLLM, hf) minimum new tokens", None, flag="min-tokens")
    seed: int | None = setting("base seed; each request gets a derived one (unset: none sent)", None, flag="seed")


@dataclass
class SynthesizeSettings:
    """``o1emb synthesize``: k candidate thoughts per training row from an expert LLM."""

    input: str = setting("training rows (JSONL: query, pos, neg, ...)", "", required=True)
    out: str = setting("output JSONL (appended to and resumed when it exists)", "", required=True)
    expert: str = setting("openai:BASE_URL[#MODEL] | hf:PATH | vllm:PATH (or a registered prefix)", "", required=True)
    failures: str | None = setting("failures JSONL (unset: OUT with .failures.jsonl)", None)
    k: int = setting("candidate thoughts per row", 3)
    shots: int | Literal["auto"] = setting("few-shot examples per prompt; auto: 3 when the prompt shows examples "
                                           "(paper), else 0", "auto")
    shot_seed: int = setting("seed of the few-shot draw", 0)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    concurrency: int = setting("requests in flight (openai)", 32)
    timeout: float = setting("seconds per request (openai)", 120.0)
    retries: int = setting("retries per request on 429/5xx/timeouts/errors", 5)
    backoff: float = setting("first backoff in seconds (doubles, jittered)", 0.5)
    max_backoff: float = setting("cap on one wait (also on Retry-After)", 30.0)
    rate_limit: float | None = setting("requests per second (unset: no limit)", None)
    candidate_retries: int = setting("bad candidates (empty, refusal, lead-in, restatement) tolerated per row "
                                     "before it fails", 3)
    separate_requests: bool = setting("k requests with n=1 instead of one request with n=k", False)
    api_key_env: str = setting("environment variable with the API key", "OPENAI_API_KEY")
    http_transport: Literal["lean", "httpx"] = setting("lean: fast asyncio HTTP/1.1; httpx: httpx's own (proxies, "
                                                       "HTTP/2)", "lean")
    batch_size: int = setting("prompts per decode call, k samples each (hf); batch sizing (vllm)", 16)
    device: str = setting("torch device (hf): auto (CUDA when present, else CPU), cpu, cuda:1, ...", "auto")
    dtype: Dtype = setting("weights dtype (hf); auto: bf16 on CUDA and on CPUs with native bf16, else float32",
                           "auto")
    prompt: Literal["paper", "informed"] = setting(
        "paper: task line, few-shot examples, the query (the reference layout); informed (not in the paper, for "
        "weak experts): the query and its positive passage, answer in your own words", "paper")
    passage_words: int = setting("words of the positive passage shown by a {passage} prompt (cut with '...')", 150)
    template: str | None = setting("file: user-message template with {task} {examples} {query} {passage}", None)
    task: str | None = setting("task text (unset: the preset's)", None)
    system: str | None = setting("system message text", None)
    system_file: str | None = setting("file with the system message", None)
    no_progress: bool = setting("no progress bar", False)

    def prompt_template(self) -> Any:
        from .prompts import PromptTemplate

        return PromptTemplate.from_files(template_path=self.template, system_path=self.system_file, task=self.task,
                                         system=self.system, preset=self.prompt, passage_words=self.passage_words)

    def backend_options(self) -> BackendOptions:
        s = self.sampling
        return BackendOptions(
            sampling=SamplingParams(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
                                    min_tokens=s.min_tokens),
            concurrency=self.concurrency, timeout=self.timeout, retries=self.retries, backoff=self.backoff,
            max_backoff=self.max_backoff, rate_limit=self.rate_limit, api_key_env=self.api_key_env,
            http_transport=self.http_transport, batch_size=self.batch_size,
            device=None if self.device in ("auto", "") else self.device, dtype=self.dtype)

    def synthesis_config(self, prompt: Any) -> SynthesisConfig:
        """The run's settings; ``shots: auto`` is 3 when ``prompt`` shows examples, else 0."""
        shots = self.shots if self.shots != "auto" else (3 if prompt.uses_examples else 0)
        return SynthesisConfig(k=self.k, shots=shots, shot_seed=self.shot_seed, seed=self.sampling.seed,
                               candidate_retries=self.candidate_retries, separate_requests=self.separate_requests,
                               failures_path=self.failures, progress=not self.no_progress)
