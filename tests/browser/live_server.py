"""Run a server on loopback for a test: an app in a uvicorn thread, or ``o1emb serve`` as a process.

Also builds the small index the browser and CLI tests search (a tiny model over a handful of
documents, with ``corpus.jsonl`` beside it so the server shows titles and snippets).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

DOCS = {
    "tower": {"title": "Tokyo Tower", "text": "Tokyo Tower is a lattice tower in Minato, Tokyo, designed by "
                                              "Tachu Naito and completed in 1958."},
    "fox": {"title": "The quick brown fox", "text": "The quick brown fox jumps over the lazy dog."},
    "scurvy": {"title": "Scurvy", "text": "Scurvy is a disease caused by a lack of vitamin C in the diet."},
    "river": {"title": "Rivers and bridges", "text": "Cities grow along rivers; architects design bridges."},
    "retriever": {"title": "Thinking retrievers", "text": "A retriever thinks before it retrieves: it writes "
                                                          "a thought, then embeds query and thought."},
    "claims": {"title": "Scientific claims", "text": "Scientific claims need evidence from abstracts."},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def app_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on 127.0.0.1; yields the base URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(30)


def wait_healthy(url: str, proc: subprocess.Popen | None = None, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(url + "/healthz", timeout=2)
            if response.status_code == 200:
                return response.json()
        time.sleep(0.2)
    raise TimeoutError(f"{url} not healthy after {timeout}s")


@contextlib.contextmanager
def cli_server(*args: str, env: dict[str, str] | None = None, log: Path | None = None) -> Iterator[tuple[str, int]]:
    """``python -m o1embedder serve ARGS --port P`` as a process; yields (base URL, pid)."""
    port = free_port()
    out = open(log, "w") if log is not None else subprocess.DEVNULL       # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "o1embedder", "serve", *args, "--port", str(port)],
                            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_healthy(url, proc)
        except (RuntimeError, TimeoutError) as exc:
            tail = log.read_text(errors="replace")[-2000:] if log is not None else ""
            raise RuntimeError(f"{exc}; server output:\n{tail}") from None
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
        if log is not None:
            out.close()


def build_small_index(model_path: Path, out: Path, docs: dict[str, dict[str, str]] | None = None) -> Path:
    """An index of ``model_path`` over ``docs`` (default :data:`DOCS`), with ``corpus.jsonl`` beside it."""
    from o1embedder.retrieval import build_index

    docs = docs or DOCS
    build_index(str(model_path), docs, out, show_progress=False)
    lines = [json.dumps({"_id": i, **d}) for i, d in docs.items()]
    (out / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
