"""Exploration prompts: a task line, m few-shot ``Query:`` / ``Response:`` examples, the target query.

Few-shot examples are drawn deterministically (seeded by ``shot_seed`` and the target row's id, so a
row gets the same examples on every run, resumed or not, whatever the order rows are processed in)
from the other input rows. An example is never taken from the target row and never **leaks** it:
an example whose query or response contains the target's query or one of its positives (compared
case- and whitespace-insensitively), or whose query equals the target's, is skipped. The reference
code drew examples without that check, so a row could be shown its own answer.

The user message is ``template`` with ``{task}``, ``{examples}`` and ``{query}`` substituted in one
pass (text that itself contains braces is left alone). The default reproduces the reference layout::

    Think about a plausible response to address the query.

    Query: <example query>
    Response: <example positive>

    Query: <target query>
    Response:
"""

from __future__ import annotations

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
_PLACEHOLDER = re.compile(r"\{(task|examples|query)\}")


def _read_text(path: str | os.PathLike[str], what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"cannot read the {what}: {reason}", path=path) from None


@dataclass(frozen=True)
class PromptTemplate:
    """How a row becomes chat messages. ``system=None`` sends no system message."""

    task: str = DEFAULT_TASK
    template: str = DEFAULT_TEMPLATE
    system: str | None = None

    def __post_init__(self) -> None:
        if "{query}" not in self.template:
            raise InputError("the prompt template has no {query} placeholder")

    @classmethod
    def from_files(cls, *, template_path: str | os.PathLike[str] | None = None,
                   system_path: str | os.PathLike[str] | None = None, task: str | None = None,
                   system: str | None = None) -> PromptTemplate:
        """Build from optional files (UTF-8 text) and strings; a file wins over the matching string."""
        template = DEFAULT_TEMPLATE
        if template_path is not None:
            template = _read_text(template_path, "prompt template")
            if "{query}" not in template:
                raise InputError("the prompt template has no {query} placeholder", path=template_path)
        if system_path is not None:
            system = _read_text(system_path, "system message").strip() or None
        return cls(task=DEFAULT_TASK if task is None else task, template=template, system=system)

    def sha256(self) -> str:
        """A hash of everything that shapes the prompt (recorded with every output row)."""
        blob = json.dumps([self.task, self.template, EXAMPLE_FORMAT, self.system], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def user_message(self, query: str, examples: Sequence[tuple[str, str]]) -> str:
        """The user message for ``query`` with ``examples`` as ``(query, response)`` pairs."""
        shots = "".join(EXAMPLE_FORMAT.format(query=q, response=r) for q, r in examples)
        values = {"task": self.task, "examples": shots, "query": query}
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.template)

    def messages(self, query: str, examples: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
        """Chat messages: optional system message, then the user message."""
        out = [{"role": "system", "content": self.system}] if self.system else []
        out.append({"role": "user", "content": self.user_message(query, examples)})
        return out


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
