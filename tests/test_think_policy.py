"""The learned when-to-think policy of ``think="auto"`` (docs/retrieval.md, "Learned when-to-think policy").

Fitted on a tiny offline model from synthetic training rows: it saves and loads exactly (JSON +
safetensors, with the model), ``think_share`` makes exactly the calibrated share of the calibration
queries think, ``think_threshold`` thinks exactly where the predicted probability reaches it, auto mode
with a policy thinks exactly for the queries the policy picks (each getting the thinking or the
no-thinking answer) in the library, the CLI and the server, and a model without a policy keeps the
margin rule (tests/test_adaptive.py, tests/test_think_modes.py).
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from o1embedder.cli import main
from o1embedder.errors import InputError, ModelError
from o1embedder.model.policy import POLICY_FILE, POLICY_TENSORS, ThinkPolicy, feature_names
from o1embedder.retrieval.adaptive import AutoRule, auto_rule, should_think

WORDS = [f"w{i}" for i in range(120)]
K = 5
FLAGS = ["--no-progress", "--device", "cpu", "--dtype", "float32"]


def make_rows(n_docs: int = 40, n_rows: int = 40, seed: int = 0) -> tuple[dict[str, str], list[dict[str, Any]]]:
    rng = random.Random(seed)
    docs = {f"d{i}": " ".join(rng.choices(WORDS, k=16)) for i in range(n_docs)}
    ids = list(docs)
    rows = []
    for i in range(n_rows):
        d = rng.choice(ids)
        negs = rng.sample([x for x in ids if x != d], 3)
        rows.append({"id": f"r{i}", "query": " ".join(rng.sample(docs[d].split(), 5)), "pos": [docs[d]],
                     "neg": [docs[x] for x in negs]})
    return docs, rows


@pytest.fixture(scope="module")
def world(tiny_qwen_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A copy of the tiny model with a small saved ThinkConfig, rows, an index of their documents, and
    the policy fitted on them (all three feature groups) saved into the model folder."""
    from o1embedder.formats import write_beir, write_jsonl
    from o1embedder.model import O1Embedder, ThinkConfig
    from o1embedder.retrieval import build_index, load_index
    from o1embedder.retrieval.policy import fit_policy

    root = tmp_path_factory.mktemp("policy")
    base = O1Embedder.from_pretrained(tiny_qwen_path, device="cpu", dtype="float32")
    base.settings.think = ThinkConfig(n_thoughts=2, temperature=0.7, max_new_tokens=6)
    base.save_pretrained(root / "bare")                      # no policy: for the CLI's fit
    docs, rows = make_rows()
    write_jsonl(root / "rows.jsonl", rows)
    corpus = {i: {"title": "", "text": t} for i, t in docs.items()}
    build_index(str(root / "bare"), corpus, root / "idx", device="cpu", dtype="float32", show_progress=False)
    rng = random.Random(5)
    tests = {f"q{i}": rng.choice(list(docs)) for i in range(8)}
    write_beir(root / "beir", corpus, {q: " ".join(rng.sample(docs[d].split(), 4)) for q, d in tests.items()},
               {"test": {q: {d: 1} for q, d in tests.items()}})
    shutil.copytree(root / "bare", root / "model")
    fit = fit_policy(base, rows, calibration=0.25, sample=4, features="scores,eos,vector",
                     index=load_index(root / "idx"), cache_dir=root / "cache", batch_size=8)
    fit.policy.save(root / "model")
    model = O1Embedder.from_pretrained(root / "model", device="cpu", dtype="float32")
    return {"root": root, "rows": rows, "fit": fit, "model": model, "index": root / "idx", "cache": root / "cache",
            "calibration": [rows[i]["query"] for i in fit.calibration_rows]}


def hand_policy(calibration: list[float], groups: tuple[str, ...] = ("scores",), dim: int = 0) -> ThinkPolicy:
    names = feature_names(groups, dim)
    rng = np.random.default_rng(0)
    return ThinkPolicy(groups=groups, names=names, mean=rng.normal(size=len(names)), scale=rng.uniform(0.5, 2, len(names)),
                       weights=rng.normal(size=len(names)), bias=0.1, calibration=np.array(calibration),
                       model_fingerprint="abc", info={"fit": {"rows": 3}})


