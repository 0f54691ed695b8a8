"""Exploration prompts: a task line, m few-shot ``Query:`` / ``Response:`` examples, the target query.

Few-shot examples are drawn deterministically (seeded by ``shot_seed`` and the target row's id, so a
row gets the same examples on every run, resumed or not, whatever the order rows are processed in)
from the other input rows. An example is never taken from the target row and never **leaks** it:
an example whose query or response contains the target's query or one of its positives (compared
case- and whitespace-insensitively), or whose query equals the target's, is skipped. The reference
code drew examples without that check, so a row could be shown its own answer.

The user message is ``template`` with ``{task}``, ``{examples}``, ``{query}`` and ``{passage}``
substituted in one pass (text that itself contains braces is left alone). Two named presets
(:meth:`PromptTemplate.preset`, ``o1emb synthesize --prompt``):

``paper`` (the default) reproduces the reference layout::

    Think about a plausible response to address the query.

    Query: <example query>
    Response: <example positive>

    Query: <target query>
    Response:

``informed`` is a deviation from the paper for weak experts: a small model that only sees the query
writes lead-ins, restatements or confident nonsense, so it is also shown the row's first positive
passage (cut to ``passage_words`` words, ``...`` marking the cut) and asked to answer in its own
words; it has no ``{examples}`` (use it with ``shots=0``)::

    Here is a search query and a passage that answers it. Write a short, plausible answer ...

    Query: <target query>
    Passage: <first positive, at most 150 words>
    Response:
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..formats import TrainingRow
from ..log import get_logger

logger = get_logger(__name__)

DEFAULT_TASK = "Think about a plausible response to address the query."
DEFAULT_TEMPLATE = "{task}\n\n{examples}Query: {query}\nResponse:"
EXAMPLE_FORMAT = "Query: {query}\nResponse: {response}\n\n"
INFORMED_TASK = ("Here is a search query and a passage that answers it. Write a short, plausible answer to the "
                 "query in your own words, in two or three sentences. Do not copy the passage.")
INFORMED_TEMPLATE = "{task}\n\nQuery: {query}\nPassage: {passage}\nResponse:"
PRESETS: dict[str, tuple[str, str]] = {"paper": (DEFAULT_TASK, DEFAULT_TEMPLATE),
                                       "informed": (INFORMED_TASK, INFORMED_TEMPLATE)}
"""Named prompts: ``name -> (task, template)``."""
DEFAULT_PASSAGE_WORDS = 150
_PLACEHOLDER = re.compile(r"\{(task|examples|query|passage)\}")


def _read_text(path: str | os.PathLike[str], what: str) -> str:
    from ..formats import read_text

    if not Path(path).is_file():
        reason = "not a file" if Path(path).exists() else "file not found"
        raise InputError(f"cannot read the {what}: {reason}", path=path)
    try:
        return read_text(path)
    except OSError as exc:
        raise InputError(f"cannot read the {what}: {exc.strerror or exc}", path=path) from None


@dataclass(frozen=True)
class PromptTemplate:
    """How a row becomes chat messages. ``system=None`` sends no system message.

    ``passage_words`` caps the ``{passage}`` text (the row's first positive) in words; it only
    matters, and only enters :meth:`sha256`, when the template has a ``{passage}`` placeholder.
    """

    task: str = DEFAULT_TASK
    template: str = DEFAULT_TEMPLATE
    system: str | None = None
    passage_words: int = DEFAULT_PASSAGE_WORDS

    def __post_init__(self) -> None:
        if "{query}" not in self.template:
            raise InputError("the prompt template has no {query} placeholder")
        if self.passage_words < 1:
            raise InputError(f"passage words must be >= 1, got {self.passage_words}")

    @classmethod
    def preset(cls, name: str = "paper", *, task: str | None = None, system: str | None = None,
               passage_words: int = DEFAULT_PASSAGE_WORDS) -> PromptTemplate:
        """The named prompt ``paper`` or ``informed`` (see the module doc); ``task`` replaces its task text."""
        if name not in PRESETS:
            raise InputError(f"unknown prompt preset {name!r} (choose from {', '.join(PRESETS)})")
        preset_task, template = PRESETS[name]
        return cls(task=preset_task if task is None else task, template=template, system=system,
                   passage_words=passage_words)

    @classmethod
    def from_files(cls, *, template_path: str | os.PathLike[str] | None = None,
                   system_path: str | os.PathLike[str] | None = None, task: str | None = None,
                   system: str | None = None, preset: str = "paper",
                   passage_words: int = DEFAULT_PASSAGE_WORDS) -> PromptTemplate:
        """The ``preset`` with optional files (UTF-8 text) and strings; a file wins over the matching string."""
        base = cls.preset(preset, task=task, system=system, passage_words=passage_words)
        template = base.template
        if template_path is not None:
            template = _read_text(template_path, "prompt template")
            if "{query}" not in template:
                raise InputError("the prompt template has no {query} placeholder", path=template_path)
        if system_path is not None:
            system = _read_text(system_path, "system message").strip() or None
        return dataclasses.replace(base, template=template, system=system)

    @property
    def uses_passage(self) -> bool:
        """Whether the prompt shows the row's positive passage (every row then needs one)."""
        return "{passage}" in self.template

    @property
    def uses_examples(self) -> bool:
        """Whether the prompt shows few-shot examples (without the placeholder none are drawn)."""
        return "{examples}" in self.template

    def sha256(self) -> str:
        """A hash of everything that shapes the prompt (recorded with every output row)."""
        parts: list[object] = [self.task, self.template, EXAMPLE_FORMAT, self.system]
        if self.uses_passage:  # only then: the paper preset keeps the hash of earlier versions
            parts.append(self.passage_words)
        blob = json.dumps(parts, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def passage_text(self, passage: str) -> str:
        """``passage`` with its whitespace collapsed, cut to ``passage_words`` words (``...`` when cut)."""
        words = passage.split()
        if len(words) > self.passage_words:
            return " ".join(words[:self.passage_words]) + " ..."
        return " ".join(words)

    def user_message(self, query: str, examples: Sequence[tuple[str, str]], passage: str | None = None) -> str:
        """The user message for ``query`` with ``examples`` as ``(query, response)`` pairs.

        ``passage`` (the row's first positive) is required when the template has ``{passage}``.
        """
        if passage is None and self.uses_passage:
            raise InputError("the prompt has a {passage} placeholder but no passage was given")
        shots = "".join(EXAMPLE_FORMAT.format(query=q, response=r) for q, r in examples)
        values = {"task": self.task, "examples": shots, "query": query,
                  "passage": self.passage_text(passage) if passage is not None else ""}
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.template)

    def messages(self, query: str, examples: Sequence[tuple[str, str]],
                 passage: str | None = None) -> list[dict[str, str]]:
        """Chat messages: optional system message, then the user message."""
        out = [{"role": "system", "content": self.system}] if self.system else []
        out.append({"role": "user", "content": self.user_message(query, examples, passage)})
        return out

    def row_messages(self, row: TrainingRow, examples: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
        """:meth:`messages` for a training row (its first positive is the ``{passage}``)."""
        if self.uses_passage and not row.pos:
            raise InputError(f"row {row.id}: the prompt shows a {{passage}} but the row has no positive passage")
        return self.messages(row.query, examples, row.pos[0] if row.pos else None)


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


class FewShotSampler:
    """Deterministic, leak-free few-shot examples for each row (see the module docstring)."""

    def __init__(self, rows: Sequence[TrainingRow], shots: int, seed: int = 0, max_draws: int = 20) -> None:
        if shots < 0:
            raise InputError(f"shots must be >= 0, got {shots}")
        self.rows = rows
        self.shots = shots
        self.seed = seed
        self._max_draws = max_draws
        self._norm_cache: dict[int, tuple[str, list[str]]] = {}
        self._warned = False

    def _normed(self, index: int) -> tuple[str, list[str]]:
        if index not in self._norm_cache:
            row = self.rows[index]
            self._norm_cache[index] = (_norm(row.query), [_norm(p) for p in row.pos])
        return self._norm_cache[index]

    def _pick(self, target: TrainingRow, forbidden: list[str], index: int, rng: random.Random) -> str | None:
        """A positive of row ``index`` usable as an example for ``target``, or None."""
        row = self.rows[index]
        if row.id == target.id or not row.pos:
            return None
        query, positives = self._normed(index)
        if any(f in query for f in forbidden):
            return None
        usable = [p for p, n in zip(row.pos, positives, strict=True) if not any(f in n for f in forbidden)]
        return rng.choice(usable) if usable else None

    def examples_for(self, target: TrainingRow) -> list[tuple[str, str]]:
        """Up to ``shots`` ``(query, response)`` pairs for ``target`` (fewer only if the input is tiny)."""
        if self.shots == 0:
            return []
        rng = random.Random(f"{self.seed}:{target.id}")
        forbidden = [f for f in [_norm(target.query), *(_norm(p) for p in target.pos)] if f]
        chosen: dict[int, str] = {}
        n = len(self.rows)
        for _ in range(self.shots * self._max_draws):
            if len(chosen) == self.shots:
                break
            index = rng.randrange(n)
            if index not in chosen and (response := self._pick(target, forbidden, index, rng)) is not None:
                chosen[index] = response
        if len(chosen) < self.shots:  # unlucky draws or a tiny input: scan everything from a random start
            start = rng.randrange(n)
            for step in range(n):
                index = (start + step) % n
                if len(chosen) == self.shots:
                    break
                if index not in chosen and (response := self._pick(target, forbidden, index, rng)) is not None:
                    chosen[index] = response
        if len(chosen) < self.shots and not self._warned:
            self._warned = True
            logger.warning("only %d usable few-shot example(s) for row %s (asked for %d)",
                           len(chosen), target.id, self.shots)
        return [(self.rows[i].query, response) for i, response in chosen.items()]
