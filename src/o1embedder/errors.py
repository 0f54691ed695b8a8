"""The exceptions users of o1embedder see.

Every error a user can cause (a bad file, a bad argument, a model that cannot be used) is an
:class:`O1Error`. The command line turns any ``O1Error`` into one line on stderr and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class O1Error(Exception):
    """Base class of every error o1embedder raises on purpose."""


class InputError(O1Error, ValueError):
    """Bad user input: a malformed file, a missing field, an empty list, a wrong type.

    ``path``, ``line`` and ``field`` are optional and, when given, are put in front of the message
    so the user knows exactly where to look (``data.jsonl:12: field 'pos': expected a list``).
    """

    def __init__(self, message: str, *, path: object | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.reason = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
            where += ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        if self.field is not None:
            where += f"field '{self.field}': "
        return where + self.reason


class ModelError(O1Error):
    """A model or tokenizer that cannot be loaded or used as an O1 embedder."""


class IndexMismatchError(O1Error):
    """An index built with another model, or over another corpus, than the one supplied."""


class ExpertError(O1Error):
    """The expert LLM (synthesis backend) could not be reached or kept failing."""