# -- the policy itself ---------------------------------------------------------------------------------

def test_a_policy_round_trips_exactly_through_json_and_safetensors(tmp_path: Path) -> None:
    policy = hand_policy([0.9, 0.1, 0.5, 0.3], groups=("scores", "eos", "vector"), dim=3)
    policy.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [POLICY_FILE, POLICY_TENSORS]
    meta = json.loads((tmp_path / POLICY_FILE).read_text())
    assert meta["features"] == ["top1", "margin", "mean10", "std10", "log_p_eos", "v0", "v1", "v2"]
    loaded = ThinkPolicy.load(tmp_path)
    assert loaded is not None and loaded.groups == policy.groups and loaded.names == policy.names
    for name in ("mean", "scale", "weights", "calibration"):
        assert np.array_equal(getattr(loaded, name), getattr(policy, name)), name
    assert loaded.bias == policy.bias and loaded.info == policy.info and loaded.model_fingerprint == "abc"
    x = np.random.default_rng(1).normal(size=(6, 8))
    assert np.array_equal(loaded.predict(x), policy.predict(x))
    assert np.array_equal(policy.predict(x[2:3]), policy.predict(x)[2:3])      # row by row: batch-independent
    assert ThinkPolicy.load(tmp_path / "nowhere") is None
    (tmp_path / POLICY_TENSORS).write_bytes((tmp_path / POLICY_TENSORS).read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ModelError, match="sha256"):
        ThinkPolicy.load(tmp_path)


def test_share_and_threshold_follow_the_knob_on_the_calibration_scores() -> None:
    calibration = [0.91, 0.13, 0.55, 0.42, 0.77, 0.08, 0.64, 0.29, 0.35, 0.5]
    policy = hand_policy(calibration)
    for share in (0.0, 0.1, 0.25, 0.3, 0.5, 0.75, 1.0):
        t = policy.threshold_for_share(share)
        assert sum(c >= t for c in calibration) == math.floor(share * 10 + 0.5), share
        assert policy.share_at(t) == pytest.approx(math.floor(share * 10 + 0.5) / 10)
    assert policy.threshold_for_share(0) == math.inf and policy.threshold_for_share(1) == -math.inf
    hits = [[0.9, 0.8, 0.1], [0.5, 0.49], [0.3]]
    probs = policy.predict_queries(None, hits)
    for t in (0.0, float(probs[1]), 0.5, 1.0):
        rule = auto_rule(policy, think_threshold=t)
        assert rule.decide(hits) == [bool(p >= t) for p in probs]
    assert auto_rule(policy).threshold == 0.5 and auto_rule(policy).policy is policy     # default: the policy
    assert auto_rule(policy, auto_margin=0.2) == AutoRule(margin=0.2)                  # a margin: the margin rule
    assert auto_rule(None) == AutoRule(margin=0.05)                                     # no policy: unchanged
    assert auto_rule(None).decide(hits) == [should_think(h, 0.05) for h in hits] == [False, True, False]
    for bad, match in (({"think_share": 0.3}, "fit-policy"), ({"think_threshold": 0.5}, "fit-policy")):
        with pytest.raises(InputError, match=match):
            auto_rule(None, **bad)
    for bad in ({"think_share": 1.5}, {"think_threshold": -0.1}, {"think_share": True},
                {"think_share": 0.3, "auto_margin": 0.1}, {"think_share": 0.3, "think_threshold": 0.5}):
        with pytest.raises(InputError):
            auto_rule(policy, **bad)


def test_the_predictor_is_scikit_learns_logistic_regression() -> None:
    from o1embedder.model.logistic import fit_logistic, rank_auc

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12))
    y = (x[:, 0] - x[:, 3] + rng.normal(size=200) > 0).astype(float)
    weights, bias, info = fit_logistic(x, y, l2=1.0)
    assert info["converged"]
    assert rank_auc(np.array([0.1, 0.4, 0.4, 0.9]), np.array([0, 1, 0, 1])) == pytest.approx(0.875)
    assert rank_auc(np.array([0.1, 0.2]), np.array([1, 1])) is None
    linear_model = pytest.importorskip("sklearn.linear_model")
    reference = linear_model.LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000).fit(x, y)
    assert np.abs(reference.coef_[0] - weights).max() < 1e-6 and abs(reference.intercept_[0] - bias) < 1e-6


