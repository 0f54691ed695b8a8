"""The GPU check: every CUDA path the docs name, run the way a user runs it, in one command.

    bash scripts/gpu-check.sh            # on a machine with one GPU (sized for 8 minutes; not yet run on one)
    bash scripts/gpu-check.sh --cpu      # the same checks, shrunk, on the CPU (CI: under 3 minutes)

Checks, in order (each one's figures, time and verdict go into one JSON file, rewritten after every
check so a killed run keeps what it measured):

1. ``demo-float32`` / ``demo-bfloat16``: ``o1emb demo --device DEV --dtype ...``: nDCG@10 of BM25, O1
   without and with thinking, beside the CPU figures of docs/demo.md (seed 0; the full demo on a GPU,
   ``--small`` on the CPU, which has no documented figures); passes when thinking beats not thinking.
2. ``decode``: the trained demo model in bf16 on DEV, greedy thoughts of the held-out queries through
   the static decode loop and through the generic one: share of equal thoughts, lowest cosine of the
   vectors (passes at >= 0.99 of thoughts equal and cosine >= 0.99).
3. ``train-torchrun`` / ``rl-torchrun``: 5 steps of ``o1emb train`` and of ``o1emb rl`` under
   ``torchrun --nproc_per_node 1`` on the demo's rows and model (finite losses, one ``OUT/final``,
   ``world_size`` in the RL log).
4. ``serve``: ``o1emb serve`` on the demo's index answers ``POST /v1/search`` with thinking (thoughts
   and hits come back).
5. ``bench-decode``: ``benchmarks/bench_decode.py`` at the SmolLM2-135M shape (random weights) on DEV.
6. ``engine``: the demo's model thinking on a generation engine beside the one-pass loop (greedy, k = 1,
   every demo query): vLLM serving ``o1emb export --hf`` through ``--think-engine openai:...`` on a GPU
   where vLLM is installed (skipped, and said so, where it is not; not yet run: no GPU with vLLM has
   been lent), llama.cpp through ``o1emb export --gguf`` on the CPU (skipped without llama-cpp-python).
   Greedy-thought agreement (passes at >= 0.9), the engine's vectors against the given-thoughts path,
   queries per second of each.

Exit status 0 when every check passed, 1 otherwise. Writes ``--out`` (default gpu-check.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CPU_FIGURES = {"bm25": 0.0796, "o1-no-think": 0.6574, "o1-think": 0.7775}
"""nDCG@10 of the full demo, seed 0, float32 on the CPU (docs/demo.md)."""


class Check:
    """Runs the checks in order and keeps one JSON file of their results up to date."""

    def __init__(self, out: Path, cpu: bool, work: Path) -> None:
        self.out, self.cpu, self.work = out, cpu, work
        self.device = "cpu" if cpu else "cuda"
        self.results: dict[str, Any] = {"mode": "cpu" if cpu else "gpu", "machine": machine(cpu),
                                        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "checks": {}}

    def run(self, name: str, fn: Callable[[], dict[str, Any]]) -> None:
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        try:
            found = fn()
        except Exception as exc:                     # a failed check is a result, not the end of the run
            found = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[-1500:]}"}
        found["seconds"] = round(time.perf_counter() - start, 1)
        self.results["checks"][name] = found
        self.out.write_text(json.dumps(self.results, indent=2) + "\n")
        print(f"   {'ok' if found.get('ok') else 'FAILED'} in {found['seconds']}s: "
              f"{json.dumps({k: v for k, v in found.items() if k not in ('ok', 'seconds')})[:600]}", flush=True)

    def o1emb(self, *args: str, launcher: list[str] | None = None, timeout: float = 600) -> str:
        cmd = [*(launcher or [sys.executable]), "-m", "o1embedder", "--log-level", "WARNING", *args]
        proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=timeout, cwd=self.work)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:1])} exited {proc.returncode}: {proc.stderr[-1500:]}")
        return proc.stdout


def env() -> dict[str, str]:
    src = str(REPO / "src")
    path = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1"}


def machine(cpu: bool) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    if not cpu and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    return info


# -- the checks ---------------------------------------------------------------------------------------

def demo(check: Check, dtype: str) -> dict[str, Any]:
    folder = check.work / f"demo-{dtype}"
    size = ["--small", "--epochs", "2"] if check.cpu else []
    check.o1emb("demo", "--out", str(folder), "--device", check.device, "--dtype", dtype, *size, timeout=900)
    report = json.loads((folder / "report.json").read_text())
    ndcg = {r["system"]: r["ndcg@10"] for r in report["results"]}
    found: dict[str, Any] = {"ndcg@10": ndcg, "stage_seconds": report["stage_seconds"]}
    if not check.cpu:
        found["cpu_figures"] = CPU_FIGURES
        found["minus_cpu"] = {k: round(ndcg[k] - v, 4) for k, v in CPU_FIGURES.items() if k in ndcg}
    found["ok"] = ndcg["o1-think"] > ndcg["o1-no-think"] if not check.cpu else all(0 <= v <= 1 for v in ndcg.values())
    return found


def decode(check: Check) -> dict[str, Any]:
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO / "src"))
    from o1embedder.model import O1Embedder

    folder = check.work / "demo-float32"
    queries = [json.loads(line)["text"] for line in (folder / "world" / "queries.jsonl").read_text().splitlines()]
    model = O1Embedder.from_pretrained(folder / "model", device=check.device, dtype="bfloat16")
    got = {}
    for mode in ("static", "generic"):
        model.decode = mode
        model.think(queries[:16], n_thoughts=1, temperature=0.0, max_new_tokens=24, show_progress=False)  # warm-up
        if check.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        found = model.think(queries, n_thoughts=1, temperature=0.0, max_new_tokens=24, batch_size=16,
                            show_progress=False)
        if check.device == "cuda":
            torch.cuda.synchronize()
        got[mode] = (found, time.perf_counter() - start)
    (a, ta), (b, tb) = got["static"], got["generic"]
    equal = sum(x == y for x, y in zip(a.ids, b.ids, strict=True)) / len(queries)
    cos = float(np.min(np.sum(a.pooled * b.pooled, axis=-1)))
    return {"ok": equal >= 0.99 and cos >= 0.99, "queries": len(queries), "dtype": "bfloat16",
            "greedy_thoughts_equal": round(equal, 4), "min_cosine": round(cos, 6),
            "static_seconds": round(ta, 3), "generic_seconds": round(tb, 3)}


def torchrun() -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]


def train(check: Check) -> dict[str, Any]:
    folder = check.work / "demo-float32"
    out = check.work / "train"
    check.o1emb("train", "--model", str(folder / "model"), "--data", str(folder / "train.jsonl"), "--out", str(out),
                "--full", "--max_steps", "5", "--logging_steps", "1", "--save_strategy", "no",
                "--per_device_train_batch_size", "8", "--group-size", "4", "--mixed-precision", "auto",
                launcher=torchrun())
    return {"ok": (out / "final" / "o1embedder.json").is_file()}


def rl(check: Check) -> dict[str, Any]:
    folder = check.work / "demo-float32"
    out = check.work / "rl"
    check.o1emb("rl", "--model", str(folder / "model"), "--data", str(folder / "train.jsonl"), "--out", str(out),
                "--full", "--steps", "5", "--rows-per-step", "8", "--samples", "4", "--max-new-tokens", "24",
                "--save-steps", "0", launcher=torchrun())
    log = [json.loads(line) for line in (out / "rl_log.jsonl").read_text().splitlines()]
    finite = all(abs(r["loss"]) < float("inf") and r["loss"] == r["loss"] for r in log)
    return {"ok": len(log) == 5 and finite and all(r["world_size"] == 1 for r in log)
            and (out / "final" / "o1embedder.json").is_file(),
            "reward_mean": [r["reward_mean"] for r in log], "kl_last": log[-1]["kl"],
            "seconds_per_step": round(sum(r["seconds"] for r in log) / len(log), 3)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(check: Check) -> dict[str, Any]:
    folder = check.work / "demo-float32"
    port = free_port()
    cmd = [sys.executable, "-m", "o1embedder", "--log-level", "WARNING", "serve", "--index", str(folder / "index"),
           "--port", str(port), "--device", check.device]
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {proc.stderr.read()[-1500:] if proc.stderr else ''}") from None
                time.sleep(0.5)
        query = json.loads((folder / "world" / "queries.jsonl").read_text().splitlines()[0])["text"]
        body = json.dumps({"query": query, "k": 3, "think": True}).encode()
        request = urllib.request.Request(base + "/v1/search", data=body, headers={"Content-Type": "application/json"})
        start = time.perf_counter()
        answer = json.loads(urllib.request.urlopen(request, timeout=120).read())
        seconds = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    thoughts, hits = answer.get("thoughts") or [], answer.get("results") or []
    return {"ok": bool(answer.get("thought")) and bool(thoughts) and len(hits) == 3, "query": query,
            "thoughts": thoughts, "top": [h.get("id") for h in hits], "request_seconds": round(seconds, 3)}


def engine(check: Check) -> dict[str, Any]:
    """Thinking on a generation engine beside the one-pass loop: vLLM (``o1emb export --hf`` served by
    ``vllm serve``) on a GPU where vLLM is installed, llama.cpp (``o1emb export --gguf``) on the CPU."""
    import importlib.util

    folder = check.work / "demo-float32"
    if check.cpu:
        if importlib.util.find_spec("llama_cpp") is None:
            return {"ok": True, "skipped": "llama-cpp-python is not installed (scripts/install-llamacpp.sh)"}
        gguf = check.work / "demo-f16.gguf"
        check.o1emb("export", str(folder / "model"), "--gguf", str(gguf))
        return engine_figures(check, folder, f"llama.cpp:{gguf}")
    if importlib.util.find_spec("vllm") is None:
        return {"ok": True, "skipped": "vllm is not installed"}
    hf = check.work / "demo-hf"
    check.o1emb("export", str(folder / "model"), "--hf", str(hf))
    port = free_port()
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(hf), "--port", str(port),
           "--served-model-name", "o1", "--gpu-memory-utilization", "0.3"]
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"vllm did not start: {proc.stderr.read()[-1500:] if proc.stderr else ''}") from None
                time.sleep(1)
        return engine_figures(check, folder, f"openai:http://127.0.0.1:{port}/v1#o1")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def engine_figures(check: Check, folder: Path, spec: str) -> dict[str, Any]:
    """Greedy thoughts (k = 1) of the demo's queries by the one-pass loop and by the engine ``spec``:
    agreement, the engine's vectors against the given-thoughts path, queries per second of each."""
    import numpy as np

    sys.path.insert(0, str(REPO / "src"))
    from o1embedder.engines import attach
    from o1embedder.model import O1Embedder

    queries = [json.loads(line)["text"] for line in (folder / "world" / "queries.jsonl").read_text().splitlines()]
    greedy = {"n_thoughts": 1, "temperature": 0.0, "max_new_tokens": 24, "show_progress": False}
    ours = O1Embedder.from_pretrained(folder / "model", device=check.device, dtype="float32")
    other = attach(O1Embedder.from_pretrained(folder / "model", device=check.device, dtype="float32"), spec)
    timed = {}
    for name, model in (("one-pass", ours), ("engine", other)):
        model.think(queries[:4], **greedy)                                           # warm-up
        start = time.perf_counter()
        timed[name] = (model.think(queries, **greedy), time.perf_counter() - start)
    (mine, own), (theirs, took) = timed["one-pass"], timed["engine"]
    agree = sum(a == b for a, b in zip(mine.ids, theirs.ids, strict=True)) / len(queries)
    given = ours.encode_queries(queries, thoughts=theirs.ids, show_progress=False)
    diff = float(np.abs(np.asarray(theirs.pooled) - given).max())
    return {"ok": agree >= 0.9 and diff < 1e-3, "engine": spec.split(":")[0], "queries": len(queries),
            "greedy_agreement": round(agree, 3), "max_vector_difference": diff,
            "one_pass_queries_per_s": round(len(queries) / own, 2), "engine_queries_per_s": round(len(queries) / took, 2),
            "engine_over_one_pass": round(own / took, 2)}


