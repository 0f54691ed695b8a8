"""Acceptance 2: SIGKILL the CLI at 10 random moments of one 2,000-row job, restart it each time.

The moments are counted in requests the stub has served in that run (20-120), so every kill lands
mid-job whatever the machine's speed, and the test checks that it did.

The final output must hold every row exactly once, every line valid JSON, and the same content as
an uninterrupted run (the stub is deterministic: a completion depends on the query, the request's
seed and the choice index, and each request's seed on the row id and attempt). Between kills the
file may end in a torn line (killed mid-write); every complete line must already be valid.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from synth_stub import Faults, StubConfig, StubServer, write_rows

from o1embedder.synthesis import BackendOptions, SynthesisConfig, synthesize

ROWS = 2000


def _cli(rows: Path, out: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "o1embedder", "--log-level", "WARNING", "synthesize", "--input", str(rows),
            "--out", str(out), "--expert", f"openai:{url}#stub-model", "--seed", "7", "--concurrency", "16",
            "--backoff", "0.01", "--no-progress"]


def _check_partial(path: Path) -> tuple[int, bool]:
    """Complete lines are valid JSON with unique ids; returns (complete lines, torn tail?)."""
    if not path.exists():
        return 0, False
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines[-1] != b""
    ids = [json.loads(line)["id"] for line in lines[:-1]]
    assert len(ids) == len(set(ids))
    return len(ids), torn


def test_sigkill_ten_times_then_finish(tmp_path):
    rows, out, ref = tmp_path / "rows.jsonl", tmp_path / "out.jsonl", tmp_path / "ref.jsonl"
    write_rows(rows, ROWS)
    rng = random.Random(1234)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Each kill is triggered by the stub's count of requests served, not by a clock: 20-120 requests
    # into each run, so every kill lands mid-job however slow the machine (10 x 120 < 2,000 rows);
    # the final run does the rest.
    config = StubConfig(latency=0.05, faults=Faults(rate_empty_choice=0.05))
    history = []
    with StubServer(config) as stub:
        for _ in range(10):
            served_before = stub.state.requests
            target = served_before + rng.randint(20, 120)
            proc = subprocess.Popen(_cli(rows, out, stub.url), env=env)
            deadline = time.monotonic() + 120
            while stub.state.requests < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            served = stub.state.requests
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert served >= target, f"the run stopped or stalled after {served - served_before} requests"
            history.append((proc.returncode, *_check_partial(out)))
        final = subprocess.run(_cli(rows, out, stub.url), env=env, timeout=120)
        assert final.returncode == 0
        # the uninterrupted reference run, same settings
        report = synthesize(rows, ref, f"openai:{stub.url}#stub-model", config=SynthesisConfig(seed=7, progress=False),
                            options=BackendOptions(concurrency=64, backoff=0.01))
    assert report.written == ROWS and report.failed == 0
    print("kills (exit code, complete lines, torn tail):", history)
    assert all(code == -signal.SIGKILL for code, _, _ in history)      # killed while running, every time
    assert all(lines < ROWS for _, lines, _ in history)                 # ... in the middle of the job
    assert [lines for _, lines, _ in history] == sorted(lines for _, lines, _ in history)  # progress kept
    final_rows = [json.loads(line) for line in out.read_text().splitlines()]
    ref_rows = [json.loads(line) for line in ref.read_text().splitlines()]
    ids = [r["id"] for r in final_rows]
    assert len(ids) == ROWS == len(set(ids))
    assert {r["id"]: r for r in final_rows} == {r["id"]: r for r in ref_rows}
    assert not (tmp_path / "out.failures.jsonl").exists()


def test_resume_after_torn_line_redoes_that_row_once(tmp_path):
    rows, ref, out = tmp_path / "rows.jsonl", tmp_path / "ref.jsonl", tmp_path / "out.jsonl"
    write_rows(rows, 200)
    with StubServer() as stub:
        expert = f"openai:{stub.url}#stub-model"
        synthesize(rows, ref, expert, config=SynthesisConfig(seed=3, progress=False))
        lines = ref.read_bytes().split(b"\n")
        out.write_bytes(b"\n".join(lines[:120]) + b"\n" + lines[120][: len(lines[120]) // 2])  # killed mid-write
        report = synthesize(rows, out, expert, config=SynthesisConfig(seed=3, progress=False))
    assert report.already_done == 120 and report.written == 80
    final = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(final) == 200 == len({r["id"] for r in final})
    assert sorted(map(json.dumps, final)) == sorted(line.decode() for line in lines if line)
