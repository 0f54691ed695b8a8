"""Acceptance 1: 1,000 rows through a stub injecting 429 (Retry-After), 500, timeouts, malformed JSON
and empty/refusal content: every row's candidates belong to that row, no duplicates, exact failure
accounting. Plus the retry policy in isolation (Retry-After honoured, rate limit, fatal statuses)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from synth_stub import Faults, StubConfig, StubServer, marker, write_rows

from o1embedder.errors import ExpertError
from o1embedder.formats import read_training_rows
from o1embedder.synthesis import BackendOptions, GenRequest, SynthesisConfig, synthesize
from o1embedder.synthesis.openai_backend import OpenAIBackend, parse_retry_after

PERMANENT = {10: "FAIL500", 333: "FAIL500", 20: "REFUSE", 777: "REFUSE", 30: "BADJSON"}


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_thousand_rows_with_faults(tmp_path):
    rows_path, out = tmp_path / "rows.jsonl", tmp_path / "cand.jsonl"
    write_rows(rows_path, 1000, special=PERMANENT)
    rows = {r.id: r for r in read_training_rows(rows_path)}
    faults = Faults(rate_429=0.08, retry_after="0.05", rate_500=0.08, rate_slow=0.02, slow_seconds=1.0,
                    rate_malformed=0.05, rate_empty_choice=0.08)
    options = BackendOptions(concurrency=48, timeout=0.4, retries=4, backoff=0.01, max_backoff=0.1)
    with StubServer(StubConfig(faults=faults)) as stub:
        report = synthesize(rows_path, out, f"openai:{stub.url}#stub-model", options=options,
                            config=SynthesisConfig(k=3, seed=11, progress=False))
        status = dict(stub.state.status)
    written, failures = _read(out), _read(tmp_path / "cand.failures.jsonl")
    # every fault kind really happened
    assert status[429] > 10 and status[500] > 10 and report.retries > 50 and report.bad_candidates > 50
    # each row exactly once, in the output or in the failures file
    out_ids = [r["id"] for r in written]
    fail_ids = [r["id"] for r in failures]
    assert len(out_ids) == len(set(out_ids)) and len(fail_ids) == len(set(fail_ids))
    assert set(out_ids) | set(fail_ids) == set(rows) and not set(out_ids) & set(fail_ids)
    # exact failure accounting: only the permanently failing rows failed, each for its own reason
    expected = {f"row-{i + 1}": word for i, word in PERMANENT.items()}
    assert {r["id"]: r["query"] for r in failures} == {i: rows[i].query for i in expected}
    assert report.failed == len(failures) == len(expected) and report.written == 1000 - len(expected)
    for failure in failures:
        reason = {"FAIL500": "HTTP 500", "REFUSE": "refusal", "BADJSON": "malformed JSON"}[expected[failure["id"]]]
        assert reason in failure["error"], failure
    # every candidate belongs to its row (the stub echoes a marker of the query it was asked about)
    for row in written:
        assert row["query"] == rows[row["id"]].query and row["pos"] == rows[row["id"]].pos
        assert len(row["candidates"]) == 3 and len(set(row["candidates"])) == 3
        assert all(f"[[{marker(row['query'])}]]" in c for c in row["candidates"]), row
        assert row["synthesis"]["k"] == 3 and row["synthesis"]["model"] == "stub-model"
        assert row["synthesis"]["seed"] == 11 and row["synthesis"]["max_tokens"] == 512
        assert row["synthesis"]["temperature"] == 0.7 and row["synthesis"]["top_p"] == 0.9  # our defaults


def _run(coro):
    return asyncio.run(coro)


async def _one(url: str, options: BackendOptions, query: str = "q"):
    backend = OpenAIBackend(url, "stub-model", options)
    await backend.start()
    try:
        return await backend.complete(GenRequest([{"role": "user", "content": f"Query: {query}\nResponse:"}], 2))
    finally:
        await backend.aclose()


def test_retry_after_is_honoured():
    faults = Faults(rate_429=1.0, retry_after="0.6", sightings=1)
    with StubServer(StubConfig(faults=faults)) as stub:
        start = time.perf_counter()
        result = _run(_one(stub.url, BackendOptions(backoff=0.001, retries=2)))
        elapsed = time.perf_counter() - start
    assert result.retries == 1 and len(result.texts) == 2
    assert elapsed >= 0.6  # waited what the server asked, not the 1 ms backoff


def test_request_sent_and_rate_limit():
    with StubServer() as stub:
        stub.state.keep_bodies = True
        options = BackendOptions(rate_limit=20.0)
        options.sampling = type(options.sampling)(temperature=0.7, top_p=0.9, max_tokens=64)

        async def many():
            backend = OpenAIBackend(stub.url, None, options)  # no model named: taken from /models
            await backend.start()
            reqs = [GenRequest([{"role": "user", "content": f"Query: {i}\nResponse:"}], 3, seed=i) for i in range(10)]
            await asyncio.gather(*(backend.complete(r) for r in reqs))
            await backend.aclose()
            return backend.name

        start = time.perf_counter()
        name = _run(many())
        elapsed = time.perf_counter() - start
        body = stub.state.bodies[0]
    assert name == "stub-model" and elapsed >= 0.45  # 10 requests at 20/s
    assert {body[k] for k in ("n", "temperature", "top_p", "max_tokens")} == {3, 0.7, 0.9, 64}
    assert body["model"] == "stub-model" and "seed" in body


def test_row_error_after_retry_budget():
    with StubServer() as stub:
        with pytest.raises(ExpertError, match=r"HTTP 500 \(after 3 attempts\)"):
            _run(_one(stub.url, BackendOptions(backoff=0.001, retries=2), query="x FAIL500"))


@pytest.mark.parametrize("value,seconds", [("3", 3.0), ("0.25", 0.25), ("-1", 0.0), (None, None), ("soon", None)])
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value) == seconds


def test_parse_retry_after_http_date():
    import email.utils

    value = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after(value) <= 31