def bench_decode(check: Check) -> dict[str, Any]:
    size = ["--rows", "2", "--new-tokens", "4", "--prompt-tokens", "16", "--reps", "1"] if check.cpu else []
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_decode.py"), "--device", check.device, *size]
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600, cwd=REPO / "benchmarks")
    if proc.returncode != 0:
        raise RuntimeError(f"bench_decode exited {proc.returncode}: {proc.stderr[-1500:]}")
    found = json.loads((REPO / "benchmarks" / "results" / "bench_decode.json").read_text())
    keep = ("decode_step_ms", "fast_step_ms", "generic_step_ms", "hf_generate_step_ms", "matmul_floor_ms",
            "greedy_thoughts_equal", "min_cosine", "rows", "new_tokens", "dtype", "device")
    figures = {k: found.get(k) for k in keep if k in found}
    return {"ok": bool(found.get("greedy_thoughts_equal")), **figures}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run the checks on the CPU, shrunk (CI)")
    parser.add_argument("--out", default="gpu-check.json", help="the results file (default gpu-check.json)")
    parser.add_argument("--work", default=None, help="working folder (default: a new temporary folder)")
    args = parser.parse_args()
    import tempfile

    import torch

    if not args.cpu and not torch.cuda.is_available():
        print("gpu-check: no CUDA device here; use --cpu", file=sys.stderr)
        return 2
    work = Path(args.work or tempfile.mkdtemp(prefix="o1emb-gpu-check-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    check = Check(Path(args.out).resolve(), args.cpu, work)
    check.run("demo-float32", lambda: demo(check, "float32"))
    check.run("demo-bfloat16", lambda: demo(check, "bfloat16"))
    check.run("decode", lambda: decode(check))
    check.run("train-torchrun", lambda: train(check))
    check.run("rl-torchrun", lambda: rl(check))
    check.run("serve", lambda: serve(check))
    check.run("bench-decode", lambda: bench_decode(check))
    check.run("engine", lambda: engine(check))
    failed = [name for name, found in check.results["checks"].items() if not found.get("ok")]
    check.results["passed"] = not failed
    check.out.write_text(json.dumps(check.results, indent=2) + "\n")
    print(f"gpu-check: {'all passed' if not failed else 'FAILED: ' + ', '.join(failed)} -> {check.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