def test_gains_and_the_curves_on_hand_made_numbers() -> None:
    from o1embedder.evaluation.adaptive import policy_tradeoff
    from o1embedder.retrieval.policy import gain_curve, label_gains

    docs = np.eye(3)
    plain, thought = np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0]])
    gains = label_gains(plain, thought, docs, [([1], [0])], sample=1, seed=0, temperature=0.5)
    s_think, s_plain = np.array([2.0, 0.0, 0.0]), np.array([0.0, 2.0, 0.0])     # positive, negative, the sample
    expected = (s_think[0] - np.log(np.exp(s_think).sum())) - (s_plain[0] - np.log(np.exp(s_plain).sum()))
    assert gains[0] == pytest.approx(expected) and gains[0] > 0
    curve = gain_curve(np.array([0.9, 0.1, 0.5]), np.array([1.0, -2.0, 0.5]), shares=(0, 1 / 3, 2 / 3, 1))
    assert [p["thought"] for p in curve] == [0, 1, 2, 3]
    assert [p["mean_gain"] for p in curve] == pytest.approx([0, 1 / 3, 0.5, -0.5 / 3])
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}}
    plain_run = {"q1": {"a": 0.9, "x": 0.1}, "q2": {"x": 0.6, "b": 0.55}, "q3": {"x": 0.5, "c": 0.2}}
    think_run = {"q1": {"x": 0.9, "a": 0.1}, "q2": {"b": 0.6, "x": 0.5}, "q3": {"c": 0.5, "x": 0.2}}
    found = policy_tradeoff(qrels, think_run, plain_run, {"q1": 0.1, "q2": 0.8, "q3": 0.6},
                            policy=hand_policy([0.8, 0.6, 0.1]), shares=(1 / 3, 2 / 3))
    assert [p["thought"] for p in found["curve"]] == [0, 1, 2, 3]      # q2, then q3, then q1 think
    assert found["curve"][2]["ndcg@10"] == pytest.approx(1.0) and found["within_0.005"]["thought"] == 1
    assert [(p["think_share"], p["thought"]) for p in found["calibrated"]] == [(1 / 3, 1), (2 / 3, 2)]


# -- fitted on a tiny model ------------------------------------------------------------------------------

def test_the_fit_reports_its_figures_and_is_deterministic(world: dict[str, Any]) -> None:
    from o1embedder.retrieval import load_index
    from o1embedder.retrieval.policy import fit_policy

    fit = world["fit"]
    figures, policy = fit.figures, fit.policy
    assert figures["rows"] == 40 and figures["calibration_rows"] == 10 == len(policy.calibration)
    assert 0 < figures["labels"]["thinking_helps"] < 40 and figures["labels"]["thinking_helps"] == int((fit.gains > 0).sum())
    assert figures["auc"]["calibration"] is None or 0 <= figures["auc"]["calibration"] <= 1
    curve = figures["curve"]
    assert [p["share"] for p in curve] == pytest.approx([i / 10 for i in range(11)])
    assert curve[0]["thought"] == 0 and curve[-1]["thought"] == 10
    assert curve[-1]["mean_gain"] == pytest.approx(fit.gains[fit.calibration_rows].mean())
    assert policy.groups == ("scores", "eos", "vector") and policy.dim == 64 and policy.needs_eos
    assert policy.info["labels"]["think"]["n_thoughts"] == 2 and policy.info["fit"] == figures
    again = fit_policy(world["model"], world["rows"], calibration=0.25, sample=4, features=["vector", "eos", "scores"],
                       index=load_index(world["index"]), cache_dir=False, batch_size=8)   # thinks afresh
    assert np.array_equal(again.gains, fit.gains) and again.calibration_rows == fit.calibration_rows
    for name in ("mean", "scale", "weights", "calibration"):
        assert np.array_equal(getattr(again.policy, name), getattr(policy, name)), name


