"""Serving under load: micro-batching vs. one request at a time, on the same model and machine.

Two ``o1emb serve`` processes over one toy model (Qwen2 layout, hidden 256, 4 layers, random):
``--max-batch 32`` (micro-batching) and ``--max-batch 1 --max-wait-ms 0`` (one request per model
call). ``--clients`` concurrent clients on loopback send one-text ``/v1/embeddings`` requests for
``--duration`` seconds per phase; phases alternate between the servers (``interleaved``). Workloads:
documents, queries without thinking, and (``--think``) queries with one short thought.

Both servers run torch with ``--threads`` (default 1): on a shared CPU, OpenMP threads that
spin-wait for a busy core turn a 20 ms forward pass into a second. Reports requests/s, errors, latency medians/p95, texts per model call, and the server's resident
memory (first vs. last samples of the phase). Writes ``benchmarks/results/serving.json``.

    python benchmarks/bench_serving.py [--duration 30] [--clients 16] [--reps 1] [--think]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import interleaved, median, report

WORDS = ("tower bridge river city architect designed built vitamin disease claim evidence abstract "
         "retriever thought query document fox dog quick lazy brown nutrition science history").split()


def build_bench_model(out: Path, hidden: int = 256, layers: int = 4) -> Path:
    """A random toy O1 model large enough that compute, not HTTP, dominates a request."""
    from o1embedder.model import O1Embedder
    from o1embedder.toy import build_model, train_tokenizer

    tokenizer = train_tokenizer(family="qwen2", with_special_tokens=True)
    model = build_model(tokenizer, hidden=hidden, layers=layers, heads=8, kv_heads=4, seed=0)
    O1Embedder(model, tokenizer).save_pretrained(out)
    return out


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux ``/proc``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def body_for(kind: str, rng: random.Random) -> dict[str, Any]:
    """A passage-sized document (40-100 words) or a query-sized text (6-16 words); base64 vectors
    back, as the OpenAI client asks by default. ``mixed`` picks one of the three per request."""
    if kind == "mixed":
        kind = rng.choice(["documents", "queries", "think"])
    size = rng.randint(40, 100) if kind == "documents" else rng.randint(6, 16)
    body: dict[str, Any] = {"input": " ".join(rng.choice(WORDS) for _ in range(size)), "encoding_format": "base64"}
    if kind == "queries":
        body.update(input_type="query", think=False)
    elif kind == "think":
        body.update(input_type="query", n_thoughts=1, max_new_tokens=8)
    return body


async def _client(http: httpx.AsyncClient, kind: str, stop_at: float, seed: int, out: dict[str, list]) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        start = time.perf_counter()
        try:
            response = await http.post("/v1/embeddings", json=body_for(kind, rng))
            ok = response.status_code == 200 and len(response.json()["data"]) == 1
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            ok, response = False, exc
        out["latency"].append(time.perf_counter() - start)
        if not ok:
            out["errors"].append(str(getattr(response, "text", response))[:200])


async def _sample_memory(pid: int, stop_at: float, samples: list[float]) -> None:
    while time.monotonic() < stop_at:
        samples.append(rss_mb(pid))
        await asyncio.sleep(0.5)


async def _load(url: str, pid: int, kind: str, clients: int, duration: float) -> dict[str, Any]:
    out: dict[str, list] = {"latency": [], "errors": []}
    memory: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        before = (await http.get("/healthz")).json()["batching"]
        start = time.monotonic()
        stop_at = start + duration
        await asyncio.gather(_sample_memory(pid, stop_at, memory),
                             *(_client(http, kind, stop_at, seed, out) for seed in range(clients)))
        elapsed = time.monotonic() - start
        after = (await http.get("/healthz")).json()["batching"]
    calls = max(after["calls"] - before["calls"], 1)
    quarter = max(len(memory) // 4, 1)
    lat = sorted(out["latency"])
    return {"requests": len(lat), "errors": len(out["errors"]), "error_samples": out["errors"][:3],
            "rps": len(lat) / elapsed, "p50_ms": 1000 * median(lat),
            "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))], "texts_per_call": (after["items"] - before["items"]) / calls,
            "rss_start_mb": median(memory[:quarter]), "rss_end_mb": median(memory[-quarter:]),
            "rss_peak_mb": max(memory)}


def run_load(url: str, pid: int, kind: str = "documents", clients: int = 16, duration: float = 30) -> dict[str, Any]:
    """``clients`` concurrent clients for ``duration`` seconds against a running server."""
    return asyncio.run(_load(url, pid, kind, clients, duration))


class Server:
    """``o1emb serve --model MODEL ARGS`` as a child process on a free loopback port."""

    def __init__(self, model: Path, *args: str, log: Path | None = None) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "w") if log else subprocess.DEVNULL            # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "o1embedder", "serve", "--model", str(model),
                                      "--port", str(self.port), *args], stdout=self._log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError("server did not start")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if self._log is not subprocess.DEVNULL:
            self._log.close()


# the query cache is off in both: this measures batching alone (the workloads hardly repeat a text anyway)
MODES = {"micro-batched": ("--max-batch", "32", "--max-wait-ms", "5", "--query-cache", "0"),
         "one-at-a-time": ("--max-batch", "1", "--max-wait-ms", "0", "--query-cache", "0")}


def run_workload(servers: dict[str, Server], kind: str, clients: int, duration: float,
                 reps: int) -> dict[str, list[dict[str, Any]]]:
    """Warm each server up, then ``reps`` interleaved load phases per server: results by mode."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    for server in servers.values():
        run_load(server.url, server.proc.pid, kind, clients, 3)

    def phase(name: str) -> Any:
        server = servers[name]
        return lambda: results[name].append(run_load(server.url, server.proc.pid, kind, clients, duration))

    interleaved({name: phase(name) for name in servers}, reps)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30, help="seconds per load phase (default 30)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--reps", type=int, default=1, help="phases per mode and workload (interleaved)")
    parser.add_argument("--think", action="store_true", help="also: queries with one 8-token thought")
    parser.add_argument("--threads", default="1",
                        help="torch threads per server (default 1: on a shared CPU, more threads spin-wait)")
    args = parser.parse_args()
    kinds = ["documents", "queries"] + (["think"] * args.think)
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {"clients": args.clients, "duration_s": args.duration, "threads": args.threads,
                             "ratios": {}, "error_samples": {}, "load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_bench_model(Path(tmp) / "model")
        servers = {name: Server(model, *flags, "--threads", args.threads, log=Path(tmp) / f"{name}.log")
                   for name, flags in MODES.items()}
        try:
            for server in servers.values():
                server.wait()
            for kind in kinds:
                results = run_workload(servers, kind, args.clients, args.duration, args.reps)
                for name, runs in results.items():
                    rows += [{"workload": kind, "mode": name, **{k: v for k, v in r.items() if k != "error_samples"}}
                             for r in runs]
                rps = {name: median([r["rps"] for r in runs]) for name, runs in results.items()}
                extra["ratios"][kind] = rps["micro-batched"] / rps["one-at-a-time"]
                extra["error_samples"][kind] = [e for runs in results.values() for r in runs for e in r["error_samples"]]
        finally:
            for server in servers.values():
                server.close()
    extra["load_average_after"] = os.getloadavg()
    report("serving", rows, extra)
    for kind, ratio in extra["ratios"].items():
        print(f"{kind}: micro-batched / one-at-a-time throughput = {ratio:.2f}x")


if __name__ == "__main__":
    main()
