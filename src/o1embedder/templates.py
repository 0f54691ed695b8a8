"""The single definition of how a query, a thought and a document become model text and token ids.

========================  ==============================================  ===========================
input                     sequence                                        vector
========================  ==============================================  ===========================
document                  ``[bos] {title} {text}<emb>``                   hidden state at ``<emb>``
query, for generation     ``[bos] <query>{q}</query><thought>``           (the model then thinks)
query with a thought      ``[bos] <query>{q}</query><thought>{t}<eos><emb>``  hidden state at ``<emb>``
query, no thinking        ``[bos] <query>{q}</query><thought><emb>``      hidden state at ``<emb>``
========================  ==============================================  ===========================

Sequences are assembled from token ids, piece by piece, instead of tokenising one formatted string:
that way truncation cuts the query text (or the document text, or the thought) and never the
template, the BOS appears exactly once whatever the tokenizer's habits, and a literal ``<emb>``
inside user text stays text (``split_special_tokens``) instead of becoming the pooling token.
Training (``training``) and inference (``model``) both go through this module, so they agree on
ids and length limits by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import InputError, ModelError


@dataclass
class TemplateConfig:
    """Token strings and length limits shared by training and inference."""

    query_start: str = "<query>"
    """Opens the query text."""
    query_end: str = "</query>"
    """Closes the query text."""
    thought: str = "<thought>"
    """Opens the thought; generation starts right after it."""
    emb: str = "<emb>"
    """The pooling token: its final hidden state is the vector."""
    max_query_tokens: int = 32
    """Query text is cut to this many tokens (reference: 32)."""
    max_query_thought_tokens: int = 256
    """Whole query sequence with its thought, template included (reference: 256); the thought is cut."""
    max_passage_tokens: int = 192
    """Whole document sequence, template included (reference: 192); the document text is cut."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemplateConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InputError(f"unknown template settings: {sorted(unknown)}")
        return cls(**data)

    @property
    def special_tokens(self) -> tuple[str, str, str, str]:
        return (self.query_start, self.query_end, self.thought, self.emb)



def document_text(doc: str | dict[str, Any]) -> str:
    """``title + " " + text`` (BEIR convention); a plain string is used as it is."""
    if isinstance(doc, str):
        return doc
    if isinstance(doc, dict):
        title = doc.get("title") or ""
        text = doc.get("text") or ""
        if not isinstance(title, str) or not isinstance(text, str):
            raise InputError("document 'title' and 'text' must be strings")
        return f"{title} {text}".strip() if title else text
    raise InputError(f"a document must be a string or a {{title, text}} record, got {type(doc).__name__}")


class Template:
    """Turns texts into token-id sequences for one tokenizer (see the module docstring)."""

    def __init__(self, tokenizer: Any, config: TemplateConfig | None = None) -> None:
        self.tokenizer = tokenizer
        self.config = config or TemplateConfig()
        ids = tokenizer.convert_tokens_to_ids(list(self.config.special_tokens))
        unk = getattr(tokenizer, "unk_token_id", None)
        missing = [t for t, i in zip(self.config.special_tokens, ids) if i is None or i == unk]
        if missing:
            raise ModelError(f"tokenizer lacks the special tokens {missing}")
        self.query_start_id, self.query_end_id, self.thought_id, self.emb_id = ids
        if tokenizer.eos_token_id is None:
            raise ModelError("tokenizer has no EOS token; the thought must end with one")
        self.eos_id: int = tokenizer.eos_token_id
        self.special_ids = frozenset(ids)
        self.bos: list[int] = self._detect_bos(tokenizer)

    @staticmethod
    def _detect_bos(tokenizer: Any) -> list[int]:
        """``[bos_id]`` if the tokenizer prepends a BOS by itself (Llama, Mistral), else ``[]`` (Qwen2)."""
        bos = getattr(tokenizer, "bos_token_id", None)
        if bos is None:
            return []
        probe = tokenizer("a", add_special_tokens=True)["input_ids"]
        return [bos] if probe and probe[0] == bos else []

    # -- text ---------------------------------------------------------------------------------
    def encode_text(self, text: str, *, what: str = "text") -> list[int]:
        """Token ids of user text; special-token strings inside it stay plain text."""
        if not isinstance(text, str):
            raise InputError(f"{what} must be a string, got {type(text).__name__}")
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]

    def check_no_special(self, text: str, *, what: str = "thought") -> None:
        """Refuse text that spells one of the special tokens (a corrupted training thought)."""
        for token in (*self.config.special_tokens, self.tokenizer.eos_token):
            if token and token in text:
                raise InputError(f"{what} contains the special token string {token!r}")

    def render_query(self, query: str, thought: str | None = None) -> str:
        """Human-readable form of the query sequence (for logs and docs; ids come from the methods below)."""
        c = self.config
        if thought is None:
            return f"{c.query_start}{query}{c.query_end}{c.thought}{c.emb}"
        return f"{c.query_start}{query}{c.query_end}{c.thought}{thought}{self.tokenizer.eos_token}{c.emb}"

    # -- sequences ----------------------------------------------------------------------------
    def query_prompt_ids(self, query: str) -> list[int]:
        """``[bos] <query> q </query> <thought>``: the generation prompt; q cut to ``max_query_tokens``."""
        q = self.encode_text(query, what="query")[: self.config.max_query_tokens]
        return [*self.bos, self.query_start_id, *q, self.query_end_id, self.thought_id]

    def thought_budget(self, prompt_len: int) -> int:
        """Thought tokens that fit after a prompt of ``prompt_len`` (EOS and ``<emb>`` reserved)."""
        return max(0, self.config.max_query_thought_tokens - prompt_len - 2)

    def query_ids(self, query: str, thought: str | Sequence[int] | None) -> tuple[list[int], int]:
        """Full query sequence and the number of thought tokens kept (0 for no thinking).

        ``thought`` is text or already token ids (generated ids are never decoded and re-encoded).
        With a thought: ``prompt + t + [eos, <emb>]``; without: ``prompt + [<emb>]``.
        """
        prompt = self.query_prompt_ids(query)
        if thought is None:
            return [*prompt, self.emb_id], 0
        t = self.encode_text(thought, what="thought") if isinstance(thought, str) else list(thought)
        t = t[: self.thought_budget(len(prompt))]
        return [*prompt, *t, self.eos_id, self.emb_id], len(t)

    def document_ids(self, doc: str | dict[str, Any]) -> list[int]:
        """``[bos] title text <emb>``, the text cut so the whole fits ``max_passage_tokens``."""
        body = self.encode_text(document_text(doc), what="document")
        room = max(1, self.config.max_passage_tokens - len(self.bos) - 1)
        return [*self.bos, *body[:room], self.emb_id]
