"""The committee end to end with fake members (keyword scorers): hand-computed decisions, the baseline
rule and its policies, weights, one candidate, batching, and the resumable file runner."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pytest

from o1embedder.committee import CommitteeConfig, Task, refine, refine_rows, score_rows
from o1embedder.committee.members import probe_text
from o1embedder.errors import InputError
from o1embedder.formats import TrainingRow

POS, NEG = "apple banana", "cherry date"


class KeywordMember:
    """Score = number of shared words; ``synonyms`` rewrite the probe's words first."""

    def __init__(self, name: str, weight: float = 1.0, synonyms: dict[str, str] | None = None) -> None:
        self.name, self.weight, self.synonyms = name, weight, synonyms or {}
        self.calls, self.collection = 0, None

    def prepare(self, collection: Sequence[str]) -> None:
        self.collection = list(collection)

    def _words(self, text: str, probe: bool) -> set[str]:
        return {self.synonyms.get(w, w) if probe else w for w in text.lower().split()}

    def score(self, tasks: Sequence[Task], mode: str) -> list[np.ndarray]:
        self.calls += 1
        return [np.array([[len(self._words(probe_text(t.query, th, mode), True) & self._words(d, False))
                           for d in t.docs] for th in t.thoughts], dtype=float) for t in tasks]

    def similarity(self, tasks: Sequence[Task], mode: str) -> list[np.ndarray]:
        return [s[:, 0] for s in self.score([Task(t.query, t.thoughts, t.docs[:1]) for t in tasks], mode)]


def row(candidates, row_id="r1", **kw):
    return TrainingRow(query="q", pos=[POS], neg=[NEG], id=row_id, candidates=candidates, **kw)


def cfg(**kw):
    return CommitteeConfig(progress=False, **kw)


def test_positive_candidate_wins_and_beats_the_query():
    # The row's largest score is 1, so margins are (s+ - s-) / 2.
    # "q apple": pos 1, neg 0 -> rank 1, margin 1/2 -> 1.125; "q cherry": rank 2, margin -1/2 -> 0.375;
    # "q fruit" and the bare query "q": 0 vs 0 -> rank 2 (tie counts against), margin 0 -> 0.5.
    member = KeywordMember("kw")
    [res] = score_rows([row(["apple", "cherry", "fruit"])], [member], cfg())
    assert res.members["kw"]["scores"] == pytest.approx([1.125, 0.375, 0.5])
    assert res.members["kw"]["baseline"] == pytest.approx(0.5)
    assert res.members["kw"]["ranks"] == [1, 3, 2]
    assert res.members["kw"]["positive_rank"] == [1, 2, 2]
    e = np.exp(np.array([11.25, 3.75, 5.0]) - 11.25)
    assert res.votes == pytest.approx(list(e / e.sum()))
    assert res.chosen == 0 and res.thought == "apple" and res.outcome == "thought"
    assert res.vs_query == pytest.approx(2 / (1 + math.exp(-6.25)) - 1)
    assert res.agreement == 1.0


@pytest.mark.parametrize(("policy", "outcome", "thought"),
                         [("empty", "empty", ""), ("keep-best", "keep-best", "fruit"), ("drop", "dropped", "")])
def test_baseline_rule_and_policies(policy, outcome, thought):
    # the generic "fruit" (0.5) beats the negative-derived "cherry" (0.375) but only ties the bare query
    [res] = score_rows([row(["cherry", "fruit"])], [KeywordMember("kw")], cfg(policy=policy))
    assert res.chosen == 1 and res.vs_query == pytest.approx(0.0)
    assert res.outcome == outcome and res.thought == thought


def test_margin_is_in_vote_share():
    # vs_query of "apple" is 2 sigmoid(6.25) - 1 = 0.99614: beats a margin of 0.99, not of 0.999
    assert score_rows([row(["apple"])], [KeywordMember("kw")], cfg(margin=0.99))[0].outcome == "thought"
    assert score_rows([row(["apple"])], [KeywordMember("kw")], cfg(margin=0.999))[0].outcome == "empty"


