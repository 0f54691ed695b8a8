"""Every input a recipe names, resolved and checked before any stage runs: models (folders, ``.gguf``
files, hub ids, files inside installed packages), experts, retrievers, BEIR folders with the splits
each use needs (fetched from a recipe's URL when absent) and the packages the stages import.

A problem is an :class:`~o1embedder.errors.InputError` naming the recipe key and its line.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .recipe import EvalSet, Recipe, TrainSet

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
BEIR_FILES = ("corpus.jsonl", "queries.jsonl")


def default_data_dir() -> Path:
    """``$O1EMB_DATA``, else ``../shared/data`` (as the tests read it)."""
    return Path(os.environ.get("O1EMB_DATA") or Path.cwd().parent / "shared" / "data")


def package_file(spec: str) -> Path | None:
    """``package:MODULE/FILE`` -> the file inside the installed package (found without importing it)."""
    module, _, rest = spec.removeprefix("package:").partition("/")
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    for folder in (found.submodule_search_locations or []) if found else []:
        path = Path(folder) / rest
        if path.exists():
            return path
    return None


@dataclass
class Resolved:
    """A model or retriever as the stages use it, and how it was found (for the plan)."""

    value: str
    note: str


def resolve_model(spec: str, key: str, recipe: Recipe) -> Resolved:
    """A model setting: a local path (checked), ``package:MODULE/FILE`` or a hub id (not checked offline)."""
    if spec.startswith("package:"):
        path = package_file(spec)
        if path is None:
            module = spec.removeprefix("package:").split("/")[0]
            raise recipe.origin.error(key, f"{spec}: not found (is the package {module!r} installed?)")
        return Resolved(str(path), f"{path} (from {spec})")
    path = Path(spec).expanduser()
    if path.exists():
        return Resolved(str(path), f"{path} ({'GGUF file' if path.suffix == '.gguf' else 'folder'})")
    if HUB_ID.match(spec) and not spec.startswith((".", "/")):
        return Resolved(spec, f"{spec} (hub id: fetched by transformers at load, not checked here)")
    raise recipe.origin.error(key, f"model not found: {spec}")


def resolve_retriever(spec: str, key: str, recipe: Recipe) -> Resolved:
    kind, _, rest = spec.partition(":")
    if kind == "bm25":
        if rest not in {"", "nostem"}:
            raise recipe.origin.error(key, f"bm25 options are '' or nostem, got {spec!r}")
        return Resolved(spec, f"BM25 ({'no stemming' if rest else 'English stemming'})")
    if kind == "st":
        found = resolve_model(rest, key, recipe)
        return Resolved(f"st:{found.value}", f"sentence-transformers {found.note}")
    raise recipe.origin.error(key, f"unknown retriever {spec!r} (bm25, bm25:nostem, st:PATH)")


def resolve_expert(spec: str, key: str, recipe: Recipe, base: Resolved) -> Resolved:
    if spec == "base":
        return Resolved(f"hf:{base.value}", "the base model, decoding locally (hf:)")
    kind, _, rest = spec.partition(":")
    if kind == "hf":
        found = resolve_model(rest, key, recipe)
        return Resolved(f"hf:{found.value}", f"local decoding of {found.note}")
    if kind == "openai":
        if not rest.startswith(("http://", "https://")):
            raise recipe.origin.error(key, f"openai: needs a URL (openai:http://HOST:PORT/v1#MODEL), got {spec!r}")
        return Resolved(spec, f"an OpenAI-compatible server at {rest} (not contacted before its stage)")
    if kind == "vllm":
        note = "" if importlib.util.find_spec("vllm") else " - vllm is not installed here (pip install 'o1embedder[vllm]')"
        return Resolved(spec, f"vLLM offline engine for {rest}{note}")
    raise recipe.origin.error(key, f"unknown expert {spec!r} (base, hf:PATH, openai:URL#MODEL, vllm:MODEL)")


@dataclass
class Folder:
    """A BEIR folder of the recipe: where it is, what it must hold, and a URL to fetch it from."""

    key: str
    name: str
    path: Path
    needs: list[str]
    fetch: str = ""
    missing: list[str] = field(default_factory=list)


def _folder(recipe: Recipe, key: str, entry: TrainSet | EvalSet, splits: list[str]) -> Folder:
    root = Path(recipe.data) if recipe.data else default_data_dir()
    path = Path(entry.path).expanduser()
    path = path if path.is_absolute() else root / path
    needs = [*BEIR_FILES, *(f"qrels/{s}.tsv" for s in splits)]
    return Folder(key, recipe.dataset_name(entry), path, needs, entry.fetch, _absent(path, needs))


def _absent(path: Path, needs: list[str]) -> list[str]:
    return [f for f in needs if not (path / f).is_file() and not (path / f"{f}.gz").is_file()]


def folders(recipe: Recipe) -> list[Folder]:
    """Every BEIR folder with the files its uses need; absent ones are kept only when they can be fetched."""
    out = []
    for i, entry in enumerate(recipe.train_data):
        splits = [entry.split, *([entry.validation.split] if entry.validation.split and entry.validation.queries else [])]
        out.append(_folder(recipe, f"train_data.{i}.path", entry, splits))
    if "test" in recipe.splits:
        out += [_folder(recipe, f"eval_data.{i}.path", e, [e.split]) for i, e in enumerate(recipe.eval_data)]
    for folder in out:               # only an absent folder is fetched: one that is there is never replaced
        if folder.missing and (not folder.fetch or folder.path.exists()):
            how = "remove the folder to fetch it" if folder.fetch else "set 'data' or $O1EMB_DATA, or give 'fetch'"
            raise recipe.origin.error(folder.key, f"{folder.path}: missing {', '.join(folder.missing)} ({how})")
    return out


PACKAGES = {"faiss": "faiss-cpu", "bm25s": "bm25s", "pytrec_eval": "pytrec-eval-terrier", "peft": "peft",
            "accelerate": "accelerate"}


def missing_packages(recipe: Recipe, base: Resolved) -> list[str]:
    """The pip packages the stages need that are not installed (``pip install 'o1embedder[all]'``)."""
    wanted = dict(PACKAGES)
    if any(s.startswith("st:") for s in recipe.retrievers.values()):
        wanted["sentence_transformers"] = "sentence-transformers"
    if base.value.endswith(".gguf"):
        wanted["gguf"] = "gguf"
    if any(e.model.startswith("openai:") for e in recipe.experts):
        wanted["httpx"] = "httpx"
    found = []
    for module, package in wanted.items():
        try:
            present = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            present = False
        if not present:
            found.append(package)
    return found


@dataclass
class Inputs:
    """Everything the recipe names, resolved: what the stages read."""

    base: Resolved
    experts: dict[str, Resolved]
    retrievers: dict[str, Resolved]
    folders: list[Folder]
    deepspeed: str = ""

    def folder(self, key: str) -> Folder:
        return next(f for f in self.folders if f.key == key)


def resolve_inputs(recipe: Recipe) -> Inputs:
    """Resolve and check every input (no stage runs, nothing is fetched)."""
    base = resolve_model(recipe.base.model, "base.model", recipe)
    experts = {e.name: resolve_expert(e.model, f"experts.{i}.model", recipe, base) for i, e in enumerate(recipe.experts)}
    retrievers = {name: resolve_retriever(spec, f"retrievers.{name}", recipe) for name, spec in recipe.retrievers.items()}
    deepspeed = ""
    if recipe.training.deepspeed:
        path = Path(recipe.training.deepspeed)
        path = path if path.is_absolute() else Path(recipe.folder or ".") / path
        if not path.is_file():
            raise recipe.origin.error("training.deepspeed", f"DeepSpeed config not found: {path}")
        deepspeed = str(path)
    packages = missing_packages(recipe, base)
    if packages:
        raise InputError(f"missing packages {', '.join(packages)}: pip install 'o1embedder[all]'")
    if recipe.device.startswith("cuda") and not _cuda():
        raise recipe.origin.error("device", f"{recipe.device} asked for, but torch sees no CUDA device")
    return Inputs(base, experts, retrievers, folders(recipe), deepspeed)


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def fetch(folder: Folder) -> None:
    """Download ``folder.fetch`` (a zip holding the BEIR folder, as BEIR publishes them) and unpack it
    where the recipe expects the folder; written under a temporary name and renamed."""
    import shutil
    import tempfile
    import urllib.request
    import zipfile

    from ..log import get_logger

    if folder.path.exists():         # fetched for an earlier entry naming the same folder: never replaced
        folder.missing = _absent(folder.path, folder.needs)
        if folder.missing:
            raise InputError(f"{folder.path}: missing {', '.join(folder.missing)} (remove the folder to fetch it)")
        return
    get_logger(__name__).info("fetching %s from %s", folder.name, folder.fetch)
    folder.path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.path.parent, prefix=".fetch-") as tmp:
        archive = Path(tmp) / "data.zip"
        with urllib.request.urlopen(folder.fetch) as response, open(archive, "wb") as handle:  # noqa: S310
            shutil.copyfileobj(response, handle)
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.namelist():              # no absolute paths or '..' out of the folder
                if member.startswith("/") or ".." in Path(member).parts:
                    raise InputError(f"{folder.fetch}: unsafe path in the zip: {member}")
            zipped.extractall(Path(tmp) / "unpacked")
        found = [p.parent for p in (Path(tmp) / "unpacked").rglob("corpus.jsonl")]
        if len(found) != 1:
            raise InputError(f"{folder.fetch}: expected one BEIR folder (one corpus.jsonl), found {len(found)}")
        os.replace(found[0], folder.path)
    folder.missing = _absent(folder.path, folder.needs)
    if folder.missing:
        raise InputError(f"{folder.fetch}: the fetched folder lacks {', '.join(folder.missing)}")
