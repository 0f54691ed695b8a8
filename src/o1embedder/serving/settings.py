"""What a server allows and how it batches: one typed dataclass, validated, with help text."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from ..errors import InputError

DEFAULT_API_KEY_ENV = "O1EMB_API_KEY"


@dataclass
class ServeSettings:
    """Limits, batching and safety settings of the HTTP server (defaults are safe for a laptop)."""

    model_id: str = "o1embedder"
    """The model name ``/v1/models`` lists and ``/v1/embeddings`` answers to."""
    max_inputs: int = 64
    """Texts per ``/v1/embeddings`` request (more: 413)."""
    max_chars: int = 8192
    """Characters per input text or query (more: 413); the model truncates tokens further."""
    max_k: int = 100
    """Largest ``k`` a search may ask for (more: 422)."""
    max_n_thoughts: int = 8
    """Largest ``n_thoughts`` a request may ask for (more: 422)."""
    max_new_tokens: int = 256
    """Largest thought budget a request may ask for (more: 422)."""
    max_body_bytes: int = 2 * 1024 * 1024
    """Request bodies larger than this are refused with 413 before they are parsed."""
    max_batch: int = 32
    """Micro-batching: most texts in one model call (1 = one request at a time)."""
    max_wait_ms: float = 5.0
    """Micro-batching: how long the first request of a batch waits for company."""
    max_queue: int = 1024
    """Texts waiting for the model; beyond this requests get 503 (back-pressure, bounded memory)."""
    query_cache: int = 4096
    """Query answers kept in memory (least recently used dropped first), keyed by text and generation
    settings; only reproducible ones are kept (no thinking, greedy, or a fixed seed). 0 = off."""
    snippet_chars: int = 240
    """Characters of document text shown per search hit."""
    api_key: str | None = None
    """If set, ``/v1/*`` requires ``Authorization: Bearer <key>`` (see :meth:`from_env`)."""
    cors_origins: list[str] = field(default_factory=list)
    """Origins allowed by CORS; empty = CORS off (the browser's same-origin policy applies)."""

    def validate(self) -> ServeSettings:
        """Raise :class:`InputError` for a setting out of range; return ``self``."""
        minimum = {name: 1 for name in ("max_inputs", "max_chars", "max_k", "max_n_thoughts", "max_body_bytes",
                                        "max_batch", "max_queue", "snippet_chars")}
        minimum["query_cache"] = 0
        for name, lowest in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
                raise InputError(f"serve setting {name} must be an integer >= {lowest}, got {value!r}")
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 0:
            raise InputError(f"serve setting max_new_tokens must be >= 0, got {self.max_new_tokens!r}")
        if not isinstance(self.max_wait_ms, (int, float)) or self.max_wait_ms < 0:
            raise InputError(f"serve setting max_wait_ms must be >= 0, got {self.max_wait_ms!r}")
        if not self.model_id or not isinstance(self.model_id, str):
            raise InputError("serve setting model_id must be a non-empty string")
        if self.api_key is not None and not self.api_key.strip():
            raise InputError("the API key is empty (unset the variable to run without a key)")
        return self

    @classmethod
    def from_env(cls, api_key_env: str = DEFAULT_API_KEY_ENV, **overrides: object) -> ServeSettings:
        """Settings with the API key read from the environment variable ``api_key_env`` (if set)."""
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise InputError(f"unknown serve settings: {sorted(unknown)}")
        key = os.environ.get(api_key_env) or None
        return cls(**{"api_key": key, **overrides}).validate()   # type: ignore[arg-type]
