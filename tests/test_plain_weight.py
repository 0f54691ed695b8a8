"""The query's own no-thinking vector mixed into its thinking vector (``ThinkConfig.plain_weight``):
the same blend on every path that makes a thinking vector (``think``, ``encode_queries``, given
thoughts, the retriever's thought cache), thoughts untouched by it, saved with the model, and set from
the command line."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from o1embedder.errors import InputError
from o1embedder.model import O1Embedder, ThinkConfig
from o1embedder.model.pooling import blend_plain

QUERIES = ["who designed the tower in tokyo?", "why", "rivers and bridges bridges rivers", "vitamins"]
SAMPLING = {"n_thoughts": 2, "temperature": 0.8, "max_new_tokens": 10, "seed": 3}


def _expected(model: O1Embedder, weight: float) -> tuple[np.ndarray, object]:
    """The blend computed by hand from the paper's vector and the no-thinking vector."""
    paper = model.think(QUERIES, **SAMPLING, plain_weight=0.0)
    plain = np.asarray(model.encode_queries(QUERIES, think=False), np.float64)
    mixed = weight * plain + (1 - weight) * np.asarray(paper.pooled, np.float64)
    return mixed / np.linalg.norm(mixed, axis=-1, keepdims=True), paper


@pytest.mark.parametrize("weight", [0.25, 0.6])
def test_every_thinking_path_gives_the_same_blend(tiny_qwen: O1Embedder, weight: float) -> None:
    expected, paper = _expected(tiny_qwen, weight)
    found = tiny_qwen.think(QUERIES, **SAMPLING, plain_weight=weight)
    assert found.ids == paper.ids                                   # the thoughts do not depend on it
    np.testing.assert_allclose(found.vectors, paper.vectors, atol=0)
    np.testing.assert_allclose(found.pooled, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(found.pooled, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(tiny_qwen.encode_queries(QUERIES, **SAMPLING, plain_weight=weight), expected, atol=1e-5)
    given = tiny_qwen.encode_queries(QUERIES, thoughts=found.ids, plain_weight=weight)
    np.testing.assert_allclose(given, expected, atol=1e-4)
    # the blend is neither of its parts
    assert np.abs(found.pooled - paper.pooled).max() > 1e-3


def test_zero_is_the_papers_vector_bitwise_and_the_model_default_applies(tiny_qwen: O1Embedder, tmp_path) -> None:
    paper = tiny_qwen.think(QUERIES, **SAMPLING)
    assert np.array_equal(tiny_qwen.think(QUERIES, **SAMPLING, plain_weight=0.0).pooled, paper.pooled)
    model = copy.deepcopy(tiny_qwen)
    model.settings.think = ThinkConfig(plain_weight=0.4)
    model.save_pretrained(tmp_path / "m")
    loaded = O1Embedder.from_pretrained(tmp_path / "m", device="cpu", dtype="float32")
    assert loaded.settings.think.plain_weight == 0.4
    expected, _ = _expected(loaded, 0.4)
    np.testing.assert_allclose(loaded.think(QUERIES, **SAMPLING).pooled, expected, atol=1e-5)
    np.testing.assert_allclose(loaded.encode_queries(QUERIES, **SAMPLING), expected, atol=1e-5)
    # an explicit 0 overrides the saved weight
    np.testing.assert_allclose(loaded.encode_queries(QUERIES, **SAMPLING, plain_weight=0.0), paper.pooled, atol=1e-6)
    for bad in (-0.1, 1.0, "0.5", True):
        with pytest.raises(InputError, match="plain_weight"):
            ThinkConfig(plain_weight=bad).validate()


def test_blend_without_normalisation_is_the_weighted_sum() -> None:
    pooled, plain = np.array([[2.0, 0.0]], np.float32), np.array([[0.0, 4.0]], np.float32)
    np.testing.assert_allclose(blend_plain(pooled, plain, 0.25, normalize=False), [[1.5, 1.0]])
    np.testing.assert_allclose(blend_plain(pooled, plain, 0.25), [[0.8320503, 0.5547002]], atol=1e-6)
    assert blend_plain(pooled, plain, 0.0) is pooled


def test_the_thought_cache_is_shared_across_weights_and_gives_the_fresh_vector(tiny_qwen: O1Embedder,
                                                                             tmp_path) -> None:
    from o1embedder.retrieval.encoders import O1Encoder

    options = {**SAMPLING}
    fresh = O1Encoder(tiny_qwen, think_options={**options, "plain_weight": 0.5}, cache_dir=tmp_path)
    first = fresh.encode_queries(QUERIES).vectors
    assert fresh.last_stats == {"generated": 4, "cached": 0}
    again = O1Encoder(tiny_qwen, think_options={**options, "plain_weight": 0.5}, cache_dir=tmp_path)
    np.testing.assert_allclose(again.encode_queries(QUERIES).vectors, first, atol=1e-4)
    assert again.last_stats == {"generated": 0, "cached": 4}
    other = O1Encoder(tiny_qwen, think_options=options, cache_dir=tmp_path)       # the model's weight, 0
    np.testing.assert_allclose(other.encode_queries(QUERIES).vectors, tiny_qwen.think(QUERIES, **SAMPLING).pooled,
                               atol=1e-4)
    assert other.last_stats == {"generated": 0, "cached": 4}                  # same thoughts, other mix
    expected, _ = _expected(tiny_qwen, 0.5)
    np.testing.assert_allclose(first, expected, atol=1e-5)


def test_the_weight_reaches_the_command_line(tiny_qwen_path, capsys) -> None:
    import yaml

    from o1embedder.cli import main

    assert main(["eval", "--model", "m", "--data", "d", "--plain-weight", "0.5", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["think"]["plain_weight"] == 0.5
    # the thought cache ignores the weight; what an eval report records of its generation does not
    from o1embedder.retrieval.encoders import O1Encoder

    encoder = O1Encoder(O1Embedder.from_pretrained(tiny_qwen_path), think_options={"plain_weight": 0.5})
    assert encoder.generation_settings()["plain_weight"] == 0.5
    with pytest.raises(SystemExit) as exc:                # think writes thoughts, it makes no vector
        main(["think", "--model", str(tiny_qwen_path), "--plain-weight", "0.5", "why"])
    assert exc.value.code == 2
    assert "--plain-weight" in capsys.readouterr().err


def test_the_server_serves_the_weight_it_was_started_with(tiny_qwen_path) -> None:
    """``o1emb serve --plain-weight`` sets the served model's weight (load_components' overrides):
    ``/v1/embeddings`` for a thinking query answers the blend."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from o1embedder.serving import ServeSettings, create_app
    from o1embedder.serving.server import load_components

    parts = load_components(str(tiny_qwen_path), None, device="cpu", dtype="float32",
                            think_overrides={"plain_weight": 0.5})
    assert parts.model.settings.think.plain_weight == 0.5
    app = create_app(parts.model, settings=ServeSettings(model_id="tiny", query_cache=0))
    with TestClient(app) as client:
        answer = client.post("/v1/embeddings", json={"input": QUERIES, "input_type": "query", **SAMPLING})
    assert answer.status_code == 200, answer.text
    served = np.array([row["embedding"] for row in answer.json()["data"]])
    expected, _ = _expected(parts.model, 0.5)
    np.testing.assert_allclose(served, expected, atol=1e-5)


class _Engine:
    """A thought engine (``o1embedder.engines.ThoughtEngine``) writing fixed token ids: 3-6 tokens, then EOS."""

    identity = "fixed"

    def __init__(self, eos: int) -> None:
        self.eos = eos

    def write(self, prompts: list[list[int]], budgets: list[int], cfg, keys: list[int]) -> list[list[int]]:
        return [[10 + (k + j) % 50 for j in range(3 + k % 4)] for k in keys]


@pytest.mark.parametrize("source", ["static", "generic", "engine"])
def test_the_blend_is_the_same_whoever_writes_the_thoughts(tiny_llama: O1Embedder, source: str) -> None:
    model = copy.deepcopy(tiny_llama)
    if source == "engine":
        model.engine = _Engine(model.template.eos_id)
    else:
        model.decode = source
    found = model.think(QUERIES, **SAMPLING, plain_weight=0.3)
    if source == "engine":
        assert found.ids == [[[10 + (k + j) % 50 for j in range(3 + k % 4)] for k in keys] for keys in
                             O1Embedder.sample_keys(QUERIES, 2, 3).view(len(QUERIES), 2).tolist()]
    paper = model.encode_queries(QUERIES, thoughts=found.ids, plain_weight=0.0)
    plain = model.encode_queries(QUERIES, think=False)
    np.testing.assert_allclose(found.pooled, blend_plain(paper, plain, 0.3), atol=1e-4)


def test_every_command_that_embeds_queries_takes_the_weight(capsys) -> None:
    """``--plain-weight`` as ``search`` and ``serve`` parse it reaches the thinking overrides they load the
    model with; ``mine`` keeps it in its think section (``eval``: the test above)."""
    import yaml

    from o1embedder.cli import build_parser, main
    from o1embedder.cli._common import generation_overrides

    parser = build_parser()
    for argv in (["search", "--index", "i", "q", "--plain-weight", "0.5"],
                 ["serve", "--model", "m", "--plain-weight", "0.5"]):
        assert generation_overrides(parser.parse_args(argv))["plain_weight"] == 0.5, argv[0]
    assert main(["mine", "--data", "d", "--out", "o.jsonl", "--retriever", "m", "--plain-weight", "0.5",
                 "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["think"]["plain_weight"] == 0.5
