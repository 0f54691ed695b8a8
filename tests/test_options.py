"""One configuration style for every command (``o1embedder.options``): ``--config FILE``, flags of the
same names, ``--set KEY=VALUE`` (nested keys too) and ``--print-config`` on train, rl, synthesize,
refine, mine, index and eval; every setting shared by several commands has one name, type and set
of choices; and the mechanism itself (coercion, files, ``--set``, required settings)."""

from __future__ import annotations

import argparse
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from o1embedder import options
from o1embedder.cli import main
from o1embedder.cli._common import COMMAND_SETTINGS
from o1embedder.errors import InputError
from o1embedder.options import Dtype, MixedPrecision, leaves, setting

# command -> (file, flags overriding the file, --set items, {dotted key: expected value},
#             a wrongly typed file line (key, YAML), an unknown key)
CASES: dict[str, tuple[str, list[str], list[str], dict[str, Any], tuple[str, str], str]] = {
    "train": ("model: m\ndata: d\nout: {out}\nloss:\n  lam: 0.5\n  temperature: 0.05\nadapter:\n  r: 4\n",
              ["--lam", "0.7", "--full"], ["adapter.r=8", "training_args.warmup_ratio=0.1"],
              {"model": "m", "loss.lam": 0.7, "loss.temperature": 0.05, "adapter.r": 8, "adapter.mode": "full",
               "training_args.warmup_ratio": 0.1, "dtype": "auto"},
              ("gradcache.query_chunk", "gradcache:\n  query_chunk: eight\n"), "lossy"),
    "rl": ("model: m\ndata: d\nout: {out}\nsteps: 5\nadapter:\n  alpha: 16\n",
           ["--steps", "7", "--mixed-precision", "fp16"], ["adapter.r=8"],
           {"steps": 7, "adapter.r": 8, "adapter.alpha": 16, "adapter.dropout": 0.0, "mixed_precision": "fp16",
            "device": "auto"},
           ("samples", "samples: many\n"), "sample"),
    "synthesize": ("input: i.jsonl\nout: {out}\nexpert: hf:x\nk: 5\nsampling:\n  max_tokens: 100\n",
                   ["--k", "2", "--temperature", "default"], ["sampling.top_p=0.5"],
                   {"k": 2, "sampling.max_tokens": 100, "sampling.top_p": 0.5, "sampling.temperature": None,
                    "shots": "auto"},
                   ("concurrency", "concurrency: [1]\n"), "temprature"),
    "refine": ("input: i.jsonl\nout: {out}\ncommittee: bm25\nvoting: hard\nmargin: 0.1\n",
               ["--voting", "borda", "--temperature", "0.3"], ["margin=0.2"],
               {"voting": "borda", "vote_temperature": 0.3, "margin": 0.2, "committee": "bm25"},
               ("voting", "voting: loud\n"), "votes"),
    "mine": ("data: d\nout: {out}\nnegatives: 5\nthink:\n  n_thoughts: 2\n",
             ["--negatives", "7", "--no-think"], ["think.top_p=0.5"],
             {"negatives": 7, "think.n_thoughts": 2, "think.top_p": 0.5, "think.mode": "never", "data": "d"},
             ("mine_seed", "mine_seed: x\n"), "negative"),
    "index": ("model: bm25\ncorpus: c.jsonl\nout: {out}\nshard_size: 10\n",
              ["--shard-size", "20"], ["factory=HNSW32"],
              {"shard_size": 20, "factory": "HNSW32", "model": "bm25", "batch_size": 32},
              ("wait", "wait: soon\n"), "shards"),
    "eval": ("model: m\ndata: d\nsplit: dev\nout: {out}\nthink:\n  temperature: 0.3\n",
             ["--split", "train", "--auto-think", "0.2", "--k-values", "1,10"], ["think.seed=4"],
             {"split": "train", "think.temperature": 0.3, "think.seed": 4, "think.mode": "auto",
              "think.margin": 0.2, "k_values": [1, 10]},
             ("max_queries", "max_queries: few\n"), "splits"),
    "pipeline": ("base:\n  model: m\nout: {out}\ntraining:\n  steps: 5\n  adapter:\n    r: 4\n",
                 ["--training-steps", "7", "--dtype", "float32"], ["training.adapter.r=8", "training.training_args.logging_steps=3"],
                 {"training.steps": 7, "training.adapter.r": 8, "training.adapter.dropout": 0.05, "training.training_args": {"logging_steps": 3},
                  "base.model": "m", "dtype": "float32", "device": "auto"},
                 ("seed", "seed: many\n"), "trainig"),
}
ISSUE = {"train", "rl", "synthesize", "refine", "mine", "index", "eval", "pipeline"}


