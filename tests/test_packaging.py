"""Honest packaging: the version floors in pyproject.toml are the versions the minimum-versions CI step
(``scripts/test-floors.sh``) installs, so a floor cannot move without that step testing it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")
from packaging.version import Version  # noqa: E402  (pytest depends on packaging)

ROOT = Path(__file__).resolve().parents[1]
UNTESTED_EXTRAS = {"dev", "vllm", "all", "serve", "synth", "langchain", "llamaindex", "haystack", "rag", "llamacpp"}
"""dev: test tools; vllm: not installable on the CI machines; all and rag: unions; serve, synth and the
RAG frameworks: their floors are not exercised by the model, training and retrieval tests the floors
step runs (CI runs the adapters' tests at the versions of constraints.txt); llamacpp: compiled from
source (8 minutes), built and tested once, at the version of constraints.txt."""
NOT_PINNED = {"torch"}
"""Only one CPU build of torch (2.13.0) can be installed on the CI machines."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def floors_in_pyproject() -> dict[str, Version]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = list(project["dependencies"])
    for extra, items in project["optional-dependencies"].items():
        if extra not in UNTESTED_EXTRAS:
            specs += items
    floors = {}
    for spec in specs:
        found = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*([^;#]*)", spec)
        assert found, spec
        name, versions = canonical(found.group(1)), found.group(2)
        low = re.search(r">=\s*([0-9][0-9A-Za-z.]*)", versions)
        if low and name not in NOT_PINNED:
            floors[name] = Version(low.group(1))
    return floors


def pins_in_floors_file() -> dict[str, Version]:
    pins = {}
    for number, line in enumerate((ROOT / "constraints-floors.txt").read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        found = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([0-9][0-9A-Za-z.]*)", line)
        assert found, f"constraints-floors.txt:{number}: expected NAME==VERSION, got {line!r}"
        pins[canonical(found.group(1))] = Version(found.group(2))
    return pins


def test_every_floor_is_pinned_at_exactly_its_version_for_the_floors_step() -> None:
    floors, pins = floors_in_pyproject(), pins_in_floors_file()
    assert floors, "no floors found in pyproject.toml"
    assert floors == {name: pins.get(name) for name in floors}, "pyproject.toml floors vs constraints-floors.txt"
    assert set(pins) == set(floors), "constraints-floors.txt pins a package that pyproject.toml does not floor"


def test_the_floors_step_runs_in_ci_after_the_readme_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "scripts/test-floors.sh" in ci
    script = (ROOT / "scripts" / "test-floors.sh").read_text(encoding="utf-8")
    assert "constraints-floors.txt" in script and "torch==2.13.0" in script
