"""``o1emb pipeline RECIPE.yaml`` end to end on two small BEIR folders made here (named ``alpha`` and
``beta``, not the shipped recipe's datasets), with a tiny random model as base and expert: every stage
runs, the report has every system, a second run is served from the cache, and a changed setting
recomputes exactly the stages that depend on it (their provenance records), while a run killed
midway resumes; the optional RL stage adds its model and systems on top of the cached stages. (The
plan, the recipe's errors, ``fetch`` and torchrun: test_pipeline_recipes.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_RECIPE

from o1embedder import provenance, resume
from o1embedder.cli import main
from o1embedder.training import thought_lm_loss


@pytest.fixture(scope="module")
def recipe(tiny_beir: Path, tiny_llama_path: Path, minilm_path: Path,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The tiny recipe, run once for the module: its output folder and its command line."""
    folder = tmp_path_factory.mktemp("recipe")
    path = folder / "tiny.yaml"
    path.write_text(TINY_RECIPE.format(out=folder / "out", data=tiny_beir, model=tiny_llama_path, minilm=minilm_path))
    args = ["--log-level", "WARNING", "pipeline", str(path)]
    assert main(args) == 0
    return folder / "out", args


def _records(out: Path) -> dict[str, tuple[str, int]]:
    """Every stage's provenance record under ``out``: output (relative) -> (fingerprint, mtime of the
    record). The records ``o1emb train`` / ``o1emb rl`` keep inside a model folder (``run``, see
    :mod:`o1embedder.resume`) belong to the training stage's output, not to a stage of the recipe."""
    found = {}
    for path in out.rglob("*" + provenance.SUFFIX):
        if path.name == resume.NAME + provenance.SUFFIX:
            continue
        name = path.relative_to(out).as_posix().removesuffix(provenance.SUFFIX)
        found[name] = (json.loads(path.read_text())["fingerprint"], path.stat().st_mtime_ns)
    return found


def _written(before: dict[str, tuple[str, int]], out: Path) -> set[str]:
    """The outputs whose record was (re)written since ``before``: what the last run recomputed."""
    return {name for name, stamp in _records(out).items() if before.get(name) != stamp}


def test_recipe_runs_end_to_end_and_a_second_run_is_cached(recipe: tuple[Path, list[str]]) -> None:
    out, args = recipe
    report = json.loads((out / "report.json").read_text())
    systems = {(r["dataset"], r["system"], r["expert"]) for r in report["results"]}
    for dataset in ("alpha", "beta"):
        for system in ("bm25", "minilm", "base", "contrastive-only"):
            assert (dataset, system, "-") in systems
        for expert in ("paper", "informed"):
            for system in ("o1-no-think", "o1-think-k1", "o1-think-k2", "contrastive-only+o1-thoughts"):
                assert (dataset, system, expert) in systems
        assert (dataset, "contrastive-only+thoughts", "paper") in systems
    assert len(report["results"]) == 2 * 13
    assert all(0 <= r["ndcg@10"] <= 1 and 0 <= r["recall@100"] <= 1 for r in report["results"])
    assert {(r["dataset"], r["split"]) for r in report["validation_results"]} == {("alpha", "validation"),
                                                                                 ("beta", "validation")}
    assert report["goals"] and {g["think"] for g in report["goals"]} == {"o1-think-k2"}
    assert report["latency_ms"]["per_query_ms"]["think-k2"] > 0 and report["latency_ms"]["dataset"] == "alpha"
    rows = [json.loads(line) for line in (out / "data" / "train.jsonl").read_text().splitlines()]
    assert {r["id"].split(":")[0] for r in rows} == {"alpha", "beta"} and len(rows) == 14 - 3 + 8
    held = json.loads((out / "data" / "validation.json").read_text())
    assert not set(held["alpha"]["queries"]) & {r["id"].split(":", 1)[1] for r in rows if r["id"].startswith("alpha")}
    assert held["beta"]["source"].startswith("dev")
    for name in ("contrastive-only", "o1-paper", "o1-informed"):
        assert (out / "models" / name / "final" / "o1embedder.json").is_file()
    assert "tiny recipe" in (out / "report.md").read_text() and (out / "report.png").stat().st_size > 1000
    o1 = next(r for r in report["results"] if r["system"] == "o1-think-k2" and r["expert"] == "paper")
    assert o1["provenance"]["settings"]["training.steps"] == 2
    assert o1["provenance"]["model"] == provenance.read(out / "models" / "o1-paper")["outputs"]["fingerprint"]
    assert "training.steps" not in next(r for r in report["results"] if r["system"] == "bm25")["provenance"]["settings"]
    before = _records(out)
    (out / "report.json").unlink()
    assert main(args) == 0
    again = json.loads((out / "report.json").read_text())
    assert again["results"] == report["results"] and _written(before, out) == set()