def _get(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


def test_every_command_of_the_issue_has_settings() -> None:
    assert set(CASES) == ISSUE <= set(COMMAND_SETTINGS)


@pytest.mark.parametrize("command", sorted(CASES))
def test_file_flags_and_set_are_merged_and_printed_without_running(command: str, tmp_path: Path, capsys) -> None:
    text, flags, sets, expected, _, _ = CASES[command]
    out = tmp_path / "out"
    config = tmp_path / "c.yaml"
    config.write_text(text.format(out=out))
    argv = [command, "--config", str(config), *flags]
    for item in sets:
        argv += ["--set", item]
    assert main([*argv, "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    for key, value in expected.items():
        assert _get(printed, key) == value, key
    assert printed["out"] == str(out)                                     # from the file
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]    # nothing ran


@pytest.mark.parametrize("command", sorted(CASES))
def test_a_bad_file_is_one_line_naming_file_line_and_key(command: str, tmp_path: Path, capsys) -> None:
    text, _, _, _, (key, bad), unknown = CASES[command]
    base = text.format(out=tmp_path / "out")
    for extra, needles in ((bad, [key]), (f"{unknown}: 1\n", [unknown])):
        config = tmp_path / "c.yaml"
        config.write_text(base + extra)
        line = len((base + extra).splitlines())           # the key sits on the last line
        assert main([command, "--config", str(config), "--print-config"]) == 2
        captured = capsys.readouterr()
        err = captured.err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"o1emb {command}: error: {config}:{line}: "), err
        assert all(n in err[0] for n in needles), err
        assert not captured.out


def test_a_flag_with_a_bad_value_names_the_flag(capsys) -> None:
    assert main(["index", "--model", "bm25", "--corpus", "c", "--out", "o", "--dtype", "bf16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "o1emb index: error: --dtype: expected one of auto, float32, bfloat16, float16, got 'bf16'"
    assert main(["eval", "--model", "m", "--data", "d", "--no-think", "--auto-think", "--print-config"]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_required_settings_may_come_from_the_file_or_set(tmp_path: Path, capsys) -> None:
    assert main(["rl", "--model", "m", "--data", "d", "--print-config"]) == 2
    assert "out is required: give --out, --set out=... or put it in --config" in capsys.readouterr().err
    assert main(["rl", "--model", "m", "--data", "d", "--set", "out=o", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["out"] == "o"


# -- one name, type and set of choices per shared setting -------------------------------------------
def _shared() -> dict[str, dict[str, options.Leaf]]:
    by_key: dict[str, dict[str, options.Leaf]] = {}
    for command, cls in COMMAND_SETTINGS.items():
        for leaf in leaves(cls):
            by_key.setdefault(leaf.key, {})[command] = leaf
    return {key: found for key, found in by_key.items() if len(found) > 1}


def test_a_setting_shared_by_commands_has_one_type_and_set_of_choices() -> None:
    shared = _shared()
    assert {"dtype", "device", "mixed_precision", "batch_size", "no_progress", "adapter.r", "out"} <= set(shared)
    problems = []
    for key, found in sorted(shared.items()):
        kinds = {(leaf.type_name(), leaf.choices) for leaf in found.values()}
        if len(kinds) > 1:
            problems.append(f"{key}: " + "; ".join(f"{c} {leaf.type_name()}" for c, leaf in found.items()))
    assert not problems, "\n".join(problems)


def test_dtype_mixed_precision_and_device_have_the_shared_types() -> None:
    seen = {"dtype": set(), "mixed_precision": set(), "device": set()}
    for command, cls in COMMAND_SETTINGS.items():
        for leaf in leaves(cls):
            if leaf.key in seen:
                seen[leaf.key].add(command)
                assert leaf.kind == {"dtype": Dtype, "mixed_precision": MixedPrecision, "device": str}[leaf.key]
                assert leaf.default == "auto", (command, leaf.key)
    assert seen["dtype"] == seen["device"] == set(COMMAND_SETTINGS)     # every command loads a model
    assert seen["mixed_precision"] == {"train", "rl"}


def test_the_thinking_and_lora_settings_are_the_same_everywhere() -> None:
    think = {c for c, cls in COMMAND_SETTINGS.items() if any(leaf.key == "think.mode" for leaf in leaves(cls))}
    assert think == {"eval", "mine"}
    flags = {leaf.key: leaf.flag for leaf in leaves(COMMAND_SETTINGS["eval"]) if leaf.key.startswith("think.")}
    assert {k: flags[k] for k in ("think.n_thoughts", "think.temperature", "think.top_p", "think.max_new_tokens",
                                  "think.seed")} == {"think.n_thoughts": "n-thoughts", "think.temperature": "temperature",
                                                     "think.top_p": "top-p", "think.max_new_tokens": "max-new-tokens",
                                                     "think.seed": "seed"}
    for command in ("train", "rl"):
        lora = {leaf.key: (leaf.flag, leaf.aliases) for leaf in leaves(COMMAND_SETTINGS[command])
                if leaf.key.startswith("adapter.")}
        assert lora["adapter.r"][0] == "lora-r" and lora["adapter.alpha"][0] == "lora-alpha"
        assert lora["adapter.dropout"][0] == "lora-dropout"
        assert lora["adapter.mode"][1] == {"lora": "lora", "full": "full"}
    rl_dropout = next(leaf.default for leaf in leaves(COMMAND_SETTINGS["rl"]) if leaf.key == "adapter.dropout")
    assert rl_dropout == 0.0                                        # RL keeps its own default


def test_choices_agree_with_the_library() -> None:
    from o1embedder.committee import rules
    from o1embedder.committee.settings import RefineSettings
    from o1embedder.rl import objective
    from o1embedder.rl.config import Reward

    assert typing.get_args(Reward) == objective.REWARDS
    kinds = typing.get_type_hints(RefineSettings)
    assert typing.get_args(kinds["scoring"]) == rules.SCORING_RULES
    assert typing.get_args(kinds["voting"]) == rules.VOTING_RULES
    assert typing.get_args(kinds["policy"]) == rules.POLICIES
    assert tuple(a for a in typing.get_args(typing.get_args(kinds["query_mode"])[0])) == rules.QUERY_MODES


# -- the mechanism ------------------------------------------------------------------------------------
@dataclass
class _Section:
    r: int = setting("rank", 32, flag="lora-r")


@dataclass
class _Demo:
    name: str = setting("a name", "", required=True)
    steps: int = setting("steps", 10)
    rate: float = setting("rate", 1e-4)
    flag: bool = setting("a switch", False)
    seed: int | None = setting("seed", None)
    words: list[str] = setting("words", factory=list)
    kind: typing.Literal["a", "b"] = setting("a or b", "a")
    section: _Section = field(default_factory=_Section)
    extra: dict[str, Any] = setting("anything", factory=dict, no_flag=True)


def _resolve(*argv: str) -> Any:
    parser = argparse.ArgumentParser()
    options.add_options(parser, _Demo)
    return options.resolve(_Demo, parser.parse_args(list(argv)))


def test_values_from_text_are_coerced_to_their_types() -> None:
    got = _resolve("--name", "x", "--steps", "3", "--rate", "1e-3", "--flag", "--seed", "none", "--words", "a,b",
                   "--kind", "b", "--lora-r", "8")
    assert (got.steps, got.rate, got.flag, got.seed, got.words, got.kind, got.section.r) == \
        (3, 1e-3, True, None, ["a", "b"], "b", 8)
    assert options.coerce("yes", bool, text=True) is True and options.coerce("7", int | None, text=True) == 7
    with pytest.raises(InputError, match="--steps: expected an integer, got 'many'"):
        _resolve("--name", "x", "--steps", "many")
    with pytest.raises(InputError, match="--kind: expected one of a, b, got 'c'"):
        _resolve("--name", "x", "--kind", "c")


@dataclass
class _Shapes:
    ks: list[int] = setting("cut-offs", factory=list)
    splits: list[typing.Literal["test", "validation"]] = setting("splits", factory=lambda: ["test"])
    sections: list[_Section] = setting("sections", factory=list)
    args: dict[str, Any] = setting("other arguments", factory=dict)


def test_help_shows_each_setting_as_it_is_written() -> None:
    """Metavars: N, X, TEXT; a list as ITEM,... (its choices in braces), a mapping as YAML."""
    parser = argparse.ArgumentParser(prog="demo")
    options.add_options(parser, _Demo)
    shown = {a.option_strings[0]: a.metavar for a in parser._actions if a.option_strings}
    assert (shown["--steps"], shown["--rate"], shown["--seed"], shown["--name"]) == ("N", "X", "N", "TEXT")
    assert (shown["--words"], shown["--kind"]) == ("TEXT,...", "{a,b}")
    shapes = argparse.ArgumentParser(prog="shapes", add_help=False)
    options.add_options(shapes, _Shapes)
    shown = {a.option_strings[0]: a.metavar for a in shapes._actions if a.option_strings}
    assert (shown["--ks"], shown["--splits"], shown["--sections"], shown["--args"]) == \
        ("N,...", "{test,validation},...", "YAML", "YAML")
    assert "--splits {test,validation},..." in shapes.format_help()
    resolved = options.resolve(_Shapes, shapes.parse_args(["--ks", "1,10", "--splits", "validation,test"]))
    assert (resolved.ks, resolved.splits) == ([1, 10], ["validation", "test"])        # read as shown


def test_set_reaches_nested_keys_and_dict_settings() -> None:
    got = _resolve("--name", "x", "--set", "section.r=4", "--set", "extra.warmup_ratio=0.1",
                   "--set", "extra.tags=[a, b]", "--set", "steps=5", "--steps", "9")
    assert got.section.r == 4 and got.extra == {"warmup_ratio": 0.1, "tags": ["a", "b"]}
    assert got.steps == 5                                                  # --set is applied last
    with pytest.raises(InputError, match="unknown setting 'section.q'"):
        _resolve("--name", "x", "--set", "section.q=1")
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        _resolve("--name", "x", "--set", "steps")


def test_a_file_with_a_duplicate_key_or_bad_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nsection:\n  r: 1\n  r: 2\n")
    with pytest.raises(InputError) as err:
        options.load_file(path)
    assert err.value.line == 4 and "given twice" in str(err.value) and str(path) in str(err.value)
    path.write_text("name: x\nsteps: [1\n")
    with pytest.raises(InputError, match="not valid YAML"):
        options.load_file(path)
    path.write_text('{"name": "x", "steps": 3}')                      # JSON is YAML
    assert options.load_file(path)[0] == {"name": "x", "steps": 3}


def test_a_required_setting_says_how_to_give_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"name is required: give --name, --set name=\.\.\. or put it in --config"):
        _resolve("--steps", "3")
    path = tmp_path / "c.yaml"
    path.write_text("name: from-file\n")
    parser = argparse.ArgumentParser()
    options.add_options(parser, _Demo)
    assert options.resolve(_Demo, parser.parse_args(["--config", str(path)])).name == "from-file"


def test_train_config_files_name_the_line_of_a_bad_value(tmp_path: Path) -> None:
    from o1embedder.training.config import TrainConfig, read_config

    path = tmp_path / "t.yaml"
    path.write_text("model: m\ndata: d\nout: o\nloss:\n  lam: high\n")
    with pytest.raises(InputError) as err:
        TrainConfig.from_file(path)
    assert err.value.line == 5 and err.value.field == "loss.lam"
    path.write_text("model: m\ndata: d\nout: o\nloss:\n  lam: 0.5\n")
    assert TrainConfig.from_file(path) == TrainConfig.from_dict(read_config(path))
    assert TrainConfig.from_dict({"model": "m", "data": "d", "out": "o"}).validate().dtype == "float32"
    assert TrainConfig.from_dict({"device": "cpu"}).training_args == {"use_cpu": True}
