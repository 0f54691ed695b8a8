"""Which completions may become candidate thoughts.

The reference code stored whatever came back, so a failed or refused request became an empty (or
"I'm sorry ...") thought that the committee then had to vote on. Here a completion without content
is a *failed candidate*: the runner asks again, within a budget. Each rule has a named reason
(recorded in the failures file and counted per reason in the run's report):

- ``empty``: nothing but whitespace.
- ``refusal``: opens like a refusal ("I'm sorry", "I cannot", "As an AI" ...).
- ``lead-in``: announces an answer and stops: the text ends in a colon (after trailing whitespace,
  quotes, asterisks) and everything before that last sentence is at most a short opener of
  ``LEAD_IN_OPENER_WORDS`` words per sentence ("Sure! Here is a plausible response:"). Small
  instruction-tuned experts (SmolLM2) often write only "The answer to your query is:". A colon in
  the middle ("Vitamin C: it prevents scurvy") or after real sentences is not a lead-in.
- ``restatement``: repeats the query and adds nothing. Text is normalised to lower-case words
  (letters and digits; punctuation and whitespace dropped); the candidate is a restatement when its
  words appear as a contiguous run in the query's (equal to it or a piece of it), or when it has
  content words (words outside ``STOPWORDS``) and all of them are query words. A thought carries
  information for retrieval only through words the query does not already have.
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

LEAD_IN_OPENER_WORDS = 3
"""Sentences before a final colon this short ("Sure!", "Great question.") still make a lead-in."""
_TRAILING_JUNK = " \t\r\n\"'`*_\u201c\u201d\u2018\u2019"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[^\W_]+")

STOPWORDS = frozenset("""
a an the and or but if then so of to in on at by for with from into onto about as than that this these those
it its it's is are was were be been being am do does did done doing have has had having can could will would
shall should may might must i me my we our you your he him his she her they them their there here what which
who whom whose when where why how yes no not also very just some any all each more most such only own same
""".split())
"""Function words: a candidate whose other words all come from the query is a restatement."""


def _words(text: str) -> list[str]:
    return _WORD.findall(text.replace("\u2019", "'").casefold().replace("'", ""))


def is_lead_in(text: str) -> bool:
    """True for text that only announces an answer ("The correct answer is:"); see the module doc."""
    body = text.strip().rstrip(_TRAILING_JUNK)
    if not body.endswith(":"):
        return False
    sentences = _SENTENCE_END.split(body)
    return all(len(s.split()) <= LEAD_IN_OPENER_WORDS for s in sentences[:-1])


def is_restatement(text: str, query: str) -> bool:
    """True when ``text`` adds no word to ``query`` (see the module doc for the exact rule)."""
    words, query_words = _words(text), _words(query)
    if not words or not query_words:
        return False
    n = len(words)
    if any(query_words[i:i + n] == words for i in range(len(query_words) - n + 1)):
        return True
    content = {w for w in words if w not in STOPWORDS}
    return bool(content) and content <= set(query_words)


def candidate_problem(text: str | None, query: str | None = None) -> str | None:
    """Why ``text`` cannot be a candidate thought, or None if it can.

    Reasons: ``"empty"``, ``"refusal"``, ``"lead-in"``, and ``"restatement"`` (only checked when
    the row's ``query`` is given).
    """
    if text is None or not text.strip():
        return "empty"
    head = text.strip().replace("\u2019", "'").lower()
    if head.startswith(REFUSAL_OPENINGS):
        return "refusal"
    if _REFUSAL_ANYWHERE.search(head[:200]):
        return "refusal"
    if is_lead_in(text):
        return "lead-in"
    if query is not None and is_restatement(text, query):
        return "restatement"
    return None
