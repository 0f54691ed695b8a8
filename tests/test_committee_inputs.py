"""Bad input to the committee: clear errors naming file, line and field; the CLI exits 2 with one line."""

from __future__ import annotations

import json

import pytest

from o1embedder.cli import main
from o1embedder.committee import CommitteeConfig, build_committee, read_candidate_rows
from o1embedder.errors import InputError

GOOD = {"id": "a", "query": "q", "pos": ["apple banana"], "neg": ["cherry date"], "candidates": ["apple"]}


def write(tmp_path, *objs):
    path = tmp_path / "cand.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


@pytest.mark.parametrize(("change", "message"), [
    ({"candidates": None}, "cand.jsonl:2: field 'candidates': missing (expected the candidate thoughts"),
    ({"candidates": []}, "cand.jsonl:2: field 'candidates': empty list"),
    ({"candidates": "apple"}, "cand.jsonl:2: field 'candidates': expected a list of strings, got str"),
    ({"candidates": {"a": 1}}, "cand.jsonl:2: field 'candidates': expected a list of strings, got dict"),
    ({"candidates": ["apple", 3]}, "cand.jsonl:2: field 'candidates': expected a list of strings"),
    ({"candidates": ["apple", "  "]}, "cand.jsonl:2: field 'candidates': candidate 1 is empty"),
    ({"pos": None}, "cand.jsonl:2: field 'pos': missing"),
    ({"pos": []}, "cand.jsonl:2: field 'pos': no positive passage"),
    ({"neg": []}, "cand.jsonl:2: field 'neg': no negatives"),
    ({"id": "a"}, "cand.jsonl:2: field 'id': duplicate id 'a'"),
])
def test_bad_rows(tmp_path, change, message):
    bad = {**GOOD, "id": "b", **change}
    bad = {k: v for k, v in bad.items() if v is not None}
    with pytest.raises(InputError) as info:
        read_candidate_rows(write(tmp_path, GOOD, bad), CommitteeConfig())
    assert message in str(info.value)


def test_no_negatives_is_fine_for_the_similarity_rule(tmp_path):
    rows = read_candidate_rows(write(tmp_path, {**GOOD, "neg": []}), CommitteeConfig(scoring="similarity"))
    assert rows[0].neg == []


@pytest.mark.parametrize(("config", "message"), [
    ({"voting": "plurality"}, "unknown voting 'plurality'"), ({"scoring": "bleu"}, "unknown scoring"),
    ({"policy": "skip"}, "unknown policy"), ({"query_mode": "prepend"}, "unknown query mode"),
    ({"temperature": 0.0}, "temperature must be > 0"), ({"margin": 1.5}, "margin must be in"),
])
def test_bad_settings(config, message):
    with pytest.raises(InputError, match=message):
        CommitteeConfig(**config).validate()


@pytest.mark.parametrize(("spec", "weights", "message"), [
    ("bm25,bm25", None, "listed twice"), ("bm25,", None, "comma-separated"), ("st:", None, "names no path"),
    ("bm25", "1,2", "2 weights for 1 committee members"), ("bm25", "-1", "positive"), ("bm25", "x", "numbers"),
])
def test_bad_committee(spec, weights, message):
    with pytest.raises(InputError, match=message):
        build_committee(spec, weights)


def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys):
    src = write(tmp_path, {**GOOD, "candidates": "apple"})
    code = main(["refine", "--input", str(src), "--out", str(tmp_path / "out.jsonl"), "--committee", "bm25"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err.startswith("o1emb refine: error: ") and "field 'candidates'" in err
    assert not (tmp_path / "out.jsonl").exists()


def test_cli_bm25_committee_end_to_end(tmp_path):
    rows = [{**GOOD, "id": "a", "candidates": ["fruit", "apple", "cherry"]},
            {**GOOD, "id": "b", "candidates": ["cherry", "banana"]}]
    src, out = write(tmp_path, *rows), tmp_path / "train.jsonl"
    code = main(["refine", "--input", str(src), "--out", str(out), "--committee", "bm25", "--voting", "hard",
                 "--no-progress"])
    assert code == 0
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["thought"] for r in got] == ["apple", "banana"]
    assert got[0]["committee"]["members"]["bm25"]["positive_rank"] == [2, 1, 2]
    assert json.loads((tmp_path / "train.summary.json").read_text())["rows"] == 2
