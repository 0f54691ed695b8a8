"""Settings saved beside every O1 model (``o1embedder.json``) so that loading restores them exactly."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import InputError
from ..templates import TemplateConfig

SETTINGS_FILE = "o1embedder.json"
FORMAT_VERSION = 1

AUTO = "auto"
"""``think="auto"``: think only for the queries whose no-thinking search is unsure (needs a corpus)."""

AUTO_NEEDS_SEARCH = (
    'think="auto" decides per query from a no-thinking search of a corpus, and there is none here; '
    'search with DenseRetriever.search or open_retriever(..., think="auto"), `o1emb search --auto-think` '
    'or POST /v1/search with "think": "auto", or give think=True or False')


def check_think(think: Any, *, allow_auto: bool = True, where: str = "") -> bool | str:
    """The one meaning of ``think`` across the library, the CLI, MTEB and the server: ``True``,
    ``False`` or ``"auto"``. Anything else (``"yes"``, ``1``, ``None``) is an :class:`InputError`, and
    so is ``"auto"`` where there is no corpus to search (``allow_auto=False``: ``encode_queries``, the
    MTEB wrapper, ``/v1/embeddings``); ``where`` prefixes the message with the entry point.

    Checked with ``is``, not truthiness: a truthy string used to mean "always think" silently.
    """
    prefix = f"{where}: " if where else ""
    if think is True or think is False:
        return think
    if isinstance(think, str) and think == AUTO:
        if allow_auto:
            return AUTO
        raise InputError(prefix + AUTO_NEEDS_SEARCH)
    raise InputError(f'{prefix}think must be true, false or "auto", got {think!r}')


@dataclass
class ThinkConfig:
    """How queries think. Defaults follow the reference inference code."""

    n_thoughts: int = 3
    """Thoughts sampled per query; the query vector is the mean of their normalised vectors."""
    temperature: float = 0.1
    """Sampling temperature; 0 means greedy decoding."""
    top_p: float = 0.9
    """Nucleus sampling mass."""
    max_new_tokens: int = 128
    """Thought budget in tokens (EOS is added when it runs out)."""
    seed: int | None = 0
    """Seed of the sampler; ``None`` draws a fresh one each call (not reproducible)."""
    repetition_penalty: float = 1.0
    """``generate``'s ``repetition_penalty``: the logit of every token id already in the sequence (prompt
    and thought so far; not padding) is divided by it where positive, multiplied where negative; 1 = off."""
    no_repeat_ngram_size: int = 0
    """``generate``'s ``no_repeat_ngram_size``: a token that would complete an n-gram already in the
    sequence (prompt and thought so far; not padding) is banned; 0 = off."""
    exit_eps: float = 0.0
    """Early exit on convergence: a thought stops once the cosine between the query vectors it would give
    if cut at two consecutive checks is >= 1 - ``exit_eps`` for ``exit_patience`` checks in a row; 0 = off."""
    exit_every: int = 8
    """Thought tokens between two early-exit checks (each feeds ``[EOS, <emb>]`` once on the side)."""
    exit_patience: int = 2
    """Consecutive converged checks that stop a thought."""
    plain_weight: float = 0.0
    """Weight of the query's own no-thinking vector in its thinking vector: ``w * plain + (1 - w) *
    pooled thoughts`` (re-normalised when the model normalises), as HyDE keeps the query beside its
    generated documents; 0 = the paper's vector (the thoughts' alone). Thoughts do not depend on it."""

    def validate(self) -> ThinkConfig:
        if not isinstance(self.n_thoughts, int) or self.n_thoughts < 1:
            raise InputError(f"n_thoughts must be an integer >= 1, got {self.n_thoughts!r}")
        if not isinstance(self.temperature, (int, float)) or self.temperature < 0:
            raise InputError(f"temperature must be >= 0, got {self.temperature!r}")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be an integer >= 0, got {self.max_new_tokens!r}")
        if self.seed is not None and not isinstance(self.seed, int):
            raise InputError(f"seed must be an integer or None, got {self.seed!r}")
        if not _number(self.repetition_penalty) or not self.repetition_penalty > 0:
            raise InputError(f"repetition_penalty must be > 0 (1 = off), got {self.repetition_penalty!r}")
        if not _count(self.no_repeat_ngram_size, 0):
            raise InputError(f"no_repeat_ngram_size must be an integer >= 0 (0 = off), got {self.no_repeat_ngram_size!r}")
        if not _number(self.exit_eps) or not 0 <= self.exit_eps < 1:
            raise InputError(f"exit_eps must be in [0, 1) (0 = off), got {self.exit_eps!r}")
        if not _count(self.exit_every, 1):
            raise InputError(f"exit_every must be an integer >= 1, got {self.exit_every!r}")
        if not _count(self.exit_patience, 1):
            raise InputError(f"exit_patience must be an integer >= 1, got {self.exit_patience!r}")
        if not _number(self.plain_weight) or not 0 <= self.plain_weight < 1:
            raise InputError(f"plain_weight must be in [0, 1) (0 = off), got {self.plain_weight!r}")
        return self


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _count(x: Any, least: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= least


def _from_dict(cls: type, data: dict[str, Any], what: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise InputError(f"unknown {what} settings: {sorted(unknown)}")
    return cls(**data)


@dataclass
class O1Settings:
    """Everything besides the weights that decides what vector a text gets."""

    template: TemplateConfig = field(default_factory=TemplateConfig)
    think: ThinkConfig = field(default_factory=ThinkConfig)
    pooling: str = "emb_token"
    """Final-layer hidden state (after the final norm) at the ``<emb>`` token."""
    normalize: bool = True
    """L2-normalise vectors (inner product = cosine)."""
    library_version: str = ""
    format_version: int = FORMAT_VERSION
    identity: dict[str, str] = field(default_factory=dict)
    """Written by ``save_pretrained``: ``fingerprint`` (the model's) and ``weights_digest`` (the hash
    of the saved values). A load whose values hash to ``weights_digest`` keeps ``fingerprint``, so a
    model saved in float16 keeps the fingerprint of the float32 weights it was rounded from."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> O1Settings:
        data = dict(data)
        template = TemplateConfig.from_dict(data.pop("template", {}))
        think = _from_dict(ThinkConfig, data.pop("think", {}), "think")
        settings = _from_dict(cls, data, "model")
        settings.template, settings.think = template, think
        if settings.pooling != "emb_token":
            raise InputError(f"unknown pooling {settings.pooling!r} (supported: 'emb_token')")
        return settings
