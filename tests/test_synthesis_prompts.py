"""Prompts: few-shot leakage (acceptance 3), determinism, templates; candidate quality checks."""

from __future__ import annotations

import json

import pytest

from o1embedder.errors import InputError
from o1embedder.formats import read_training_rows
from o1embedder.synthesis import FewShotSampler, PromptTemplate, candidate_problem


def _adversarial_rows(tmp_path):
    """Rows built to tempt a leak: shared positives, repeated queries, a query inside a passage."""
    rows = []
    for i in range(60):
        rows.append({"query": f"what is fact {i}", "pos": [f"fact {i} is explained here", f"shared passage {i % 5}"]})
    rows.append({"query": "what is fact 1", "pos": ["a second row asking the same query"]})    # duplicate query
    rows.append({"query": "tell me more", "pos": ["shared passage 0"]})                      # shared positive
    rows.append({"query": "another question", "pos": ["this passage quotes: what is fact 2"]})  # query inside a passage
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return read_training_rows(path)


def _examples_part(prompt: PromptTemplate, row, examples) -> str:
    text = prompt.user_message(row.query, examples)
    target = f"Query: {row.query}\nResponse:"
    assert text.endswith(target)
    return text[: -len(target)]


def test_no_prompt_contains_its_own_query_or_positives(tmp_path):
    rows = _adversarial_rows(tmp_path)
    prompt = PromptTemplate()
    for shots in (1, 3, 8):
        sampler = FewShotSampler(rows, shots, seed=0)
        for row in rows:
            examples = sampler.examples_for(row)
            assert len(examples) == shots
            shown = _examples_part(prompt, row, examples)
            assert row.query.casefold() not in shown.casefold(), (row.id, shown)
            for positive in row.pos:
                assert positive.casefold() not in shown.casefold(), (row.id, positive)


def test_few_shot_draw_is_deterministic_and_order_free(tmp_path):
    rows = _adversarial_rows(tmp_path)
    a = FewShotSampler(rows, 3, seed=5)
    b = FewShotSampler(rows, 3, seed=5)
    first = {row.id: a.examples_for(row) for row in rows}
    # the same row gets the same examples whatever the order rows are processed in (resume, concurrency)
    assert all(b.examples_for(row) == first[row.id] for row in reversed(rows))
    other = FewShotSampler(rows, 3, seed=6)
    assert any(other.examples_for(row) != first[row.id] for row in rows)


def test_tiny_input_gives_fewer_examples(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"query": "q1", "pos": ["p1"]}\n{"query": "q2", "pos": ["p2"]}\n')
    rows = read_training_rows(path)
    assert FewShotSampler(rows, 3).examples_for(rows[0]) == [("q2", "p2")]


def test_default_prompt_layout_and_hash():
    prompt = PromptTemplate()
    text = prompt.user_message("who?", [("q", "r")])
    assert text == ("Think about a plausible response to address the query.\n\n"
                    "Query: q\nResponse: r\n\nQuery: who?\nResponse:")
    assert prompt.messages("who?", []) == [{"role": "user", "content": prompt.user_message("who?", [])}]
    assert PromptTemplate(system="be brief").sha256() != prompt.sha256()


def test_template_and_system_from_files(tmp_path):
    template = tmp_path / "t.txt"
    template.write_text("{task} | {examples}Q={query} {not_a_placeholder}")
    system = tmp_path / "s.txt"
    system.write_text("You are an expert.\n")
    prompt = PromptTemplate.from_files(template_path=template, system_path=system, task="T")
    messages = prompt.messages("a {query} b", [])
    assert messages[0] == {"role": "system", "content": "You are an expert."}
    assert messages[1]["content"] == "T | Q=a {query} b {not_a_placeholder}"  # one pass, braces kept


def test_bad_templates(tmp_path):
    with pytest.raises(InputError, match="cannot read the prompt template"):
        PromptTemplate.from_files(template_path=tmp_path / "missing.txt")
    with pytest.raises(InputError, match="cannot read the prompt template"):
        PromptTemplate.from_files(template_path=tmp_path)  # a directory
    bad = tmp_path / "noquery.txt"
    bad.write_text("{task} {examples}")
    with pytest.raises(InputError, match=r"\{query\}"):
        PromptTemplate.from_files(template_path=bad)


@pytest.mark.parametrize("text,problem", [
    ("", "empty"), ("   \n\t", "empty"), (None, "empty"),
    ("I'm sorry, but I can't help with that.", "refusal"), ("I\u2019m sorry, no.", "refusal"),
    ("I cannot answer this question.", "refusal"), ("As an AI language model, I think...", "refusal"),
    ("Sure. As an AI, I cannot browse.", "refusal"),
    ("The Eiffel Tower was designed by Gustave Eiffel's company.", None),
    ("I can see several plausible answers: first, ...", None),
])
def test_candidate_problem(text, problem):
    assert candidate_problem(text) == problem
