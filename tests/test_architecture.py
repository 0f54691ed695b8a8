"""The allowed-imports table of docs/architecture.md, checked with ``ast``; and light imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "o1embedder"
BASE = {"errors", "log", "provenance", "options"}  # every module may use them (provenance, options: formats)

# module -> the package modules it may import (besides BASE and itself). Keep in step with
# docs/architecture.md; a new top-level module must be added here or this test fails.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "log": set(),
    "provenance": {"formats"},
    "options": {"formats"},
    "resume": {"formats", "distributed"},
    "formats": set(),
    "templates": {"formats"},
    "distributed": set(),
    "checkpoints": set(),
    "export": {"formats"},
    "engines": {"model", "resume"},
    "model": {"templates", "formats", "checkpoints"},
    "losses": {"distributed"},
    "training": {"model", "losses", "distributed", "formats", "templates", "checkpoints", "resume"},
    "journal": set(),
    "synthesis": {"formats", "journal", "checkpoints", "model"},
    "retrieval": {"model", "formats", "templates", "distributed", "engines"},
    "committee": {"retrieval", "formats", "journal"},
    "evaluation": {"retrieval", "formats"},
    "serving": {"model", "retrieval", "formats", "engines"},
    "integrations": {"model", "retrieval"},
    "rl": {"model", "losses", "training", "distributed", "formats", "templates", "checkpoints", "resume"},
    "toy": {"formats"},
    "world": {"formats", "synthesis"},
    "demo": {"*"},
    "pipeline": {"*"},
    "cli": {"*"},
}
NOTHING_IMPORTS = {"cli"}


def _top_module(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imported(path: Path) -> set[str]:
    """Top-level o1embedder modules imported by a file (absolute or relative imports)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package_parts = ["o1embedder", *path.relative_to(PACKAGE).parent.parts]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = [module] + ([f"{module}.{a.name}" for a in node.names] if not node.module or node.level
                                else [])
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "o1embedder" and len(parts) > 1:
                found.add(parts[1])
    return found


def _files() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py" and p != PACKAGE / "__init__.py"]


def test_every_module_is_in_the_table():
    unknown = {_top_module(p) for p in _files()} - set(ALLOWED)
    assert not unknown, f"add these modules to ALLOWED and docs/architecture.md: {sorted(unknown)}"


def test_imports_follow_the_table():
    modules = {p.stem if p.parent == PACKAGE else p.parent.name for p in _files()}
    violations = []
    for path in _files():
        me = _top_module(path)
        allowed = ALLOWED[me]
        for other in _imported(path) - {me} - BASE:
            if other == "__version__" or other not in modules and other not in ALLOWED:
                continue
            if "*" not in allowed and other not in allowed:
                violations.append(f"{path.relative_to(PACKAGE)} imports {other}")
            if other in NOTHING_IMPORTS:
                violations.append(f"{path.relative_to(PACKAGE)} imports {other} (nothing may import it)")
    assert not violations, "\n".join(violations)


def test_the_checker_sees_relative_and_absolute_imports(tmp_path):
    probe = PACKAGE / "formats" / "io.py"
    assert _imported(probe) == {"errors"}
    assert _imported(PACKAGE / "formats" / "__init__.py") == {"formats"}   # its own submodules only
    assert "templates" in _imported(PACKAGE / "model" / "embedder.py")
    assert {"errors", "formats"} <= _imported(PACKAGE / "model" / "loading.py")


def test_formats_is_stdlib_only():
    """``formats`` (a package) imports the standard library, ``errors`` and its own modules only."""
    outside = []
    for path in (PACKAGE / "formats").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            outside += [f"{path.name}: {n}" for n in names
                        if n.split(".")[0] not in sys.stdlib_module_names and n != "__future__"]
    assert not outside, outside


def test_import_is_light():
    code = ("import sys, o1embedder, o1embedder.formats, o1embedder.templates, o1embedder.cli;"
            "o1embedder.cli.build_parser();"
            "heavy = [m for m in ('torch', 'transformers', 'faiss', 'sentence_transformers', 'peft', "
            "'fastapi', 'vllm', 'bm25s', 'pytrec_eval', 'httpx', 'openai') if m in sys.modules];"
            "print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
