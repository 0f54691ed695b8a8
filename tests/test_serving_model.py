"""The server with the tiny real model: micro-batching does not change answers, and the official
``openai`` client gets the vectors ``O1Embedder`` computes in-process (acceptance 1)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
import httpx  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "browser"))
from live_server import app_server  # noqa: E402

from o1embedder.serving import ServeSettings, create_app  # noqa: E402

THINK = {"n_thoughts": 2, "max_new_tokens": 8, "temperature": 0.7, "top_p": 0.95}
QUERIES = ["who designed tokyo tower?", "what causes scurvy", "rivers and bridges", "a quick brown fox jumps"]
DOCS = ["Tokyo Tower was designed by Tachu Naito.", "Scurvy: lack of vitamin C.", "the lazy dog",
        "Architects design bridges over rivers in cities."]


async def _post_all(app, bodies: list[dict]) -> list[dict]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        responses = await asyncio.gather(*(client.post("/v1/embeddings", json=b) for b in bodies))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [r.json()["data"] for r in responses]


def _serve(app, bodies: list[dict], together: bool) -> list[dict]:
    if together:
        return asyncio.run(_post_all(app, bodies))
    return [asyncio.run(_post_all(app, [b]))[0] for b in bodies]


@pytest.mark.parametrize("kind", ["query-think", "query-plain", "document"])
def test_a_request_inside_a_micro_batch_equals_it_served_alone(tiny_qwen, kind: str) -> None:
    if kind == "document":
        bodies = [{"input": d} for d in DOCS]
    else:
        extra = {**THINK, "return_thoughts": True} if kind == "query-think" else {"think": False}
        bodies = [{"input": q, "input_type": "query", **extra} for q in QUERIES]
    app = create_app(tiny_qwen, settings=ServeSettings(model_id="tiny", max_wait_ms=300, query_cache=0))
    engine = app.state.engine
    together = _serve(app, bodies, together=True)
    calls_together = engine.batcher.stats.calls
    alone = _serve(app, bodies, together=False)
    engine.batcher.stop()
    assert calls_together == 1, engine.batcher.stats          # the four requests shared one model call
    assert engine.batcher.stats.calls == 1 + len(bodies)
    for t, a in zip(together, alone):
        np.testing.assert_allclose(t[0]["embedding"], a[0]["embedding"], atol=1e-5, rtol=0)
        assert t[0].get("thoughts") == a[0].get("thoughts")
    if kind == "query-think":
        assert all(len(t[0]["thoughts"]) == 2 for t in together)
        found = tiny_qwen.think([QUERIES[0]], **THINK)
        direct = tiny_qwen.encode_queries([QUERIES[0]], **THINK)
        np.testing.assert_allclose(found.pooled, direct, atol=1e-6, rtol=0)
        np.testing.assert_allclose(alone[0][0]["embedding"], direct[0], atol=1e-6, rtol=0)
        assert alone[0][0]["thoughts"] == found.texts[0]


def test_reproducible_queries_are_answered_from_the_cache(tiny_qwen) -> None:
    app = create_app(tiny_qwen, settings=ServeSettings(model_id="tiny", query_cache=2))
    engine = app.state.engine
    body = {"input": QUERIES[:2], "input_type": "query", "return_thoughts": True, **THINK}
    first = _serve(app, [body], together=False)[0]
    calls = engine.batcher.stats.calls
    again = _serve(app, [body], together=False)[0]
    assert engine.batcher.stats.calls == calls                      # no model call the second time
    assert again == first                                           # same vectors and thoughts
    mixed = _serve(app, [{**body, "input": [QUERIES[2], QUERIES[0]]}], together=False)[0]
    assert engine.batcher.stats.calls == calls + 1                  # only the new query went to the model
    assert mixed[1]["embedding"] == first[0]["embedding"]
    assert engine.cache.stats() == {"size": 2, "entries": 2, "hits": 3, "misses": 3}
    fresh = create_app(tiny_qwen, settings=ServeSettings(model_id="tiny", query_cache=0))
    assert _serve(fresh, [body], together=False)[0][0]["thoughts"] == first[0]["thoughts"]
    engine.batcher.stop()
    fresh.state.engine.batcher.stop()


def test_only_reproducible_generations_are_cached() -> None:
    from types import SimpleNamespace

    from o1embedder.serving.engine import Engine, Generation, QueryCache

    model = SimpleNamespace(settings=SimpleNamespace(think=SimpleNamespace(temperature=0.7, seed=None)))
    engine = Engine(model, ServeSettings())
    assert not engine.reproducible(Generation())                     # sampling with no seed: never cached
    assert engine.reproducible(Generation(seed=3)) and engine.reproducible(Generation(temperature=0.0))
    assert engine.reproducible(Generation(think=False))
    engine.batcher.stop()
    cache = QueryCache(2)
    for text in ("a", "b"):
        cache.put((Generation(), text), text)                        # type: ignore[arg-type]
    assert cache.get((Generation(), "a")) == "a"                     # "a" is now the most recent
    cache.put((Generation(), "c"), "c")                              # type: ignore[arg-type]
    assert cache.get((Generation(), "b")) is None and cache.get((Generation(), "a")) == "a"


def test_openai_client_gets_the_in_process_vectors(tiny_qwen) -> None:
    openai = pytest.importorskip("openai")
    app = create_app(tiny_qwen, settings=ServeSettings(model_id="tiny-o1", api_key="k-1"))
    with app_server(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="k-1", max_retries=0)
        assert [m.id for m in client.models.list()] == ["tiny-o1", "tiny-o1:query"]
        # a plain client (no extra fields) gets thinking query vectors from the query id
        by_id = client.embeddings.create(model="tiny-o1:query", input=QUERIES[:2])
        with pytest.raises(openai.UnprocessableEntityError, match="input_type"):
            client.embeddings.create(model="tiny-o1:query", input="x", extra_body={"input_type": "document"})
        with pytest.raises(openai.NotFoundError, match="tiny-o1:query"):
            client.embeddings.create(model="other", input="x")
        default = client.embeddings.create(model="tiny-o1", input=DOCS)                 # base64 on the wire
        as_float = client.embeddings.create(model="tiny-o1", input=DOCS, encoding_format="float")
        one = client.embeddings.create(model="tiny-o1", input=DOCS[0])
        queries = client.embeddings.create(model="tiny-o1", input=QUERIES[:2],
                                           extra_body={"input_type": "query", **THINK})
        plain = client.embeddings.create(model="tiny-o1", input=QUERIES[:2],
                                         extra_body={"input_type": "query", "think": False})
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).embeddings.create(
                model="tiny-o1", input="x")
        with pytest.raises(openai.UnprocessableEntityError, match="empty"):
            client.embeddings.create(model="tiny-o1", input="")
    docs = tiny_qwen.encode_corpus(DOCS)
    assert default.usage.prompt_tokens > 0 and default.model == "tiny-o1"
    for response in (default, as_float):
        assert np.array_equal(np.array([d.embedding for d in response.data], dtype=np.float32), docs)
    assert np.array_equal(np.array(one.data[0].embedding, dtype=np.float32), docs[0])
    assert by_id.model == "tiny-o1:query"
    assert np.array_equal(np.array([d.embedding for d in by_id.data], dtype=np.float32),
                          tiny_qwen.encode_queries(QUERIES[:2]))          # the served (the model's) defaults
    expected_q = tiny_qwen.encode_queries(QUERIES[:2], **THINK)
    assert np.array_equal(np.array([d.embedding for d in queries.data], dtype=np.float32), expected_q)
    expected_plain = tiny_qwen.encode_queries(QUERIES[:2], think=False)
    assert np.array_equal(np.array([d.embedding for d in plain.data], dtype=np.float32), expected_plain)
