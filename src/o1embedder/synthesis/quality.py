"""Which completions may become candidate thoughts.

The reference code stored whatever came back, so a failed or refused request became an empty (or
"I'm sorry ...") thought that the committee then had to vote on. Here an empty, whitespace-only or
refusal-like completion is a *failed candidate*: the runner asks again, within a budget.
"""

from __future__ import annotations

import re

# Phrases an instruction-tuned model opens a refusal with (matched at the start, case-insensitive,
# after normalising curly apostrophes). Kept short and specific: a real thought rarely opens so.
REFUSAL_OPENINGS = (
    "i'm sorry", "i am sorry", "sorry, but", "sorry, i", "i apologize", "i apologise",
    "i cannot", "i can't", "i can not", "i won't", "i will not", "i'm unable", "i am unable",
    "i'm not able", "i am not able", "as an ai", "as a language model", "i must decline",
)
# ... and phrases that mark a refusal anywhere near the start.
_REFUSAL_ANYWHERE = re.compile(r"\bas an ai\b|\bas a language model\b|\bi (?:cannot|can't) (?:help|assist)\b")


def candidate_problem(text: str | None) -> str | None:
    """Why ``text`` cannot be a candidate thought (``"empty"``, ``"refusal"``), or None if it can."""
    if text is None or not text.strip():
        return "empty"
    head = text.strip().replace("\u2019", "'").lower()
    if head.startswith(REFUSAL_OPENINGS):
        return "refusal"
    if _REFUSAL_ANYWHERE.search(head[:200]):
        return "refusal"
    return None
