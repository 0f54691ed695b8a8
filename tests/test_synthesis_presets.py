"""Prompt presets (``paper``, ``informed`` with ``{passage}``) and the sampling defaults, through the
library and the CLI against the loopback stub."""

from __future__ import annotations

import json

import pytest
from synth_stub import StubServer, write_rows

from o1embedder.cli import main
from o1embedder.errors import InputError
from o1embedder.formats import TrainingRow
from o1embedder.synthesis import DEFAULT_TASK, DEFAULT_TEMPLATE, PromptTemplate, SamplingParams
from o1embedder.synthesis.prompts import INFORMED_TASK
from o1embedder.synthesis.settings import SynthesizeSettings

# The hash the paper prompt had before presets existed: outputs made then must still resume.
PAPER_SHA256_BEFORE_PRESETS = PromptTemplate(task=DEFAULT_TASK, template=DEFAULT_TEMPLATE).sha256()


def test_paper_preset_is_the_old_default():
    paper = PromptTemplate.preset("paper")
    assert paper == PromptTemplate() and paper.sha256() == PAPER_SHA256_BEFORE_PRESETS
    assert paper.uses_examples and not paper.uses_passage


def test_informed_preset_shows_the_cut_passage():
    prompt = PromptTemplate.preset("informed", passage_words=5)
    row = TrainingRow(query="what prevents scurvy?", pos=["Vitamin C prevents scurvy in\n sailors at sea.", "other"],
                      id="r1")
    [message] = prompt.row_messages(row, [])
    assert message["content"] == (f"{INFORMED_TASK}\n\nQuery: what prevents scurvy?\n"
                                  "Passage: Vitamin C prevents scurvy in ...\nResponse:")
    assert "Do not copy the passage" in INFORMED_TASK
    short = PromptTemplate.preset("informed").row_messages(row, [])[0]["content"]
    assert "Passage: Vitamin C prevents scurvy in sailors at sea.\nResponse:" in short  # not cut: no "..."
    assert not prompt.uses_examples


def test_prompt_hash_differs_between_presets_and_passage_lengths():
    hashes = {PromptTemplate.preset("paper").sha256(), PromptTemplate.preset("informed").sha256(),
              PromptTemplate.preset("informed", passage_words=50).sha256()}
    assert len(hashes) == 3
    # passage_words does not shape a prompt without {passage}: the paper hash stays put
    assert PromptTemplate.preset("paper", passage_words=50).sha256() == PAPER_SHA256_BEFORE_PRESETS


def test_passage_errors():
    row = TrainingRow(query="q", pos=[], id="row-7")
    with pytest.raises(InputError, match="row row-7: .*no positive passage"):
        PromptTemplate.preset("informed").row_messages(row, [])
    with pytest.raises(InputError, match="no passage was given"):
        PromptTemplate.preset("informed").user_message("q", [])
    with pytest.raises(InputError, match="unknown prompt preset 'fancy'"):
        PromptTemplate.preset("fancy")
    with pytest.raises(InputError, match="passage words must be >= 1"):
        PromptTemplate.preset("informed", passage_words=0)


def test_template_file_may_use_passage(tmp_path):
    template = tmp_path / "t.txt"
    template.write_text("{task}\nQ: {query}\nP: {passage}\nA:")
    prompt = PromptTemplate.from_files(template_path=template, preset="informed", task="Answer.")
    assert prompt.user_message("q", [], "the passage") == "Answer.\nQ: q\nP: the passage\nA:"


def test_sampling_defaults_agree():
    params = SamplingParams()
    assert (params.temperature, params.top_p) == (0.7, 0.9)
    sampling = SynthesizeSettings().sampling                  # what o1emb synthesize sends by default
    assert (sampling.temperature, sampling.top_p) == (params.temperature, params.top_p)


def _args(rows, out, expert, *extra):
    return ["synthesize", "--input", str(rows), "--out", str(out), "--expert", expert, "--no-progress", *extra]


def test_cli_informed_prompt_and_default_sampling(tmp_path):
    rows, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    write_rows(rows, 4)
    with StubServer() as stub:
        stub.state.keep_bodies = True
        assert main(_args(rows, out, f"openai:{stub.url}", "--prompt", "informed", "--k", "2")) == 0
        bodies = stub.state.bodies
    body = bodies[0]
    assert body["temperature"] == 0.7 and body["top_p"] == 0.9
    user = body["messages"][-1]["content"]
    assert user.startswith(INFORMED_TASK) and "\nPassage: passage answering question " in user
    assert "Response: " not in user  # shots default to 0: the informed prompt shows no examples
    rows_out = [json.loads(line) for line in out.read_text().splitlines()]
    settings = rows_out[0]["synthesis"]
    assert settings["shots"] == 0 and settings["temperature"] == 0.7 and settings["top_p"] == 0.9
    assert settings["prompt_sha256"] == PromptTemplate.preset("informed").sha256() != PAPER_SHA256_BEFORE_PRESETS


def test_cli_server_default_sampling_sends_nothing(tmp_path):
    rows, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    write_rows(rows, 3)
    with StubServer() as stub:
        stub.state.keep_bodies = True
        assert main(_args(rows, out, f"openai:{stub.url}", "--temperature", "default", "--top-p", "DEFAULT")) == 0
        body = stub.state.bodies[0]
    assert "temperature" not in body and "top_p" not in body
    settings = json.loads(out.read_text().splitlines()[0])["synthesis"]
    assert settings["temperature"] is None and settings["top_p"] is None and settings["shots"] == 3
    assert settings["prompt_sha256"] == PAPER_SHA256_BEFORE_PRESETS


def test_cli_greedy_and_bad_values(tmp_path, capsys):
    rows, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    write_rows(rows, 2)
    with StubServer() as stub:
        stub.state.keep_bodies = True
        assert main(_args(rows, out, f"openai:{stub.url}", "--temperature", "0", "--k", "1")) == 0
        assert stub.state.bodies[0]["temperature"] == 0.0
    assert main(_args(rows, out, "openai:http://127.0.0.1:9/v1", "--temperature", "hot")) == 2
    assert "--temperature: expected a number or 'default'" in capsys.readouterr().err
    assert main(_args(rows, tmp_path / "o2.jsonl", "openai:http://127.0.0.1:9/v1", "--prompt", "informed",
                      "--passage-words", "0")) == 2
    assert "passage words must be >= 1" in capsys.readouterr().err
