"""``o1emb synthesize``: k candidate thoughts per training row from an expert LLM (exploration step).

Exit codes: 0 every row done; 1 finished, but some rows failed after all retries (listed in the
failures file; run the same command again to retry them); 2 bad input or an unusable expert.
"""

from __future__ import annotations

import argparse

from ..log import get_logger

logger = get_logger(__name__)

# The sampling defaults (also ``synthesis.backends.SamplingParams``): kept here as literals so that
# building the parser imports nothing of the library.
DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.9
_UNSET = "default"


def _float_or_unset(text: str) -> float | None:
    """A float, or ``default`` (None): send no value, leaving the server's / model's own default."""
    if text.strip().lower() == _UNSET:
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or '{_UNSET}', got {text!r}") from None


def _shots(text: str) -> int | None:
    """An integer, or ``auto`` (None): 3 when the prompt shows few-shot examples, else 0."""
    if text.strip().lower() == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}") from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synthesize", help="write candidate thoughts with an expert LLM", description=__doc__,
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--input", required=True, help="training rows (JSONL: query, pos, neg, ...)")
    p.add_argument("--out", required=True, help="output JSONL (appended to and resumed when it exists)")
    p.add_argument("--expert", required=True,
                   help="openai:BASE_URL[#MODEL] | hf:PATH | vllm:PATH (or a registered prefix)")
    p.add_argument("--failures", default=None, help="failures JSONL (default: OUT with .failures.jsonl)")
    p.add_argument("--k", type=int, default=3, help="candidate thoughts per row")
    p.add_argument("--shots", type=_shots, default="auto",
                   help="few-shot examples per prompt; auto: 3 when the prompt shows examples (paper), else 0")
    p.add_argument("--shot-seed", type=int, default=0, help="seed of the few-shot draw")
    _add_sampling(p)
    _add_requests(p)
    _add_prompt(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _add_sampling(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling (what is sent is recorded per row)")
    g.add_argument("--temperature", type=_float_or_unset, default=DEFAULT_TEMPERATURE,
                   help="our choice, not the paper's (it kept the vLLM server default, 1.0, where a small "
                        "expert writes gibberish); 0: greedy (k identical candidates); 'default': send none "
                        "(the server's default; hf: the model's generation config)")
    g.add_argument("--top-p", type=_float_or_unset, default=DEFAULT_TOP_P,
                   help="nucleus mass; 'default': send none")
    g.add_argument("--max-tokens", type=int, default=512)
    g.add_argument("--min-tokens", type=int, default=None, help="(vLLM, hf) minimum new tokens")
    g.add_argument("--seed", type=int, default=None, help="base seed; each request gets a derived one")


def _add_requests(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("requests")
    g.add_argument("--concurrency", type=int, default=32, help="requests in flight (openai)")
    g.add_argument("--timeout", type=float, default=120.0, help="seconds per request (openai)")
    g.add_argument("--retries", type=int, default=5, help="retries per request on 429/5xx/timeouts/errors")
    g.add_argument("--backoff", type=float, default=0.5, help="first backoff in seconds (doubles, jittered)")
    g.add_argument("--max-backoff", type=float, default=30.0, help="cap on one wait (also on Retry-After)")
    g.add_argument("--rate-limit", type=float, default=None, help="requests per second (default: no limit)")
    g.add_argument("--candidate-retries", type=int, default=3,
                   help="bad candidates (empty, refusal, lead-in, restatement) tolerated per row before it fails")
    g.add_argument("--separate-requests", action="store_true",
                   help="k requests with n=1 instead of one request with n=k")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable with the API key")
    g.add_argument("--http-transport", choices=["lean", "httpx"], default="lean",
                   help="lean: fast asyncio HTTP/1.1; httpx: httpx's own (proxies, HTTP/2)")
    g.add_argument("--batch-size", type=int, default=16,
                   help="prompts per decode call, k samples each (hf); batch sizing (vllm)")
    g.add_argument("--device", default=None, help="torch device (hf; default: CUDA when available, else CPU)")
    g.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                   help="weights dtype (hf); auto: bf16 on CUDA and on CPUs with native bf16, else float32")


def _add_prompt(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("prompt")
    g.add_argument("--prompt", choices=["paper", "informed"], default="paper",
                   help="paper: task line, few-shot examples, the query (the reference layout); informed "
                        "(not in the paper, for weak experts): the query and its positive passage, answer in "
                        "your own words")
    g.add_argument("--passage-words", type=int, default=150,
                   help="words of the positive passage shown by a {passage} prompt (cut with '...')")
    g.add_argument("--template", default=None,
                   help="file: user-message template with {task} {examples} {query} {passage}")
    g.add_argument("--task", default=None, help="task text (default: the preset's)")
    g.add_argument("--system", default=None, help="system message text")
    g.add_argument("--system-file", default=None, help="file with the system message")


def run(args: argparse.Namespace) -> int:
    from ..synthesis import BackendOptions, PromptTemplate, SamplingParams, SynthesisConfig, synthesize

    prompt = PromptTemplate.from_files(template_path=args.template, system_path=args.system_file,
                                       task=args.task, system=args.system, preset=args.prompt,
                                       passage_words=args.passage_words)
    shots = args.shots if args.shots is not None else (3 if prompt.uses_examples else 0)
    sampling = SamplingParams(temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens,
                              min_tokens=args.min_tokens)
    options = BackendOptions(
        sampling=sampling, concurrency=args.concurrency, timeout=args.timeout, retries=args.retries,
        backoff=args.backoff, max_backoff=args.max_backoff, rate_limit=args.rate_limit,
        api_key_env=args.api_key_env, http_transport=args.http_transport, batch_size=args.batch_size,
        device=args.device, dtype=args.dtype)
    config = SynthesisConfig(k=args.k, shots=shots, shot_seed=args.shot_seed, seed=args.seed,
                             candidate_retries=args.candidate_retries, separate_requests=args.separate_requests,
                             failures_path=args.failures, progress=not args.no_progress)
    report = synthesize(args.input, args.out, args.expert, config=config, options=options, prompt=prompt)
    return 1 if report.failed else 0
