"""``openai:URL[#MODEL]``: thoughts written by an OpenAI-compatible completions server (vLLM, llama.cpp's
server, TGI, SGLang) serving the exported O1 model (``o1emb export --hf`` / ``--gguf``).

One ``POST URL/completions`` per query: ``prompt`` as token ids (the server never tokenizes our text),
``n`` = k samples, ``max_tokens`` = the thought budget, ``temperature``, ``top_p``, ``seed`` (the query's
first sample key, so a query's thoughts do not depend on its batch), ``stop_token_ids`` = [EOS] and
``return_token_ids`` (vLLM returns each choice's ``token_ids``; a server that does not gets its
``text`` tokenized by our tokenizer, which may split a word differently at a boundary: prefer servers
that return ids). ``repetition_penalty`` is sent as vLLM's parameter of that name. Requests run
``concurrency`` at a time. Retried: HTTP 408, 409, 429 and 5xx, timeouts and refused or dropped
connections, with exponential backoff (``backoff x 2**attempt`` seconds, capped at 8) or, when the
server names one, its ``Retry-After`` in seconds (capped at 30: a loaded vLLM or a rate-limited
provider says how long to wait); other 4xx and
an exhausted retry budget are one :class:`ModelError` naming the server's answer. The API key, if
any, comes from the environment variable ``api_key_env`` (a Bearer token).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from ..errors import InputError, ModelError
from . import check_settings

RETRY_STATUS = {408, 409, 429}
MAX_WAIT = 30.0
"""The longest ``Retry-After`` honoured, in seconds."""


def retry_after(headers: Any) -> float | None:
    """A ``Retry-After`` header's delay in seconds (``None`` when absent, or an HTTP date: then the
    exponential backoff applies)."""
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return min(MAX_WAIT, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None


class OpenAIEngine:
    def __init__(self, target: str, *, tokenizer: Any, eos_id: int, concurrency: int = 8, timeout: float = 120.0,
                 retries: int = 4, backoff: float = 0.5, api_key_env: str = "OPENAI_API_KEY") -> None:
        url, _, model = target.partition("#")
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise InputError(f"expected openai:http(s)://HOST[:PORT]/v1[#MODEL], got openai:{target}")
        self.url, self.model = url.rstrip("/"), model
        self.tokenizer, self.eos_id = tokenizer, eos_id
        self.concurrency, self.timeout, self.retries, self.backoff = max(1, concurrency), timeout, retries, backoff
        self.key = os.environ.get(api_key_env, "")
        if not self.model:
            self.model = self._first_model()
        self.identity = f"openai:{parts.netloc}{parts.path.rstrip('/')}#{self.model}"

    # -- HTTP ------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"content-type": "application/json", **({"authorization": f"Bearer {self.key}"} if self.key else {})}
        data = None if body is None else json.dumps(body).encode()
        last, wait = "", None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(wait if wait is not None else min(8.0, self.backoff * 2 ** (attempt - 1)))
            wait = None
            request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                text = exc.read().decode("utf-8", "replace")[:300]
                last, wait = f"HTTP {exc.code}: {text}", retry_after(exc.headers)
                if exc.code not in RETRY_STATUS and exc.code < 500:
                    raise ModelError(f"{self.url}{path} refused the request ({last})") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError) as exc:
                last = str(getattr(exc, "reason", exc))
        raise ModelError(f"{self.url}{path}: no answer after {self.retries + 1} attempts ({last})")

    def _first_model(self) -> str:
        data = self._request("GET", "/models")
        try:
            return str(data["data"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise ModelError(f"{self.url}/models lists no model: name one with openai:URL#MODEL") from None

    # -- thoughts --------------------------------------------------------------------------------------
    def _ids(self, choice: dict[str, Any], budget: int) -> list[int]:
        ids = choice.get("token_ids")
        if not (isinstance(ids, list) and all(isinstance(i, int) for i in ids)):
            ids = self.tokenizer.encode(str(choice.get("text") or ""), add_special_tokens=False)
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return [int(i) for i in ids[:budget]]

    def _one(self, prompt: list[int], budget: int, cfg: Any, key: int) -> list[list[int]]:
        n = cfg.n_thoughts
        if budget <= 0:
            return [[] for _ in range(n)]
        body = {"model": self.model, "prompt": list(prompt), "n": n, "max_tokens": budget,
                "temperature": cfg.temperature, "top_p": cfg.top_p, "seed": int(key) & 0x7FFFFFFF,
                "stop_token_ids": [self.eos_id], "return_token_ids": True}
        if cfg.repetition_penalty != 1.0:
            body["repetition_penalty"] = cfg.repetition_penalty
        data = self._request("POST", "/completions", body)
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or len(choices) != n:
            raise ModelError(f"{self.url}/completions answered {len(choices) if isinstance(choices, list) else 'no'} "
                             f"choices for n = {n}")
        choices = sorted(choices, key=lambda c: c.get("index", 0))
        return [self._ids(c, budget) for c in choices]

    def write(self, prompts: list[list[int]], budgets: list[int], cfg: Any, keys: list[int]) -> list[list[int]]:
        check_settings(cfg, "an OpenAI-compatible server")
        n = cfg.n_thoughts
        jobs = [(p, b, keys[i * n]) for i, (p, b) in enumerate(zip(prompts, budgets, strict=True))]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(jobs) or 1)) as pool:
            found = list(pool.map(lambda job: self._one(job[0], job[1], cfg, job[2]), jobs))
        return [thought for per_query in found for thought in per_query]
