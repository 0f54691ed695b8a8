"""Append-only output: torn tails are cut, corrupt lines are refused, appends are whole lines."""

from __future__ import annotations

import json

import pytest

from o1embedder.errors import InputError
from o1embedder.journal import JsonlAppender, recover_jsonl


def test_append_and_recover(tmp_path):
    path = tmp_path / "sub" / "out.jsonl"
    out = JsonlAppender(path)
    out.append([])
    assert not path.exists()  # created on first real write only
    out.append([{"id": "a", "synthesis": {"k": 3}}, {"id": "b"}])
    out.append([{"id": "c", "text": "é\n"}])
    out.close()
    assert path.read_text(encoding="utf-8").count("\n") == 3
    ids, settings = recover_jsonl(path)
    assert ids == {"a": 1, "b": 2, "c": 3} and settings == {"k": 3}


@pytest.mark.parametrize("tail", [b'{"id": "c", "cand', b'{"id": "c"}', b"x" * 70000])
def test_torn_tail_is_cut(tmp_path, tail):
    path = tmp_path / "out.jsonl"
    good = b'{"id": "a"}\n{"id": "b"}\n'
    path.write_bytes(good + tail)  # a line without its newline is torn, even when it parses
    ids, _ = recover_jsonl(path)
    assert ids == {"a": 1, "b": 2}
    assert path.read_bytes() == good


def test_only_a_torn_line(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"id": "a", "x"')
    assert recover_jsonl(path) == ({}, None)
    assert path.read_bytes() == b""


def test_corrupt_complete_line_is_an_error(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b", oops}\n{"id": "c"}\n')
    with pytest.raises(InputError, match=r"out.jsonl:2: corrupt line"):
        recover_jsonl(path)


def test_duplicate_or_missing_ids_are_errors(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text(json.dumps({"id": "a"}) + "\n" + json.dumps({"id": "a"}) + "\n")
    with pytest.raises(InputError, match="appears twice"):
        recover_jsonl(path)
    path.write_text(json.dumps({"query": "no id"}) + "\n")
    with pytest.raises(InputError, match="without a string 'id'"):
        recover_jsonl(path)