def test_the_model_loads_and_saves_its_policy(world: dict[str, Any], tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    import torch

    from o1embedder.model import O1Embedder

    model, policy = world["model"], world["fit"].policy
    assert model.think_policy is not None and np.array_equal(model.think_policy.weights, policy.weights)
    assert np.array_equal(model.think_policy.calibration, policy.calibration)
    model.save_pretrained(tmp_path / "copy")
    copy = O1Embedder.from_pretrained(tmp_path / "copy", device="cpu", dtype="float32")
    assert np.array_equal(copy.think_policy.mean, policy.mean) and copy.think_policy.bias == policy.bias
    with torch.no_grad():                               # other weights: the policy is not theirs
        next(copy.model.parameters()).add_(0.5)
    with caplog.at_level(logging.WARNING, logger="o1embedder"):
        copy.save_pretrained(tmp_path / "trained")
    assert not (tmp_path / "trained" / POLICY_FILE).exists() and "fitted for other weights" in caplog.text
    shutil.copy(tmp_path / "copy" / POLICY_FILE, tmp_path / "trained")
    shutil.copy(tmp_path / "copy" / POLICY_TENSORS, tmp_path / "trained")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="o1embedder"):
        stale = O1Embedder.from_pretrained(tmp_path / "trained", device="cpu", dtype="float32")
    assert stale.think_policy is None and "ignored" in caplog.text


def test_auto_with_a_policy_thinks_exactly_for_the_queries_it_picks(world: dict[str, Any]) -> None:
    from o1embedder.retrieval import open_retriever

    queries, policy = world["calibration"], world["fit"].policy
    retriever = open_retriever(world["index"], model=str(world["root"] / "model"), cache_dir=world["cache"],
                               device="cpu", dtype="float32")
    scores = retriever.think_scores(queries, batch_size=8)
    assert np.sort(scores)[::-1] == pytest.approx(policy.calibration, abs=1e-6)       # the calibration queries
    think = retriever.search(queries, K, think=True, batch_size=8)
    plain = retriever.search(queries, K, think=False, batch_size=8)
    for knob in ({"think_share": 0.0}, {"think_share": 0.3}, {"think_share": 0.5}, {"think_share": 1.0},
                 {"think_threshold": 0.5}, {}):
        results = retriever.search(queries, K, think="auto", batch_size=8, **knob)
        threshold = policy.threshold_for_share(knob["think_share"]) if "think_share" in knob else 0.5
        assert [r.thought for r in results] == [bool(s >= threshold) for s in scores], knob
        if "think_share" in knob:                       # exactly the calibrated share thinks
            assert sum(r.thought for r in results) == math.floor(knob["think_share"] * len(queries) + 0.5)
        for r, t, p in zip(results, think, plain, strict=True):
            expected = t if r.thought else p
            assert [d for d, _ in r.hits] == [d for d, _ in expected.hits] and r.thoughts == expected.thoughts
    margin = retriever.search(queries, K, think="auto", auto_margin=math.inf, batch_size=8)
    assert all(r.thought for r in margin)               # an explicit margin: the margin rule
    with pytest.raises(InputError, match="one of"):
        retriever.search(queries, K, think="auto", think_share=0.3, auto_margin=0.1)


def test_without_a_policy_the_knobs_are_refused(world: dict[str, Any]) -> None:
    from o1embedder.retrieval import open_retriever

    retriever = open_retriever(world["index"], cache_dir=False, device="cpu", dtype="float32")   # "bare": none
    assert retriever.encoder.model.think_policy is None and retriever.encoder.auto_margin == 0.05
    for knob in ({"think_share": 0.3}, {"think_threshold": 0.5}):
        with pytest.raises(InputError, match="fit-policy"):
            retriever.search(["w1 w2"], K, think="auto", **knob)
    with pytest.raises(InputError, match="fit-policy"):
        retriever.think_scores(["w1 w2"])