def test_a_validation_only_run_reuses_every_stage_and_times_nothing(recipe: tuple[Path, list[str]],
                                                                     tmp_path: Path) -> None:
    """``--set 'splits=[validation]'`` (how settings are chosen, scripts/real_variants.py): the latency
    stage times test queries, so it is skipped, not crashed on the unresolved test folders."""
    out, args = recipe
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    before = _records(copy)
    assert main([*args, "--set", f"out={copy}", "--set", "splits=[validation]"]) == 0
    report = json.loads((copy / "report.json").read_text())
    assert report["results"] == [] and report["validation_results"] and report["latency_ms"] is None
    assert _written(before, copy) == set()                        # every stage reused, by its record

def test_the_rl_stage_adds_its_model_and_systems_and_its_settings_redo_only_them(
        recipe: tuple[Path, list[str]]) -> None:
    out, args = recipe
    assert main(args) == 0                                   # the fixture's run (from the cache)
    report = json.loads((out / "report.json").read_text())
    # the optional RL stage on top of the cached stages: one more model, its systems, its effect
    rl = [*args, "--set", "rl.enabled=true", "--set", "rl.steps=2", "--set", "rl.rows_per_step=2",
          "--set", "rl.samples=2"]
    assert main(rl) == 0
    with_rl = json.loads((out / "report.json").read_text())
    assert (out / "models" / "o1-rl-paper" / "final" / "o1embedder.json").is_file()
    for split in ("results", "validation_results"):
        found = {(r["dataset"], r["system"]) for r in with_rl[split] if r["expert"] == "paper"}
        for dataset in DS:
            assert {(dataset, s) for s in ("o1-rl-no-think", "o1-rl-think-k1", "o1-rl-think-k2")} <= found
        assert not {r["system"] for r in with_rl[split] if r["expert"] == "informed"} & {"o1-rl-no-think"}
    assert len(with_rl["rl_effect"]) == 2 * 3 and with_rl["rl"]["steps"] == 2
    assert [r for r in with_rl["results"] if not r["system"].startswith("o1-rl")] == report["results"]
    assert "The RL stage" in (out / "report.md").read_text()
    # another RL setting: the RL folder is removed and RL rerun (o1emb rl refuses to resume another
    # run's checkpoints), with its indexes, thoughts and results; nothing else
    before = _records(out)
    assert main([*rl, "--set", "rl.kl_coef=0.1"]) == 0
    redone = _written(before, out)
    assert "models/o1-rl-paper" in redone and redone == {n for n in redone if "o1-rl-" in n}
    assert {n for n in redone if n.startswith("results/")} == {
        f"results/{s}/{d}/o1-rl-{p}__paper.json" for s in ("test", "validation") for d in DS
        for p in ("no-think", "think-k1", "think-k2")}
    assert provenance.read(out / "models" / "o1-rl-paper")["settings"]["rl.kl_coef"] == 0.1
    assert json.loads((out / "report.json").read_text())["recipe"]["rl"]["kl_coef"] == 0.1

DS = ("alpha", "beta")
TRAINED = ("contrastive-only", "o1-paper", "o1-informed")
O1 = ("o1-paper", "o1-informed")
THINKING = ("o1-think-k1__paper", "o1-think-k2__paper", "o1-think-k1__informed", "o1-think-k2__informed",
            "contrastive-only+o1-thoughts__paper", "contrastive-only+o1-thoughts__informed")
O1_ROWS = (*THINKING, "o1-no-think__paper", "o1-no-think__informed")
PLAIN_ROWS = ("contrastive-only__-", "contrastive-only+thoughts__paper")


