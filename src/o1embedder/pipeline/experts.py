"""Exploration and refinement for the recipe: SmolLM2-Instruct writes k candidates per training row in
two expert settings, a BM25 + all-MiniLM-L6-v2 committee picks one; and the expert's own zero-shot
thoughts for evaluation queries (the "thoughts bolted on" baseline).

- ``paper``: the paper's prompt (task line, few-shot ``Query:``/``Response:`` examples, the query).
- ``informed``: the expert also sees the row's positive passage and writes a short answer in its own
  words. A documented deviation for a weak expert; the committee still votes. At evaluation time no
  expert sees a positive, so the bolted-on baseline always uses the paper prompt.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from ..formats import TrainingRow, read_training_rows, write_jsonl
from ..log import get_logger
from .config import RealConfig

logger = get_logger(__name__)


def _prompt(expert: str) -> Any:
    from ..synthesis import PromptTemplate

    return PromptTemplate.preset(expert)


def _backend_options(config: RealConfig, n_requests: int | None = None) -> Any:
    from ..synthesis import BackendOptions, SamplingParams

    sampling = SamplingParams(temperature=config.expert_temperature, top_p=config.expert_top_p,
                              max_tokens=config.expert_max_tokens)
    return BackendOptions(sampling=sampling, batch_size=config.expert_batch, dtype="auto",
                          device=config.resolved_device())


def prompt_digest(expert: str) -> str:
    """The expert prompt's sha256 (a changed preset redoes what it wrote)."""
    return _prompt(expert).sha256()


def synthesis_files(config: RealConfig, expert: str) -> list[Path]:
    """The synthesis stage's partial state and side files (removed with it when its record differs)."""
    folder = config.root / expert
    return [folder / "prompt-rows.jsonl", *folder.glob("synthesis*.jsonl"), folder / "no-candidates.jsonl"]


def refine_files(config: RealConfig, expert: str) -> list[Path]:
    """The committee's journal, dropped rows and summary (removed with the refine stage's output)."""
    return sorted((config.root / expert).glob("train.*"))


def _short_rows(config: RealConfig, rows: list[TrainingRow], expert: str) -> list[dict[str, Any]]:
    """What the expert sees: positives cut short (few-shot responses, the informed passage), no negatives."""
    words = config.shot_words if expert == "paper" else 2 * config.shot_words
    return [{"id": r.id, "query": r.query, "pos": [" ".join(p.split()[:words]) for p in r.pos[:1]], "neg": []}
            for r in rows]


def candidates(config: RealConfig, expert: str, base: Path, train: Path) -> Path:
    """``EXPERT/candidates.jsonl``: the full training rows with k candidates each."""
    from ..synthesis import SynthesisConfig, synthesize

    folder = config.root / expert
    out = folder / "candidates.jsonl"
    if out.is_file():
        return out
    rows = read_training_rows(train)
    prompt_rows = folder / "prompt-rows.jsonl"
    if not prompt_rows.is_file():
        write_jsonl(prompt_rows, _short_rows(config, rows, expert))
    shots = config.paper_shots if expert == "paper" else 0
    report = synthesize(prompt_rows, folder / "synthesis.jsonl", f"hf:{base}",
                        config=SynthesisConfig(k=config.k, shots=shots, seed=config.seed),
                        options=_backend_options(config), prompt=_prompt(expert))
    if report.failed:
        logger.warning("%s: %d rows got no candidates (see %s); they train without a thought", expert,
                       report.failed, report.failures)
    found = {r.id: r.candidates for r in read_training_rows(folder / "synthesis.jsonl")}
    merged, failed = [], []
    for row in rows:
        row.candidates = found.get(row.id) or None
        (merged if row.candidates else failed).append(row.to_dict())
    write_jsonl(folder / "no-candidates.jsonl", failed)      # they train without a thought (see refine)
    write_jsonl(out, merged)
    return out


def refine(config: RealConfig, expert: str, candidates_path: Path, minilm: str) -> Path:
    """``EXPERT/train-all.jsonl``: one thought per row, chosen by BM25 + all-MiniLM-L6-v2 (resumable),
    plus the rows the expert wrote no usable candidate for, with an empty thought (as the committee's
    ``empty`` policy does when no candidate beats the query)."""
    from ..committee import CommitteeConfig, make_member
    from ..committee import refine as run
    from ..committee.members import STMember
    from ..retrieval.encoders import STEncoder

    folder = config.root / expert
    out = folder / "train-all.jsonl"
    if not out.is_file():
        encoder = STEncoder(minilm, max_length=config.committee_max_length, device=config.resolved_device())
        members = [make_member(config.bm25), STMember(minilm, encoder=encoder)]
        run(candidates_path, folder / "train.jsonl", members, config=CommitteeConfig(policy=config.committee_policy))
        rows = read_training_rows(folder / "train.jsonl")
        failed = read_training_rows(folder / "no-candidates.jsonl") if (folder / "no-candidates.jsonl").stat().st_size else []
        for row in failed:
            row.thought, row.candidates = "", None
        write_jsonl(out, (r.to_dict() for r in [*rows, *failed]))
    return out


# -- the expert's zero-shot thoughts for evaluation queries ------------------------------------------

def _seed(config: RealConfig, qid: str, attempt: int) -> int:
    digest = hashlib.sha256(f"{config.seed}:{qid}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


async def _think(backend: Any, config: RealConfig, prompt: Any, sampler: Any,
                 queries: dict[str, str]) -> dict[str, str]:
    from ..synthesis import GenRequest, candidate_problem

    await backend.start()

    async def one(qid: str, query: str) -> tuple[str, str]:
        examples = sampler.examples_for(TrainingRow(query=query, pos=[], id=f"eval:{qid}"))
        text = ""
        for attempt in range(3):                      # a bad candidate is asked again, as in synthesis
            request = GenRequest(prompt.messages(query, examples), n=1, seed=_seed(config, qid, attempt), key=qid)
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


def expert_thoughts(config: RealConfig, base: Path, train: Path, queries: dict[str, str], path: Path) -> dict[str, str]:
    """The expert's paper-prompt thought per query (few-shot examples from *training* rows only),
    written to ``path`` (``thoughts/expert-paper-DATASET-SPLIT.jsonl``)."""
    from ..synthesis import FewShotSampler
    from ..synthesis.hf_backend import create

    if path.is_file():
        return read_thoughts(path)
    rows = [TrainingRow(query=r["query"], pos=r["pos"], id=r["id"])
            for r in _short_rows(config, read_training_rows(train), "paper")]
    sampler = FewShotSampler(rows, config.paper_shots, config.seed)
    backend = create(str(base), _backend_options(config))
    logger.info("expert thoughts for %d queries (%s)", len(queries), path.stem)
    found = asyncio.run(_think(backend, config, _prompt("paper"), sampler, queries))
    write_jsonl(path, ({"id": q, "query": queries[q], "thought": found[q]} for q in queries))
    return found
