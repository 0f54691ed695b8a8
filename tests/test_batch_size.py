"""``batch_size`` bounds every forward of ``O1Embedder``: documents, queries without thinking, queries
with given thoughts, and thinking. (The no-thinking and given-thought paths used to run
``batch_size * 4`` texts per forward, so lowering ``batch_size`` to fit memory did not work there.)

The decoder's forward is hooked and the batch dimension of every call recorded; 7 inputs with a
``batch_size`` of 3 (which does not divide 7) must give forwards of 3, 3 and 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

TEXTS = ["alpha beta", "gamma", "delta omega sigma", "number 11", "alpha", "beta gamma delta", "omega 3"]
BATCH = 3


@contextmanager
def forward_batches(model: Any, decode: str = "generic") -> Iterator[list[int]]:
    """Batch sizes of every decoder forward inside the block. ``decode="generic"``: the thinking steps
    go through the decoder's forward too (the static loop calls its layers directly)."""
    seen: list[int] = []

    def hook(_module: Any, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        seen.append(int(ids.shape[0]))

    handle = model.model.get_decoder().register_forward_pre_hook(hook, with_kwargs=True)
    before, model.decode = model.decode, decode
    try:
        yield seen
    finally:
        handle.remove()
        model.decode = before


@pytest.mark.parametrize("path", ["documents", "queries-no-think", "given-thoughts", "given-two-thoughts",
                                  "encode-query-no-think"])
def test_every_embedding_forward_is_at_most_batch_size(tiny_qwen, path: str) -> None:
    calls = {
        "documents": lambda m: m.encode_corpus(TEXTS, batch_size=BATCH),
        "queries-no-think": lambda m: m.encode_queries(TEXTS, think=False, batch_size=BATCH),
        "given-thoughts": lambda m: m.encode_queries(TEXTS, thoughts=[f"about {t}" for t in TEXTS],
                                                     batch_size=BATCH),
        "given-two-thoughts": lambda m: m.encode_queries(TEXTS, thoughts=[["one", "two"] for _ in TEXTS],
                                                         batch_size=BATCH),
        "encode-query-no-think": lambda m: m.encode(TEXTS, prompt_name="query", think=False, batch_size=BATCH),
    }
    with forward_batches(tiny_qwen) as seen:
        calls[path](tiny_qwen)
    sequences = 2 * len(TEXTS) if path == "given-two-thoughts" else len(TEXTS)
    assert max(seen) == BATCH and sum(seen) == sequences
    assert len(seen) == -(-sequences // BATCH)           # full batches, then the rest


@pytest.mark.parametrize("decode", ["generic", "auto"])
def test_thinking_forwards_are_at_most_batch_size(tiny_qwen, decode: str) -> None:
    """One thought per query: every forward (prefill, each decode step, the ``<emb>`` step) has at most
    ``batch_size`` rows. With ``n_thoughts`` samples a decode step carries ``batch_size * n_thoughts``
    rows (each query's prompt is prefilled once, then its cache is copied per sample), so batch_size
    counts queries there, as ``think(batch_size=...)`` documents."""
    options = {"max_new_tokens": 4, "temperature": 0.7}
    with forward_batches(tiny_qwen, decode) as seen:
        tiny_qwen.encode_queries(TEXTS, think=True, n_thoughts=1, batch_size=BATCH, **options)
    assert max(seen) == BATCH
    if decode == "generic":
        with forward_batches(tiny_qwen) as seen:
            tiny_qwen.encode_queries(TEXTS, think=True, n_thoughts=2, batch_size=BATCH, **options)
        prefills = [b for b in seen if b <= BATCH]
        assert max(prefills) == BATCH and max(seen) == 2 * BATCH


def test_encoder_passes_the_batch_size_through(tiny_qwen) -> None:
    """The retrieval encoder (``o1emb index|search|eval --batch-size``) relied on the x4; it now gets
    what the user asked for."""
    from o1embedder.retrieval import O1Encoder

    encoder = O1Encoder(tiny_qwen, think=False, cache_dir=False)
    with forward_batches(tiny_qwen) as seen:
        encoder.encode_queries(TEXTS, batch_size=BATCH)
        encoder.encode_documents(TEXTS, batch_size=BATCH)
    assert max(seen) == BATCH and len(seen) == 6
