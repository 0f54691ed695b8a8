"""Content checks: lead-ins and restatements (the SmolLM2 failure modes) are bad candidates, asked again
like empty and refusal ones, counted per reason; legitimate short answers pass."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from synth_stub import write_rows

from o1embedder.synthesis import Completion, SynthesisConfig, candidate_problem, synthesize
from o1embedder.synthesis.quality import is_lead_in, is_restatement

QUERY = "What is the capital of France?"


@pytest.mark.parametrize("text", [
    "The answer to your query is:", "The correct answer is:", "Here is a plausible response:",
    "The correct answer is:  \n", 'Here is a plausible response: "', "The answer is: ''", "**Answer:**",
    "Sure! Here is a plausible response to address the query:", "Great question. The answer is:", "Response:",
])
def test_lead_ins(text):
    assert is_lead_in(text)
    assert candidate_problem(text) == "lead-in"
    assert candidate_problem(text, QUERY) == "lead-in"


@pytest.mark.parametrize("text", [
    "Vitamin C: it prevents scurvy and helps wounds heal.",
    "Paris. Key facts: it is the largest city of France.",
    "Vitamin C prevents scurvy. Good dietary sources include:",  # real content before the colon
    "The ratio is 3:1 in most samples.",
])
def test_not_lead_ins(text):
    assert not is_lead_in(text)
    assert candidate_problem(text, QUERY) is None


@pytest.mark.parametrize("text", [
    "What is the capital of France?", "what is the capital of france", "  WHAT IS THE CAPITAL OF FRANCE!!",
    "capital of France", "France.",                         # a piece of the query
    "The capital of France is France.",                     # no word the query does not have
    "It is the capital of France.",
])
def test_restatements(text):
    assert is_restatement(text, QUERY)
    assert candidate_problem(text, QUERY) == "restatement"
    assert candidate_problem(text) is None  # without the query there is nothing to compare with


@pytest.mark.parametrize("text,query", [
    ("Paris is the capital of France.", QUERY),
    ("Paris", QUERY),
    ("Yes, it is.", "is it raining"),                      # only function words: not a restatement
    ("Nanoscale biomaterials can guide stem cell differentiation.",
     "0-dimensional biomaterials lack inductive properties."),
])
def test_not_restatements(text, query):
    assert not is_restatement(text, query)
    assert candidate_problem(text, query) is None


@pytest.mark.parametrize("text,problem", [
    ("", "empty"), ("  ", "empty"), ("I'm sorry, but I can't help with that.", "refusal"),
    ("I cannot answer: the query is unclear:", "refusal"),  # refusal is checked first
])
def test_empty_and_refusal_still_win(text, problem):
    assert candidate_problem(text, QUERY) == problem


class _SmolLikeBackend:
    """Answers each row's first request with a lead-in, a restatement and one good thought; later
    requests with good thoughts only. Rows whose query contains ``STUCK`` only ever get lead-ins."""

    name, max_concurrency = "smol-like", 4

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def complete(self, request):
        query = request.messages[-1]["content"].rsplit("Query:", 1)[1].split("\nResponse:")[0].strip()
        self.requests[request.key] += 1
        attempt = self.requests[request.key]
        if "STUCK" in query:
            return Completion(["The correct answer is:"] * request.n)
        good = [f"A new thought {attempt}.{j} about {query}" for j in range(request.n)]
        if attempt == 1:
            return Completion(["The answer to your query is:\n", query.upper(), *good][:request.n])
        return Completion(good)


def test_runner_asks_again_and_counts_reasons(tmp_path):
    rows, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    write_rows(rows, 6, special={5: "STUCK"})
    backend = _SmolLikeBackend()
    report = synthesize(rows, out, backend, config=SynthesisConfig(k=3, shots=0, candidate_retries=3, progress=False))
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert report.written == 5 and report.failed == 1
    for row in written:
        assert len(row["candidates"]) == 3 and all(c.startswith("A new thought") for c in row["candidates"])
        assert backend.requests[row["id"]] == 2  # asked again for the two bad ones
    assert report.bad_reasons == {"lead-in": 5 + 6, "restatement": 5}  # STUCK: 3 then 3 lead-ins
    assert report.bad_candidates == sum(report.bad_reasons.values())
    [failure] = [json.loads(line) for line in (tmp_path / "out.failures.jsonl").read_text().splitlines()]
    assert failure["id"] == "row-6" and "lead-in" in failure["error"]
    assert set(failure["bad_candidates"]) == {"lead-in"}
