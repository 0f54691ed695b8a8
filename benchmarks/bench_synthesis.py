"""Throughput of the ``openai:`` expert client against a stub with a known capacity.

The stub (tests/synth_stub.py, its own process so it does not share the client's GIL) answers every
request after ``--latency`` seconds (default 50 ms) and serves at most ``--capacity`` (64) requests
at a time, so its capacity is ``capacity / latency`` requests/s (1,280/s). Each client keeps
``--concurrency`` (64) requests in flight; its ratio is achieved requests/s over that capacity.
Measured side by side, interleaved, ``--reps`` times (median):

* ``raw``       - a bare asyncio HTTP/1.1 loop (pre-built request bytes): what this machine allows
                  (``ratio_to_raw`` compares each client with it, run for run);
* ``backend``   - ``OpenAIBackend.complete`` (lean transport), prompts prebuilt;
* ``synthesize``- the whole run: read rows, few-shot prompts, one ``n=3`` request per row,
                  candidate checks, fsync'd output (the acceptance number);
* ``httpx-default`` - the same backend on httpx's default transport (httpcore), for context.

Usage: ``python benchmarks/bench_synthesis.py [--requests 3000] [--reps 3]``; prints a table and
writes ``benchmarks/results/synthesis.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import interleaved, median, report  # noqa: E402
from synth_stub import write_rows  # noqa: E402

from o1embedder.synthesis import BackendOptions, GenRequest, SynthesisConfig, synthesize  # noqa: E402
from o1embedder.synthesis.openai_backend import OpenAIBackend  # noqa: E402

_MESSAGES = [{"role": "user", "content": "Think about it.\n\nQuery: what is a benchmark?\nResponse:"}]


async def _raw(port: int, n: int, concurrency: int) -> None:
    body = json.dumps({"model": "stub-model", "messages": _MESSAGES, "n": 3, "max_tokens": 512}).encode()
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    todo = iter(range(n))

    async def lane() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in todo:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            json.loads(await reader.readexactly(length))
        writer.close()

    await asyncio.gather(*(lane() for _ in range(concurrency)))


async def _backend(url: str, n: int, concurrency: int, transport: str) -> None:
    backend = OpenAIBackend(url, "stub-model", BackendOptions(concurrency=concurrency, http_transport=transport))
    await backend.start()
    todo = iter(range(n))

    async def lane() -> None:
        for i in todo:
            await backend.complete(GenRequest(_MESSAGES, 3, None, str(i)))

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    await backend.aclose()


def _synthesize(url: str, n: int, concurrency: int, workdir: Path) -> None:
    rows, out = workdir / "rows.jsonl", workdir / f"out-{time.monotonic_ns()}.jsonl"
    if not rows.exists() or sum(1 for _ in open(rows)) != n:
        write_rows(rows, n)
    result = synthesize(rows, out, f"openai:{url}#stub-model", config=SynthesisConfig(progress=False),
                        options=BackendOptions(concurrency=concurrency))
    assert result.written == n and result.failed == 0, result
    out.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--capacity", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-httpx-default", action="store_true")
    a = ap.parse_args()
    stub = subprocess.Popen([sys.executable, str(REPO / "tests" / "synth_stub.py"), "--latency", str(a.latency),
                             "--capacity", str(a.capacity)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(stub.stdout.readline().split()[1])  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/v1"
    capacity = a.capacity / a.latency
    n, c, n_small = a.requests, a.concurrency, max(a.requests // 6, 200)
    workdir = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    clients: dict[str, Any] = {
        "raw": (n, lambda: asyncio.run(_raw(port, n, c))),
        "backend": (n, lambda: asyncio.run(_backend(url, n, c, "lean"))),
        "synthesize": (n, lambda: _synthesize(url, n, c, workdir)),
    }
    if not a.skip_httpx_default:
        clients["httpx-default"] = (n_small, lambda: asyncio.run(_backend(url, n_small, c, "httpx")))
    times = interleaved({name: fn for name, (_, fn) in clients.items()}, a.reps)
    stub.stdin.close()  # type: ignore[union-attr]
    stub_stats = json.loads(stub.stdout.readline())  # type: ignore[union-attr]
    stub.wait()
    rows = []
    raw_rate = median([n / t for t in times["raw"]])
    for name, (count, _) in clients.items():
        rates = [count / t for t in times[name]]
        rows.append({"client": name, "requests": count, "req_per_s": median(rates),
                     "ratio_to_capacity": median(rates) / capacity, "ratio_to_raw": median(rates) / raw_rate,
                     "runs_req_per_s": [round(r) for r in rates]})
    print(f"stub capacity {capacity:.0f} req/s ({a.capacity} slots x {a.latency * 1e3:.0f} ms), client concurrency "
          f"{c}, {a.reps} interleaved reps (median); stub max in flight {stub_stats['max_inflight']}")
    report("synthesis", rows, {"capacity_req_per_s": capacity, "latency_s": a.latency, "slots": a.capacity,
                               "concurrency": c, "reps": a.reps, "stub": stub_stats,
                               "load_average": list(os.getloadavg())})


if __name__ == "__main__":
    main()