def _results(*rows: str) -> set[str]:
    return {f"results/{s}/{d}/{row}.json" for s in ("test", "validation") for d in DS for row in rows}


def _indexes(*models: str) -> set[str]:
    return {f"indexes/{d}/{m}" for d in DS for m in models}


THOUGHTS = {f"thoughts/{m}-{d}-{s}.npy" for m in O1 for d in DS for s in ("test", "validation")}
EXPECTED = {   # the setting changed -> every output it must recompute (all others are reused)
    "thinking.temperature=1.0": THOUGHTS | _results(*THINKING) | {"latency.json"},
    "thinking.n_thoughts=3": THOUGHTS | _results(*THINKING) | {"latency.json"},
    "training.passage_tokens=32": {f"models/{m}" for m in TRAINED} | _indexes("base", *TRAINED) | THOUGHTS
    | _results(*O1_ROWS, *PLAIN_ROWS, "base__-") | {"latency.json"},
    "training.steps=3": {f"models/{m}" for m in TRAINED} | _indexes(*TRAINED) | THOUGHTS
    | _results(*O1_ROWS, *PLAIN_ROWS) | {"latency.json"},
    # held-out thoughts from validation queries (the default): their rows, each expert's thoughts for them
    # and the scores; no model is retrained, since no training row is removed
    "training.heldout_thoughts=6": {"data/heldout-rows.jsonl"} | {f"heldout/{m}.json" for m in O1}
    | {f"{e}/heldout-{f}" for e in ("paper", "informed") for f in ("candidates.jsonl", "train-all.jsonl")},
    "training.heldout_from=train": {f"models/{m}" for m in TRAINED} | _indexes(*TRAINED) | THOUGHTS
    | _results(*O1_ROWS, *PLAIN_ROWS) | {"latency.json"},
    "synthesis.k=3": {f"{e}/{f}" for e in ("paper", "informed") for f in ("candidates.jsonl", "train-all.jsonl")}
    | {f"models/{m}" for m in O1} | _indexes(*O1) | THOUGHTS | _results(*O1_ROWS) | {"latency.json"},
    # early exit through the recipe (docs/real.md: --set thinking.exit_eps=...): checks every 2 tokens, 1 in a row
    "thinking.exit_every=2": THOUGHTS | _results(*THINKING) | {"latency.json"},
    "thinking.exit_patience=1": THOUGHTS | _results(*THINKING) | {"latency.json"},
    "thinking.exit_eps=0.9": THOUGHTS | _results(*THINKING) | {"latency.json"},
    # the no-thinking vector mixed in: every row that embeds with thoughts, never the thoughts themselves
    "thinking.plain_weight=0.5": _results(*THINKING, "contrastive-only+thoughts__paper") | {"latency.json"},
}


