"""Acceptance 6 and the CLI contract: exit 0 / 1 (finished with failures) / 2 (bad input, unusable
expert) with one clear line; nothing half-written when the expert cannot be reached."""

from __future__ import annotations

import json
import socket
import time

import pytest
from synth_stub import StubServer, write_rows

from o1embedder.cli import main


def _args(rows, out, expert, *extra):
    return ["synthesize", "--input", str(rows), "--out", str(out), "--expert", expert, "--no-progress",
            "--backoff", "0.01", *extra]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def test_success_then_resume_is_a_no_op(tmp_path):
    rows, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    write_rows(rows, 30)
    with StubServer() as stub:
        assert main(_args(rows, out, f"openai:{stub.url}", "--k", "2", "--shots", "1")) == 0
        first = out.read_text()
        requests = stub.state.requests
        assert main(_args(rows, out, f"openai:{stub.url}", "--k", "2", "--shots", "1")) == 0
        assert stub.state.requests == requests  # nothing asked again
    assert out.read_text() == first and len(first.splitlines()) == 30
    assert json.loads(first.splitlines()[0])["synthesis"]["shots"] == 1


def test_failures_give_exit_code_1_and_are_retried_next_run(tmp_path):
    rows, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    write_rows(rows, 20, special={4: "FAIL500"})
    failures = tmp_path / "out.failures.jsonl"
    with StubServer() as stub:
        assert main(_args(rows, out, f"openai:{stub.url}", "--retries", "1")) == 1
        [failure] = [json.loads(line) for line in failures.read_text().splitlines()]
        assert failure["id"] == "row-5" and "HTTP 500" in failure["error"]
        assert len(out.read_text().splitlines()) == 19
        assert main(_args(rows, out, f"openai:{stub.url}", "--retries", "1")) == 1  # tried again, fails again
        assert len(failures.read_text().splitlines()) == 1 and len(out.read_text().splitlines()) == 19


def test_missing_query(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"query": "ok", "pos": ["p"]}\n{"pos": ["p"]}\n')
    assert main(_args(rows, tmp_path / "out.jsonl", "openai:http://127.0.0.1:9/v1")) == 2
    assert "rows.jsonl:2: field 'query': missing" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


def test_empty_input(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n")
    assert main(_args(rows, tmp_path / "out.jsonl", "openai:http://127.0.0.1:9/v1")) == 2
    assert "no rows (empty file)" in capsys.readouterr().err


def test_unreadable_template(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    write_rows(rows, 3)
    code = main(_args(rows, tmp_path / "out.jsonl", "openai:http://127.0.0.1:9/v1", "--template", str(tmp_path / "t")))
    assert code == 2 and "cannot read the prompt template" in capsys.readouterr().err


def test_unreachable_server_fails_fast_and_writes_nothing(tmp_path, capsys):
    rows, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    write_rows(rows, 50)
    start = time.perf_counter()
    code = main(_args(rows, out, f"openai:http://127.0.0.1:{_free_port()}/v1#m", "--retries", "3"))
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2 and elapsed < 10
    last = err.strip().splitlines()[-1]                  # INFO lines may come first; the error is one line
    assert last.startswith("o1emb synthesize: error:") and "cannot connect" in last and "after 4 attempt(s)" in last
    assert "Traceback" not in err
    assert not out.exists() and not (tmp_path / "out.failures.jsonl").exists()


def test_resume_with_other_settings_is_refused(tmp_path, capsys):
    rows, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    write_rows(rows, 10)
    with StubServer() as stub:
        assert main(_args(rows, out, f"openai:{stub.url}", "--k", "2")) == 0
        out.write_text("".join(out.read_text().splitlines(keepends=True)[:5]))
        assert main(_args(rows, out, f"openai:{stub.url}", "--k", "3")) == 2
    assert "other settings (k: 2 -> 3)" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 5


def test_output_of_another_input_is_refused(tmp_path, capsys):
    rows, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    write_rows(rows, 3)
    out.write_text('{"id": "elsewhere-1", "query": "q"}\n')
    assert main(_args(rows, out, "openai:http://127.0.0.1:9/v1")) == 2
    assert "not in the input" in capsys.readouterr().err


@pytest.mark.parametrize("flag,value", [("--k", "0"), ("--shots", "-1"), ("--temperature", "-1"),
                                        ("--concurrency", "0")])
def test_bad_options(tmp_path, capsys, flag, value):
    rows = tmp_path / "rows.jsonl"
    write_rows(rows, 3)
    assert main(_args(rows, tmp_path / "out.jsonl", "openai:http://127.0.0.1:9/v1", flag, value)) == 2
    assert "error:" in capsys.readouterr().err
