"""A tiny OpenAI-compatible chat-completions stub server for the synthesis tests and benchmark.

Raw asyncio HTTP/1.1 (keep-alive, Content-Length bodies only): far cheaper per request than a full
web framework, so a benchmark measures the client, not the stub. It listens on 127.0.0.1 only, on an
ephemeral port, in a background thread (``StubServer``) or as a script (``python synth_stub.py``,
prints ``PORT <n>`` and serves until stdin closes: used by the benchmark to keep the stub on
another core).

Every completion echoes a row marker: ``[[<marker>]]`` where ``marker(query)`` hashes the target
query (the text after the last ``Query:`` line of the user message), so a test can check that each
row's candidates were written for that row. Completions are a pure function of (query, seed, choice
index), so runs are reproducible whatever the timing.

Faults are deterministic too. A transport fault (429, 500, slow, malformed JSON) is decided from a
hash of the request (messages + seed + n) and how many times the stub has already seen that
request, so a retried request succeeds after at most ``sightings`` faults. A bad choice (empty,
whitespace, refusal) depends on the request hash only, so the same request always gets the same
choices (the client asks again with another seed). Queries with a permanent-fault word always fail (``FAIL500`` -> always 500, ``REFUSE`` -> always a
refusal, ``BADJSON`` -> always malformed JSON).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


def marker(query: str) -> str:
    """The row marker the stub echoes for a target query."""
    return hashlib.sha1(query.encode("utf-8")).hexdigest()[:12]


def target_query(messages: list[dict[str, Any]]) -> str:
    """The target query of a synthesis prompt: the text after the last ``Query:`` line."""
    user = messages[-1]["content"]
    tail = user.rsplit("Query:", 1)[-1]
    return tail.split("\nResponse:", 1)[0].strip()


def _frac(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class Faults:
    """Probabilities of each transient fault, decided per request on its first ``sightings`` tries."""

    rate_429: float = 0.0
    retry_after: str = "0.05"
    rate_500: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 1.0
    rate_malformed: float = 0.0
    rate_empty_choice: float = 0.0
    sightings: int = 2


@dataclass
class StubConfig:
    latency: float = 0.0
    capacity: int = 1024
    model: str = "stub-model"
    faults: Faults = field(default_factory=Faults)
    report_usage: bool = True


class StubState:
    """Counters a test can read: requests, statuses, max concurrency, seen request keys."""

    def __init__(self) -> None:
        self.requests = 0
        self.status: Counter[int] = Counter()
        self.seen: Counter[str] = Counter()
        self.inflight = 0
        self.max_inflight = 0
        self.bodies: list[dict[str, Any]] = []
        self.keep_bodies = False


def _completion(cfg: StubConfig, body: dict[str, Any], key: str, sighting: int) -> dict[str, Any]:
    messages = body["messages"]
    query = target_query(messages)
    n = int(body.get("n") or 1)
    seed = body.get("seed")
    choices = []
    for i in range(n):
        text = f"Thought [[{marker(query)}]] about the query (seed {seed}, choice {i})."
        if "REFUSE" in query:
            text = "I'm sorry, but I can't help with that."
        elif _frac("empty", key, i) < cfg.faults.rate_empty_choice:  # same answer to the same request
            text = ["", "   ", "As an AI language model, I cannot do that."][int(_frac("kind", key, i) * 3)]
        choices.append({"index": i, "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop"})
    out: dict[str, Any] = {"id": "cmpl-" + key[:8], "object": "chat.completion",
                           "model": body.get("model"), "choices": choices}
    if cfg.report_usage:
        out["usage"] = {"prompt_tokens": 10, "completion_tokens": 12 * n, "total_tokens": 10 + 12 * n}
    return out


def _fault(cfg: StubConfig, key: str, sighting: int, query: str) -> str | None:
    if "FAIL500" in query:
        return "500"
    if "BADJSON" in query:
        return "malformed"
    if sighting >= cfg.faults.sightings:
        return None
    f = cfg.faults
    for name, rate in (("429", f.rate_429), ("500", f.rate_500), ("slow", f.rate_slow),
                       ("malformed", f.rate_malformed)):
        if rate and _frac(name, key, sighting) < rate:
            return name
    return None


class Stub:
    """The request handler (one per server)."""

    def __init__(self, cfg: StubConfig) -> None:
        self.cfg = cfg
        self.state = StubState()
        self._sem: asyncio.Semaphore | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in
                           (line.split(":", 1) for line in lines[1:] if ":" in line)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, extra, payload = await self._respond(method, path, body)
                reason = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error",
                          404: "Not Found"}.get(status, "Error")
                hdrs = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(payload)}\r\n{hdrs}\r\n".encode() + payload)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # client went away, or the server is shutting down
        finally:
            writer.close()

    async def _respond(self, method: str, path: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        st = self.state
        if method == "GET" and path.endswith("/models"):
            return 200, {}, json.dumps({"data": [{"id": self.cfg.model}]}).encode()
        if not path.endswith("/chat/completions"):
            return 404, {}, b'{"error": "not found"}'
        body = json.loads(raw)
        if st.keep_bodies:
            st.bodies.append(body)
        key = hashlib.sha1(json.dumps([body["messages"], body.get("seed"), body.get("n")],
                                      sort_keys=True).encode()).hexdigest()
        sighting = st.seen[key]
        st.seen[key] += 1
        st.requests += 1
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.cfg.capacity)
        async with self._sem:
            st.inflight += 1
            st.max_inflight = max(st.max_inflight, st.inflight)
            try:
                return await self._answer(body, key, sighting)
            finally:
                st.inflight -= 1

    async def _answer(self, body: dict[str, Any], key: str, sighting: int) -> tuple[int, dict[str, str], bytes]:
        if self.cfg.latency:
            await asyncio.sleep(self.cfg.latency)
        fault = _fault(self.cfg, key, sighting, target_query(body["messages"]))
        status = 200
        if fault == "slow":
            await asyncio.sleep(self.cfg.faults.slow_seconds)
        if fault == "429":
            status, extra, payload = 429, {"Retry-After": self.cfg.faults.retry_after}, b'{"error": "slow down"}'
        elif fault == "500":
            status, extra, payload = 500, {}, b'{"error": "boom"}'
        elif fault == "malformed":
            extra, payload = {}, b'{"choices": [{"message": {"content": "trunc'
        else:
            extra, payload = {}, json.dumps(_completion(self.cfg, body, key, sighting)).encode()
        self.state.status[status] += 1
        return status, extra, payload


class StubServer:
    """Run a :class:`Stub` on 127.0.0.1 (ephemeral port) in a background thread; a context manager."""

    def __init__(self, cfg: StubConfig | None = None) -> None:
        self.stub = Stub(cfg or StubConfig())
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def state(self) -> StubState:
        return self.stub.state

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self.stub.handle, "127.0.0.1", 0, backlog=1024))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> StubServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def _stop() -> None:
            assert self._server is not None
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


async def _serve_forever(cfg: StubConfig) -> None:
    stub = Stub(cfg)
    server = await asyncio.start_server(stub.handle, "127.0.0.1", 0, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # serve until the parent closes our stdin
    print(json.dumps({"requests": stub.state.requests, "max_inflight": stub.state.max_inflight}),
          flush=True)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--capacity", type=int, default=64)
    a = ap.parse_args()
    asyncio.run(_serve_forever(StubConfig(latency=a.latency, capacity=a.capacity)))


def write_rows(path: Any, n: int, *, special: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """Write ``n`` training rows (no ids, so they get ``row-<line>``); ``special`` appends words to queries."""
    rows = []
    for i in range(n):
        query = f"question number {i} about topic {i % 17}" + (f" {special[i]}" if special and i in special else "")
        rows.append({"query": query, "pos": [f"passage answering question {i}"],
                     "neg": [f"unrelated passage {i}"]})
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return rows
