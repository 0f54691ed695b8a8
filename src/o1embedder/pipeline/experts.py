"""Exploration and refinement for the recipe: each expert setting writes k candidates per training row,
the committee picks one; and an expert's zero-shot thoughts for evaluation queries (the "thoughts
bolted on" baseline).

An expert's prompt is a preset: ``paper`` (task line, few-shot ``Query:``/``Response:`` examples, the
query) or ``informed`` (the expert also sees the row's positive passage and writes a short answer in
its own words: a documented deviation for a weak expert; the committee still votes). At evaluation
time no expert sees a positive, so the bolted-on baseline uses the paper prompt.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from ..formats import TrainingRow, read_training_rows, write_jsonl
from ..log import get_logger
from .recipe import Expert, Recipe

logger = get_logger(__name__)


def _prompt(expert: Expert) -> Any:
    from ..synthesis import PromptTemplate

    return PromptTemplate.preset(expert.prompt)


def backend_spec(recipe: Recipe, inputs: Any, expert: Expert, base: Path) -> str:
    """The synthesis backend of an expert: ``base`` decodes the (converted) base model locally."""
    return f"hf:{base}" if expert.model == "base" else inputs.experts[expert.name].value


def _backend_options(recipe: Recipe) -> Any:
    from ..synthesis import BackendOptions, SamplingParams
    from .stages import resolved_device

    s = recipe.synthesis
    sampling = SamplingParams(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens)
    return BackendOptions(sampling=sampling, batch_size=s.batch_size, dtype=recipe.dtype,
                          device=resolved_device(recipe.device))


def prompt_digest(expert: Expert) -> str:
    """The expert prompt's sha256 (a changed preset redoes what it wrote)."""
    return _prompt(expert).sha256()


HELDOUT = "heldout-"
"""The stem of an expert's files for the held-out validation rows (``training.heldout_from: validation``)."""


def synthesis_files(recipe: Recipe, expert: Expert, stem: str = "") -> list[Path]:
    """The synthesis stage's partial state and side files (removed with it when its record differs)."""
    folder = recipe.root / expert.name
    return [folder / f"{stem}prompt-rows.jsonl", *folder.glob(f"{stem}synthesis*.jsonl"),
            folder / f"{stem}no-candidates.jsonl"]


def refine_files(recipe: Recipe, expert: Expert, stem: str = "") -> list[Path]:
    """The committee's journal, dropped rows and summary (removed with the refine stage's output)."""
    return sorted((recipe.root / expert.name).glob(f"{stem}train.*"))


def _short_rows(rows: list[TrainingRow], expert: Expert) -> list[dict[str, Any]]:
    """What the expert sees: positives cut short (few-shot responses, the informed passage), no negatives."""
    words = expert.context_words or None
    return [{"id": r.id, "query": r.query, "pos": [" ".join(p.split()[:words]) for p in r.pos[:1]], "neg": []}
            for r in rows]


def candidates(recipe: Recipe, expert: Expert, backend: str, train: Path, stem: str = "") -> Path:
    """``EXPERT/candidates.jsonl``: the full training rows with k candidates each (``stem``: the same
    for other rows, in files named ``EXPERT/{stem}...``)."""
    from ..synthesis import SynthesisConfig, synthesize

    folder = recipe.root / expert.name
    out = folder / f"{stem}candidates.jsonl"
    if out.is_file():
        return out
    rows = read_training_rows(train)
    prompt_rows = folder / f"{stem}prompt-rows.jsonl"
    if not prompt_rows.is_file():
        write_jsonl(prompt_rows, _short_rows(rows, expert))
    report = synthesize(prompt_rows, folder / f"{stem}synthesis.jsonl", backend,
                        config=SynthesisConfig(k=recipe.synthesis.k, shots=expert.shots, seed=recipe.seed),
                        options=_backend_options(recipe), prompt=_prompt(expert))
    if report.failed:
        logger.warning("%s: %d rows got no candidates (see %s); they train without a thought", expert.name,
                       report.failed, report.failures)
    found = {r.id: r.candidates for r in read_training_rows(folder / f"{stem}synthesis.jsonl")}
    merged, failed = [], []
    for row in rows:
        row.candidates = found.get(row.id) or None
        (merged if row.candidates else failed).append(row.to_dict())
    write_jsonl(folder / f"{stem}no-candidates.jsonl", failed)      # they train without a thought (see refine)
    write_jsonl(out, merged)
    return out


