"""Adapters for the harnesses people evaluate with: :mod:`o1embedder.integrations.mteb` (MTEB v2).

BEIR needs no adapter: ``DenseRetrievalExactSearch(O1Embedder.from_pretrained(...))`` works as it is,
because :class:`~o1embedder.model.O1Embedder` has ``encode_queries`` / ``encode_corpus`` with BEIR's
keywords (see ``tests/test_integrations.py``).
"""