def test_server_search_with_the_policy(world: dict[str, Any], tiny_qwen) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from o1embedder.retrieval import load_index, open_retriever
    from o1embedder.serving import ServeSettings, create_app

    queries, policy = world["calibration"], world["fit"].policy
    retriever = open_retriever(world["index"], model=str(world["root"] / "model"), cache_dir=False,
                               device="cpu", dtype="float32")
    scores = retriever.think_scores(queries)
    threshold = policy.threshold_for_share(0.3)
    app = create_app(world["model"], index=load_index(world["index"]), settings=ServeSettings(model_id="tiny"))
    with TestClient(app) as client:
        flags = []
        for query in queries:
            answer = client.post("/v1/search", json={"query": query, "k": K, "think": "auto", "think_share": 0.3})
            assert answer.status_code == 200, answer.text
            flags.append(answer.json()["thought"])
        assert flags == [bool(s >= threshold) for s in scores] and sum(flags) == 3
        body = {"query": queries[0], "k": K}
        for bad, param in (({"think": "auto", "think_share": 1.5}, "think_share"),
                           ({"think": True, "think_share": 0.3}, "think_share"),
                           ({"think": "auto", "think_threshold": 0.5, "auto_margin": 0.1}, "think_threshold")):
            answer = client.post("/v1/search", json={**body, **bad})
            assert answer.status_code == 422 and param in answer.text, (bad, answer.text)
    bare = create_app(tiny_qwen, index=load_index(world["index"]), settings=ServeSettings(model_id="tiny"))
    with TestClient(bare) as client:
        answer = client.post("/v1/search", json={**body, "think": "auto", "think_share": 0.3})
        assert answer.status_code == 422 and "fit-policy" in answer.json()["error"]["message"]


# -- the command line ------------------------------------------------------------------------------------

