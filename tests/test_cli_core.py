"""The command line: help on every subcommand, the error convention, think and toy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from o1embedder.cli import build_parser, main


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "o1embedder", *args], capture_output=True, text=True,
                          timeout=300)


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_every_subcommand_has_help(capsys):
    names = _subcommands()
    assert {"think", "toy"} <= set(names)
    for name in names:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0, name
        assert "usage: o1emb " + name in capsys.readouterr().out


def test_bad_options_exit_2_with_one_line():
    done = _run("think", "--model")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], done.stderr


def test_missing_model_is_one_clear_line(tmp_path):
    done = _run("think", "--model", str(tmp_path / "nope"), "a query")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"o1emb think: error: {tmp_path / 'nope'}: model folder not found"
    assert "Traceback" not in done.stderr


def test_toy_then_think(tmp_path):
    out = tmp_path / "toy"
    assert _run("toy", "--out", str(out), "--family", "llama").returncode == 0
    done = _run("think", "--model", str(out), "--n-thoughts", "2", "--max-new-tokens", "5", "--json",
                "who designed tokyo tower?")
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["query"] == "who designed tokyo tower?" and len(row["thoughts"]) == 2
    again = _run("toy", "--out", str(out))
    assert again.returncode == 2 and "not empty" in again.stderr
    bad = _run("think", "--model", str(out), "--n-thoughts", "0", "q")
    assert bad.returncode == 2 and "n_thoughts must be" in bad.stderr
    empty = _run("think", "--model", str(out), "  ")
    assert empty.returncode == 2 and "query 0 is empty" in empty.stderr
