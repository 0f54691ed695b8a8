"""The HTTP API with fakes (a keyword model, a brute-force index): routes, wire format, limits,
errors (acceptance 3: malformed and oversized requests get a 4xx with a clear message, never a 5xx),
API key, CORS, and the page."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "browser"))
from fakes import FakeIndex, FakeModel, corpus  # noqa: E402

from o1embedder.serving import ServeSettings, create_app  # noqa: E402

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}


def make_client(**settings: object) -> tuple[TestClient, FakeModel]:
    model, docs = FakeModel(), corpus()
    options = {"model_id": "fake-o1", "api_key": KEY, "max_inputs": 8, "max_chars": 200, "max_k": 20,
               "max_body_bytes": 64 * 1024, **settings}
    app = create_app(model, index=FakeIndex(model, docs), corpus=docs, settings=ServeSettings(**options))
    return TestClient(app, raise_server_exceptions=False), model


@pytest.fixture()
def client() -> TestClient:
    test_client, _ = make_client()
    with test_client:
        yield test_client


def test_embeddings_float_and_base64_agree_with_the_model(client: TestClient) -> None:
    texts = ["alpha beta", "tower river tower"]
    expected = FakeModel().encode_corpus(texts)
    as_float = client.post("/v1/embeddings", json={"input": texts, "model": "fake-o1"}, headers=AUTH).json()
    as_b64 = client.post("/v1/embeddings", json={"input": texts, "encoding_format": "base64"}, headers=AUTH).json()
    assert as_float["object"] == "list" and as_float["model"] == "fake-o1"
    assert [d["index"] for d in as_float["data"]] == [0, 1]
    assert as_float["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    floats = np.array([d["embedding"] for d in as_float["data"]], dtype=np.float32)
    decoded = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in as_b64["data"]])
    assert np.array_equal(floats, expected) and np.array_equal(decoded, expected)
    single = client.post("/v1/embeddings", json={"input": "alpha beta"}, headers=AUTH).json()
    assert np.array_equal(np.array(single["data"][0]["embedding"], dtype=np.float32), expected[0])


def test_query_embeddings_think_and_return_thoughts(client: TestClient) -> None:
    body = {"input": ["alpha"], "input_type": "query", "n_thoughts": 3, "return_thoughts": True}
    data = client.post("/v1/embeddings", json=body, headers=AUTH).json()["data"][0]
    assert data["thoughts"] == [f"thinking about alpha #{j}" for j in range(3)]
    plain = client.post("/v1/embeddings", json={**body, "think": False}, headers=AUTH).json()["data"][0]
    assert plain["thoughts"] == [] and plain["embedding"] != data["embedding"]
    assert "thoughts" not in client.post("/v1/embeddings", json={"input": "alpha", "input_type": "query"},
                                         headers=AUTH).json()["data"][0]


def test_search_returns_thoughts_and_ranked_documents_with_texts(client: TestClient) -> None:
    answer = client.post("/v1/search", json={"query": "tower river", "k": 3}, headers=AUTH).json()
    assert answer["think"] is True and answer["thoughts"] == ["thinking about tower river #0",
                                                             "thinking about tower river #1"]
    hits = answer["results"]
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    assert hits[0]["id"] == "d6" and hits[0]["title"] == "Tower 6" and "tower" in hits[0]["snippet"]
    off = client.post("/v1/search", json={"query": "tower river", "k": 3, "think": False}, headers=AUTH).json()
    assert off["thoughts"] == [] and off["results"][0]["id"] == "d7"


def test_snippets_are_cut(client: TestClient) -> None:
    test_client, _ = make_client(snippet_chars=30)
    with test_client:
        hit = test_client.post("/v1/search", json={"query": "alpha", "k": 1}, headers=AUTH).json()["results"][0]
    assert len(hit["snippet"]) <= 31 and hit["snippet"].endswith("\u2026")


def test_models_health_page(client: TestClient) -> None:
    assert client.get("/v1/models", headers=AUTH).json()["data"][0]["id"] == "fake-o1"
    assert client.get("/v1/models/fake-o1", headers=AUTH).json()["id"] == "fake-o1"
    health = client.get("/healthz").json()                     # open without a key
    assert health["status"] == "ok" and health["auth"] is True and health["index"]["count"] == 12
    page = client.get("/")
    assert page.status_code == 200 and "search-form" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200


def test_no_index_means_no_search() -> None:
    app = create_app(FakeModel(), settings=ServeSettings(model_id="m"))
    with TestClient(app) as test_client:
        response = test_client.post("/v1/search", json={"query": "alpha"})
        assert response.status_code == 404 and "--index" in response.json()["error"]["message"]
        assert test_client.get("/healthz").json()["index"] is None


def test_cors_is_off_by_default_and_on_when_asked() -> None:
    origin = {"Origin": "http://elsewhere.example"}
    closed, _ = make_client()
    with closed:
        assert "access-control-allow-origin" not in closed.get("/v1/models", headers={**AUTH, **origin}).headers
    opened, _ = make_client(cors_origins=["http://elsewhere.example"])
    with opened:
        preflight = opened.options("/v1/search", headers={**origin, "Access-Control-Request-Method": "POST"})
        assert preflight.headers["access-control-allow-origin"] == "http://elsewhere.example"


def test_settings_are_validated() -> None:
    from o1embedder.errors import InputError

    with pytest.raises(InputError, match="max_batch"):
        ServeSettings(max_batch=0).validate()
    with pytest.raises(InputError, match="unknown"):
        ServeSettings.from_env(nope=1)


BIG = "alpha " * 100                       # 600 characters > max_chars 200
BAD_REQUESTS = [
    # (name, method, path, body (dict: JSON; bytes: raw), headers, expected status)
    ("no key", "post", "/v1/embeddings", {"input": "alpha"}, {}, 401),
    ("wrong key", "post", "/v1/embeddings", {"input": "alpha"}, {"Authorization": "Bearer nope"}, 401),
    ("not bearer", "post", "/v1/search", {"query": "alpha"}, {"Authorization": f"Basic {KEY}"}, 401),
    ("models without key", "get", "/v1/models", None, {}, 401),
    ("bad json", "post", "/v1/embeddings", b'{"input": "alpha",', None, 400),
    ("body not an object", "post", "/v1/embeddings", b'["alpha"]', None, 422),
    ("missing input", "post", "/v1/embeddings", {"model": "fake-o1"}, None, 422),
    ("input a number", "post", "/v1/embeddings", {"input": 42}, None, 422),
    ("input null", "post", "/v1/embeddings", {"input": None}, None, 422),
    ("input token ids", "post", "/v1/embeddings", {"input": [1, 2, 3]}, None, 422),
    ("input mixed list", "post", "/v1/embeddings", {"input": ["a", 3]}, None, 422),
    ("empty string", "post", "/v1/embeddings", {"input": ""}, None, 422),
    ("blank string", "post", "/v1/embeddings", {"input": "   "}, None, 422),
    ("empty list", "post", "/v1/embeddings", {"input": []}, None, 422),
    ("too many inputs", "post", "/v1/embeddings", {"input": ["alpha"] * 9}, None, 413),
    ("input too long", "post", "/v1/embeddings", {"input": BIG}, None, 413),
    ("one of the inputs too long", "post", "/v1/embeddings", {"input": ["alpha", BIG]}, None, 413),
    ("huge body", "post", "/v1/embeddings", {"input": "alpha " * 20000}, None, 413),
    ("unknown model", "post", "/v1/embeddings", {"input": "alpha", "model": "gpt-4"}, None, 404),
    ("bad encoding", "post", "/v1/embeddings", {"input": "alpha", "encoding_format": "int8"}, None, 422),
    ("wrong dimensions", "post", "/v1/embeddings", {"input": "alpha", "dimensions": 4}, None, 422),
    ("unknown field", "post", "/v1/embeddings", {"input": "alpha", "thinkk": True}, None, 422),
    ("think on a document", "post", "/v1/embeddings", {"input": "alpha", "n_thoughts": 2}, None, 422),
    ("bad input_type", "post", "/v1/embeddings", {"input": "alpha", "input_type": "passage"}, None, 422),
    ("n_thoughts 0", "post", "/v1/embeddings", {"input": "a", "input_type": "query", "n_thoughts": 0}, None, 422),
    ("n_thoughts huge", "post", "/v1/search", {"query": "alpha", "n_thoughts": 1000}, None, 422),
    ("max_new_tokens huge", "post", "/v1/search", {"query": "alpha", "max_new_tokens": 10**9}, None, 422),
    ("top_p 0", "post", "/v1/search", {"query": "alpha", "top_p": 0}, None, 422),
    ("negative temperature", "post", "/v1/search", {"query": "alpha", "temperature": -1}, None, 422),
    ("seed a string", "post", "/v1/search", {"query": "alpha", "seed": "x"}, None, 422),
    ("think a string", "post", "/v1/search", {"query": "alpha", "think": "yes"}, None, 422),
    ("k = 0", "post", "/v1/search", {"query": "alpha", "k": 0}, None, 422),
    ("k = 10^6", "post", "/v1/search", {"query": "alpha", "k": 10**6}, None, 422),
    ("k negative", "post", "/v1/search", {"query": "alpha", "k": -3}, None, 422),
    ("k a float", "post", "/v1/search", {"query": "alpha", "k": 2.5}, None, 422),
    ("k a string", "post", "/v1/search", {"query": "alpha", "k": "10"}, None, 422),
    ("query missing", "post", "/v1/search", {"k": 3}, None, 422),
    ("query empty", "post", "/v1/search", {"query": ""}, None, 422),
    ("query a list", "post", "/v1/search", {"query": ["alpha"]}, None, 422),
    ("query too long", "post", "/v1/search", {"query": BIG}, None, 413),
    ("empty body", "post", "/v1/search", b"", None, 422),
    ("wrong method", "get", "/v1/embeddings", None, None, 405),
    ("unknown route", "post", "/v1/completions", {"prompt": "x"}, None, 404),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_a_clear_4xx(client: TestClient, case: tuple) -> None:
    name, method, path, body, headers, status = case
    headers = AUTH if headers is None else headers
    if isinstance(body, bytes):
        response = client.request(method, path, content=body, headers={**headers, "Content-Type": "application/json"})
    else:
        response = client.request(method, path, json=body, headers=headers)
    assert response.status_code == status, (name, response.status_code, response.text)
    error = response.json()["error"]
    assert error["message"] and len(error["message"]) < 400 and "Traceback" not in error["message"]
    assert error["type"]


def test_the_table_is_big_enough_and_the_server_keeps_working(client: TestClient) -> None:
    assert len(BAD_REQUESTS) >= 20
    assert client.post("/v1/search", json={"query": "alpha", "k": 1}, headers=AUTH).status_code == 200


def test_model_failure_inside_a_batch_is_a_4xx_for_that_request_only(client: TestClient) -> None:
    response = client.post("/v1/embeddings", json={"input": ["alpha", "BOOM"]}, headers=AUTH)
    assert response.status_code == 422 and "exploded" in response.json()["error"]["message"]


def test_chunked_bodies_are_limited_too(client: TestClient) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    huge = client.post("/v1/embeddings", content=(b"x" * 1024 for _ in range(100)), headers=headers)
    assert huge.status_code == 413 and "larger than" in huge.json()["error"]["message"]
    small = client.post("/v1/embeddings", content=iter([b'{"input": ', b'"alpha"}']), headers=headers)
    assert small.status_code == 200, small.text