def test_a_changed_setting_recomputes_what_depends_on_it_and_nothing_else(
        recipe: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    out, args = recipe
    command = list(args)
    for change, expected in EXPECTED.items():
        before = _records(out)
        earlier = {k: v["mean_thought_tokens"]
                   for k, v in json.loads((out / "report.json").read_text())["thought_tokens"].items()}
        fingerprints = {m: provenance.read(out / "models" / m)["outputs"]["fingerprint"] for m in TRAINED}
        command += ["--set", change]
        journal = _killed_in_synthesis(out, command, monkeypatch) if change.startswith("synthesis.k") else None
        assert main(command) == 0, change
        assert _written(before, out) == expected, change
        name, _, value = change.partition("=")
        report = json.loads((out / "report.json").read_text())
        section, key = name.split(".")
        assert str(report["recipe"][section][key]) == value
        now = {m: provenance.read(out / "models" / m)["outputs"]["fingerprint"] for m in TRAINED}
        retrained = {m for m in TRAINED if now[m] != fingerprints[m]}
        assert retrained == {"training.steps": set(TRAINED), "training.passage_tokens": set(TRAINED),
                             "training.heldout_from": set(TRAINED), "synthesis.k": set(O1)}.get(name, set())
        # a model records the rows held out of its training: none when they come from validation
        recorded = {"training.heldout_thoughts": ("training.heldout_thoughts", "0"),
                    "training.heldout_from": ("training.heldout_thoughts", "6")}.get(name, (name, value))
        for row in report["results"]:
            if row["system"].startswith("o1-think"):
                assert str(row["provenance"]["settings"][recorded[0]]) == recorded[1], (change, row)
        if journal is not None:                                  # resumed from the journal, not redone
            assert journal[0].stat().st_mtime_ns == journal[1]
        if name == "training.heldout_thoughts":                  # validation queries' thoughts, scored before and after
            _check_validation_heldout(out, report)
        if name == "training.heldout_from":                      # scored before and after, held out of training
            held = None
            for m in TRAINED:
                trained = {json.loads(x)["id"] for x in (out / "models" / m / "train-rows.jsonl").read_text().splitlines()}
                held = held or trained
                assert trained == held, m                        # the same rows held out of every model
                if m in O1:
                    path = out / "models" / m / "heldout-thoughts.jsonl"
                    scored = [json.loads(x)["id"] for x in path.read_text().splitlines()]
                    assert scored and not set(scored) & trained, m
                    lm = report["heldout_thought_lm"][m]
                    assert lm["before"] is not None and lm["after"] is not None, m
                    before, after = lm["before"]["thought_lm"], lm["after"]["thought_lm"]
                    # the heldout-lm stage's "before" (the base model, loaded alone) is the trainer's step 0
                    base = json.loads((out / "base.json").read_text())["model"]
                    t = report["recipe"]["training"]
                    alone = thought_lm_loss(base, path, max_query_tokens=t["query_tokens"],
                                            max_query_thought_tokens=t["query_thought_tokens"])
                    assert alone.loss == pytest.approx(before, rel=1e-4), m
                    assert f"| {m} | {before:.4f} | {after:.4f} |" in (out / "report.md").read_text(), m
        if name == "thinking.exit_eps":    # stopped at the second check (the first only records): 4 of 6 tokens
            tokens = {k: v["mean_thought_tokens"] for k, v in report["thought_tokens"].items()
                      if k.startswith(("o1-paper-", "o1-informed-"))}      # (not the RL test's models, if run)
            assert tokens and max(tokens.values()) <= 4 and sum(tokens.values()) < sum(earlier[k] for k in tokens), tokens
        if name == "training.passage_tokens":                    # the base model's index too
            manifest = json.loads((out / "indexes" / "alpha" / "base" / "manifest.json").read_text())
            assert manifest["encoder"]["max_length"] == 32
    assert np.load(out / "thoughts" / "o1-paper-alpha-test.npy").shape[1] == 3


def _check_validation_heldout(out: Path, report: dict) -> None:
    """The held-out rows are validation queries (none a training row), every expert wrote thoughts for
    them, and each O1 model's thought LM loss on them before (the base model) and after training is
    in heldout/, the report and its table."""
    validation = json.loads((out / "data" / "validation.json").read_text())
    rows = [json.loads(x) for x in (out / "data" / "heldout-rows.jsonl").read_text().splitlines()]
    trained = {json.loads(x)["id"] for x in (out / "data" / "train.jsonl").read_text().splitlines()}
    assert len(rows) == 6 and not {r["id"] for r in rows} & trained         # all 3 + 3 validation queries
    assert all(r["id"].split(":", 1)[1] in validation[r["id"].split(":")[0]]["queries"] and r["neg"] for r in rows)
    assert not (out / "models" / "o1-paper" / "train-rows.jsonl").exists()
    for m in O1:
        thoughts = [json.loads(x) for x in (out / m.removeprefix("o1-") / "heldout-train-all.jsonl").read_text().splitlines()]
        assert sorted(t["id"] for t in thoughts) == sorted(r["id"] for r in rows)
        scored = json.loads((out / "heldout" / f"{m}.json").read_text())
        assert scored["rows"] == sum(1 for t in thoughts if (t.get("thought") or "").strip()), m
        lm = report["heldout_thought_lm"][m]
        assert scored["rows"] > 0 and lm["source"] == "validation" and lm["rows"] == scored["rows"]
        before, after = scored["before"]["thought_lm"], scored["after"]["thought_lm"]
        assert before > 0 and after > 0 and lm["before"]["thought_lm"] == before
        assert f"| {m} | {before:.4f} | {after:.4f} | {scored['rows']} rows of validation queries |" \
            in (out / "report.md").read_text(), m


def _killed_in_synthesis(out: Path, command: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Path, int]:
    """Kill the run right after the paper expert's journal is written: its pending record keeps the
    new settings, so the next run (same settings) resumes the journal instead of redoing it."""
    import o1embedder.synthesis as synthesis

    original = synthesis.synthesize

    def killed(*args: object, **kwargs: object) -> None:
        original(*args, **kwargs)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(synthesis, "synthesize", killed)
        assert main(command) == 130
    record = provenance.read(out / "paper" / "candidates.jsonl")
    journal = out / "paper" / "synthesis.jsonl"
    assert record["complete"] is False and record["settings"]["synthesis.k"] == 3
    assert not (out / "paper" / "candidates.jsonl").exists() and journal.is_file()
    return journal, journal.stat().st_mtime_ns


AUTO_SYSTEMS = ("systems=[bm25, minilm, base, contrastive-only, contrastive-only+thoughts, contrastive-only+o1-thoughts, "
                "o1-no-think, o1-think-k1, o1-think-k2, o1-auto]")


def test_o1_auto_thinks_where_its_policy_says_and_reuses_every_other_stage(recipe: tuple[Path, list[str]]) -> None:
    """o1-auto on top of the cached stages: a policy per O1 model fitted on its own training rows, a share
    chosen on validation, each query answered exactly as o1-think-k2 or o1-no-think answers it, the curves'
    ends equal to those two rows, the oracle never below the policy; a changed policy setting redoes
    only the policy's stages, the o1-auto rows and latency."""
    out, args = recipe
    assert main(args) == 0
    before = _records(out)
    command = [*args, "--set", AUTO_SYSTEMS, "--set", "policy.shares=[0.0, 0.5, 1.0]"]
    assert main(command) == 0
    report = json.loads((out / "report.json").read_text())
    made = _written(before, out)
    assert made == {f"policies/{m}" for m in O1} | {f"policies/{m}.share.json" for m in O1} \
        | _results("o1-auto__paper", "o1-auto__informed") | {"latency.json"}, made
    for split in ("test", "validation"):
        for dataset in DS:
            for expert in ("paper", "informed"):
                rows = {r: json.loads((out / "results" / split / dataset / f"{r}__{expert}.json").read_text())
                        for r in ("o1-auto", "o1-no-think", "o1-think-k2")}
                extra = rows["o1-auto"]["extra"]
                thought = set(extra["thought_queries"])
                assert extra["think_share"] == pytest.approx(len(thought) / len(rows["o1-auto"]["per_query"]), abs=1e-4)
                for q, value in rows["o1-auto"]["per_query"].items():
                    source = rows["o1-think-k2"] if q in thought else rows["o1-no-think"]
                    assert value == pytest.approx(source["per_query"][q], abs=1e-6), (split, dataset, expert, q)
                curves = extra["curves"]
                assert curves["policy"][0]["ndcg@10"] == pytest.approx(rows["o1-no-think"]["metrics"]["ndcg@10"], abs=1e-6)
                assert curves["policy"][-1]["ndcg@10"] == pytest.approx(rows["o1-think-k2"]["metrics"]["ndcg@10"], abs=1e-6)
                for ours, best in zip(curves["policy"], curves["oracle"], strict=True):
                    assert best["ndcg@10"] >= ours["ndcg@10"] - 1e-9
    for m in O1:
        share = json.loads((out / "policies" / f"{m}.share.json").read_text())
        assert share["share"] in (0.0, 0.5, 1.0) and [r["share"] for r in share["table"]] == [0.0, 0.5, 1.0]
        best = max(r["ndcg@10"] for r in share["table"])
        assert next(r for r in share["table"] if r["share"] == share["share"])["ndcg@10"] == best
        assert (out / "policies" / m / "fit.json").is_file()
    assert len(report["auto"]) == 2 * 2 * 2 and "When to think: o1-auto" in (out / "report.md").read_text()
    assert report["latency_ms"]["mean_ms"]["auto"] > 0
    # a policy setting: the policies, their shares, the o1-auto rows and latency; nothing else
    before = _records(out)
    assert main([*command, "--set", "policy.l2=3.0"]) == 0
    assert _written(before, out) == made