def cli(capsys: pytest.CaptureFixture, *argv: Any) -> tuple[int, str, str]:
    rc = main(["--log-level", "ERROR", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_fit_policy_then_search_and_eval_with_it(world: dict[str, Any], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    root = world["root"]
    rc, out, err = cli(capsys, "fit-policy", "--model", root / "bare", "--data", root / "rows.jsonl",
                       "--out", tmp_path / "fitted", "--calibration", "0.25", "--sample", "4", "--features",
                       "scores,eos,vector", "--index", world["index"], "--cache", world["cache"], "--batch-size", 8,
                       *FLAGS)
    assert rc == 0, err
    assert "calibration AUC" in out and "share-vs-gain" in out and "thinking helps" in out
    assert not (root / "bare" / POLICY_FILE).exists()                 # --out: a copy got it
    saved = ThinkPolicy.load(tmp_path / "fitted")
    assert saved is not None and np.allclose(saved.weights, world["fit"].policy.weights, atol=1e-8)
    assert (tmp_path / "fitted" / "o1embedder.json").is_file()
    queries = world["calibration"][:4]
    rc, out, err = cli(capsys, "search", "--index", world["index"], "--model", tmp_path / "fitted", *queries,
                       "--k", K, "--json", "--auto-think", "--think-share", "0.5", "--cache", world["cache"], *FLAGS)
    assert rc == 0, err
    threshold = saved.threshold_for_share(0.5)
    from o1embedder.retrieval import open_retriever

    scores = open_retriever(world["index"], model=str(tmp_path / "fitted"), cache_dir=False, device="cpu",
                            dtype="float32").think_scores(queries)
    assert [json.loads(line)["thought"] for line in out.splitlines()] == [bool(s >= threshold) for s in scores]
    capsys.readouterr()
    for argv in (["search", "--index", world["index"], "q", "--think-share", "0.5"],
                 ["search", "--index", world["index"], "q", "--auto-think", "--think-share", "0.5",
                  "--think-threshold", "0.2"],
                 ["eval", "--model", root / "bare", "--data", root / "beir", "--think-share", "0.3"],
                 ["fit-policy", "--model", root / "bare", "--data", root / "rows.jsonl", "--calibration", "1.5",
                  "--no-cache", *FLAGS]):
        rc, _, err = cli(capsys, *argv)
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    report = tmp_path / "r.json"
    rc, _, err = cli(capsys, "eval", "--model", tmp_path / "fitted", "--data", root / "beir", "--index",
                     world["index"], "--k-values", "1,10", "--ablation", "--out", report, "--cache", world["cache"],
                     *FLAGS)
    assert rc == 0, err
    policy_curve = json.loads(report.read_text())["adaptive"]["policy"]
    assert policy_curve["curve"][0]["thought"] == 0 and policy_curve["curve"][-1]["thought"] == 8
    assert [p["think_share"] for p in policy_curve["calibrated"]][:2] == pytest.approx([0.1, 0.2])
    rc, _, err = cli(capsys, "eval", "--model", tmp_path / "fitted", "--data", root / "beir", "--index",
                     world["index"], "--k-values", "1,10", "--auto-think", "--think-threshold", "0.5", "--out", report,
                     "--cache", world["cache"], *FLAGS)
    assert rc == 0, err
    stats = json.loads(report.read_text())["stats"]
    assert stats["auto_rule"]["rule"] == "policy" and stats["auto_rule"]["think_threshold"] == 0.5


def test_shares_calibrated_on_given_queries_are_their_shares(world: dict[str, Any], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``fit-policy --calibrate-on``: the same fit, its shares calibrated on the given queries' own
    no-thinking pass, so exactly round(share x n) of those queries think at every share."""
    from o1embedder.cli.fit_policy import read_queries
    from o1embedder.formats import read_beir_queries
    from o1embedder.retrieval import open_retriever

    root = world["root"]
    queries = list(read_beir_queries(root / "beir" / "queries.jsonl").values())
    rc, out, err = cli(capsys, "fit-policy", "--model", root / "bare", "--data", root / "rows.jsonl",
                       "--out", tmp_path / "fitted", "--calibration", "0.25", "--sample", "4", "--features",
                       "scores,eos,vector", "--index", world["index"], "--cache", world["cache"], "--batch-size", 8,
                       "--calibrate-on", root / "beir", *FLAGS)
    assert rc == 0, err
    assert f"calibrated on {len(queries)} given queries" in out
    saved = ThinkPolicy.load(tmp_path / "fitted")
    assert saved is not None and np.allclose(saved.weights, world["fit"].policy.weights, atol=1e-8)
    assert saved.info["calibrated_on"] == {"kind": "given queries", "queries": len(queries)}
    retriever = open_retriever(world["index"], model=str(tmp_path / "fitted"), cache_dir=world["cache"],
                               device="cpu", dtype="float32")
    scores = retriever.think_scores(queries, batch_size=8)
    assert np.sort(scores)[::-1] == pytest.approx(saved.calibration, abs=1e-6)
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):
        results = retriever.search(queries, K, think="auto", think_share=share, batch_size=8)
        assert sum(r.thought for r in results) == math.floor(share * len(queries) + 0.5), share
    text = tmp_path / "queries.txt"
    text.write_text("\n".join(queries) + "\n\n", encoding="utf-8")
    assert read_queries(str(text)) == queries
    capsys.readouterr()
    for argv in (["--calibrate-on", root / "beir"], ["--index", world["index"], "--calibrate-on", tmp_path / "none"]):
        rc, _, err = cli(capsys, "fit-policy", "--model", root / "bare", "--data", root / "rows.jsonl", "--out",
                         tmp_path / "x", "--no-cache", *argv, *FLAGS)
        assert rc == 2 and len(err.strip().splitlines()) == 1 and "--calibrate-on" in err, err
    from o1embedder.retrieval.policy import calibrate_policy

    with pytest.raises(InputError, match="at least 2 queries"):
        calibrate_policy(world["model"], queries[:1], None)
    from o1embedder.retrieval import load_index
    from o1embedder.retrieval.policy import fit_policy

    def no_work(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the calibration queries were checked after the work began")

    monkeypatch.setattr(world["model"], "encode_corpus", no_work)          # the fit's first step
    with pytest.raises(InputError, match="at least 2 queries"):
        fit_policy(world["model"], world["rows"], index=load_index(world["index"]), calibrate_on=queries[:1],
                   cache_dir=False)