def _member(recipe: Recipe, spec: str) -> Any:
    """A committee member from a resolved retriever spec (sentence-transformers members read
    ``committee.max_length`` word pieces)."""
    from ..committee import make_member
    from ..committee.members import STMember
    from ..retrieval.encoders import STEncoder
    from .stages import resolved_device

    if not spec.startswith("st:"):
        return make_member(spec)
    path = spec.removeprefix("st:")
    encoder = STEncoder(path, max_length=recipe.committee.max_length, device=resolved_device(recipe.device))
    return STMember(path, encoder=encoder)


def refine(recipe: Recipe, expert: Expert, candidates_path: Path, members: list[str], stem: str = "") -> Path:
    """``EXPERT/train-all.jsonl``: one thought per row, chosen by the committee (resumable), plus the
    rows the expert wrote no usable candidate for, with an empty thought (as the committee's ``empty``
    policy does when no candidate beats the query). ``stem``: as :func:`candidates`."""
    from ..committee import CommitteeConfig
    from ..committee import refine as run

    folder = recipe.root / expert.name
    out = folder / f"{stem}train-all.jsonl"
    if not out.is_file():
        voters = [_member(recipe, spec) for spec in members]
        run(candidates_path, folder / f"{stem}train.jsonl", voters, config=CommitteeConfig(policy=recipe.committee.policy))
        rows = read_training_rows(folder / f"{stem}train.jsonl")
        none = folder / f"{stem}no-candidates.jsonl"
        failed = read_training_rows(none) if none.stat().st_size else []
        for row in failed:
            row.thought, row.candidates = "", None
        write_jsonl(out, (r.to_dict() for r in [*rows, *failed]))
    return out


# -- the expert's zero-shot thoughts for evaluation queries ------------------------------------------

def _seed(recipe: Recipe, qid: str, attempt: int) -> int:
    digest = hashlib.sha256(f"{recipe.seed}:{qid}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


async def _think(backend: Any, recipe: Recipe, prompt: Any, sampler: Any,
                 queries: dict[str, str]) -> dict[str, str]:
    from ..synthesis import GenRequest, candidate_problem

    await backend.start()

    async def one(qid: str, query: str) -> tuple[str, str]:
        examples = sampler.examples_for(TrainingRow(query=query, pos=[], id=f"eval:{qid}"))
        text = ""
        for attempt in range(3):                      # a bad candidate is asked again, as in synthesis
            request = GenRequest(prompt.messages(query, examples), n=1, seed=_seed(recipe, qid, attempt), key=qid)
            text = (await backend.complete(request)).texts[0].strip()
            if candidate_problem(text, query=query) is None:
                break
        return qid, text

    try:
        return dict(await asyncio.gather(*(one(q, t) for q, t in queries.items())))
    finally:
        await backend.aclose()


def read_thoughts(path: Path) -> dict[str, str]:
    import json

    return {r["id"]: r["thought"] for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def expert_thoughts(recipe: Recipe, expert: Expert, backend: str, train: Path, queries: dict[str, str],
                    path: Path) -> dict[str, str]:
    """The expert's paper-prompt thought per query (few-shot examples from *training* rows only),
    written to ``path`` (``thoughts/expert-EXPERT-DATASET-SPLIT.jsonl``)."""
    from dataclasses import replace

    from ..synthesis import FewShotSampler, make_backend

    if path.is_file():
        return read_thoughts(path)
    paper = replace(expert, prompt="paper")
    rows = [TrainingRow(query=r["query"], pos=r["pos"], id=r["id"])
            for r in _short_rows(read_training_rows(train), paper)]
    sampler = FewShotSampler(rows, expert.shots, recipe.seed)
    engine = make_backend(backend, _backend_options(recipe))
    logger.info("expert thoughts for %d queries (%s)", len(queries), path.stem)
    found = asyncio.run(_think(engine, recipe, _prompt(paper), sampler, queries))
    write_jsonl(path, ({"id": q, "query": queries[q], "thought": found[q]} for q in queries))
    return found


def backend_id(expert: Expert) -> str:
    """What identifies an expert's engine in a record: its setting (a ``base`` expert's weights enter
    through the base model's stage, upstream of every stage that reads them)."""
    return expert.model