@pytest.mark.parametrize("voting", ["soft", "hard", "borda"])
def test_two_members_disagree_weights_decide(voting):
    # B reads "apple" as "date" and "cherry" as "banana": A = [1.125, 0.375, 0.5], B = [0.375, 1.125, 0.5]
    a, b = KeywordMember("A"), KeywordMember("B", synonyms={"apple": "date", "cherry": "banana"})
    [res] = score_rows([row(["apple", "cherry", "fruit"])], [a, b], cfg(voting=voting))
    assert res.chosen == 0 and res.agreement == 0.5            # symmetric: tie -> lowest index
    if voting == "borda":                                        # points A (2, 0, 1), B (0, 2, 1): all tie
        assert res.votes == pytest.approx([0.5, 0.5, 0.5])
    b.weight = 2.0
    [res] = score_rows([row(["apple", "cherry", "fruit"])], [a, b], cfg(voting=voting))
    assert res.chosen == 1 and res.thought == "cherry"
    if voting == "hard":
        assert res.votes == pytest.approx([1 / 3, 2 / 3, 0])


def test_one_candidate_and_similarity_rule():
    [res] = score_rows([row(["banana split"])], [KeywordMember("kw")], cfg(scoring="similarity"))
    # similarity (reference): the candidate alone vs the first positive: 1 shared word; query: 0
    assert res.members["kw"]["scores"] == [1.0] and res.members["kw"]["baseline"] == 0.0
    assert res.votes == [1.0] and res.outcome == "thought" and res.thought == "banana split"


def test_other_positives_as_extra_negatives():
    # row 1 has no negatives of its own; row 2's positive is its negative
    rows = [TrainingRow(query="q", pos=[POS], id="a", candidates=["apple", "cherry"]),
            TrainingRow(query="q", pos=[NEG], id="b", candidates=["cherry", "apple"])]
    with pytest.raises(InputError, match="no negatives"):
        refine_rows(rows, [KeywordMember("kw")], cfg())
    results = refine_rows(rows, [KeywordMember("kw")], cfg(other_positives=1))
    assert [r.thought for r in results] == ["apple", "cherry"]


def test_batched_equals_row_by_row_and_one_call_per_batch():
    rows = [row(c, f"r{i}") for i, c in enumerate([["apple", "fruit"], ["cherry", "banana"], ["date"]] * 3)]
    member = KeywordMember("kw")
    batched = refine_rows(rows, [member], cfg(rows_per_batch=4))
    assert member.calls == 3 and member.collection == [POS, NEG]     # ceil(9 / 4) calls; stats prepared once
    single = refine_rows(rows, [KeywordMember("kw")], cfg(rows_per_batch=1))
    assert [r.to_dict() for r in batched] == [r.to_dict() for r in single]


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))


def test_file_runner_outputs_dropped_file_summary_and_resume(tmp_path):
    rows = [row(["apple", "fruit"], "a"), row(["cherry", "fruit"], "b"), row(["banana", "date"], "c")]
    src, out = tmp_path / "cand.jsonl", tmp_path / "train.jsonl"
    write_rows(src, rows)
    config = cfg(policy="drop", rows_per_batch=2)
    report = refine(src, out, [KeywordMember("kw")], config=config)
    kept = [json.loads(x) for x in out.read_text().splitlines()]
    dropped = [json.loads(x) for x in (tmp_path / "train.dropped.jsonl").read_text().splitlines()]
    assert [r["id"] for r in kept] == ["a", "c"] and [r["thought"] for r in kept] == ["apple", "banana"]
    assert [r["id"] for r in dropped] == ["b"] and dropped[0]["committee"]["outcome"] == "dropped"
    assert kept[0]["candidates"] == ["apple", "fruit"] and kept[0]["refinement"]["policy"] == "drop"
    summary = json.loads((tmp_path / "train.summary.json").read_text())
    assert summary["rows"] == 3 and summary["outcomes"] == {"thought": 2, "keep-best": 0, "empty": 0, "dropped": 1}
    assert summary["thinking_beats_query"] == pytest.approx(2 / 3)
    assert summary["agreement_histogram"] == {"1/1": 3}
    assert summary["members"]["kw"]["winner_beats_query"] == pytest.approx(2 / 3)
    assert (report.written, report.dropped) == (2, 1)
    # resume: nothing left to do; then lose the last output row plus a torn tail and run again
    again = refine(src, out, [KeywordMember("kw")], config=config)
    assert (again.already_done, again.written) == (3, 0)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text(lines[0] + lines[1][:20])
    third = refine(src, out, [KeywordMember("kw")], config=config)
    assert (third.already_done, third.written, third.dropped) == (2, 1, 0)
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["a", "c"]
    with pytest.raises(InputError, match="other settings"):
        refine(src, out, [KeywordMember("kw")], config=cfg(policy="empty"))
