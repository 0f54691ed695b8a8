"""The FastAPI app factory: ``create_app(model, index=..., corpus=..., settings=...)``.

Dependencies come in as objects, so tests pass fakes (a keyword "model", a dict "index") and the
command line passes the real ones (:mod:`o1embedder.serving.server`). Routes:

- ``GET /`` the search page (``static/``), ``GET /healthz``, ``GET /v1/models[/{id}]``
- ``POST /v1/embeddings`` OpenAI-compatible, plus query embedding with thinking
- ``POST /v1/search`` query -> thoughts + top-k documents
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..log import get_logger
from . import http_errors
from .engine import EmbeddingModel, Engine, Generation, SearchIndex
from .guards import ApiKeyGuard, BodyLimit
from .http_errors import ApiError, invalid, too_large
from .schemas import (
    EmbeddingsRequest,
    EmbeddingsResponse,
    ErrorResponse,
    GenerationFields,
    ModelList,
    SearchRequest,
    SearchResponse,
)
from .settings import ServeSettings

logger = get_logger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 422, 503)}


def create_app(model: EmbeddingModel, *, index: SearchIndex | None = None,
               corpus: Mapping[str, Mapping[str, str]] | None = None,
               settings: ServeSettings | None = None) -> Any:
    """A FastAPI app serving ``model`` (and ``index``, with titles/snippets from ``corpus``)."""
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    settings = (settings or ServeSettings()).validate()
    engine = Engine(model, settings, index=index, corpus=corpus)

    @asynccontextmanager
    async def lifespan(_: Any) -> Any:
        engine.batcher.start()
        yield
        engine.batcher.stop()

    app = FastAPI(title="o1embedder", version=_version(), lifespan=lifespan, docs_url="/docs",
                  redoc_url=None, description="O1 Embedder: retrievers that think before they retrieve.")
    app.state.engine, app.state.settings = engine, settings
    http_errors.install(app)
    _middleware(app, settings)
    _page_routes(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "auth": settings.api_key is not None, **engine.health()}

    @app.get("/v1/models", response_model=ModelList, responses=_ERRORS)
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [_card(settings.model_id), _card(settings.model_id + QUERY_SUFFIX)]}

    @app.get("/v1/models/{model_id:path}", responses=_ERRORS)
    async def model_card(model_id: str) -> dict[str, Any]:
        _check_model(model_id, settings)
        return _card(model_id)

    @app.post("/v1/embeddings", response_model=EmbeddingsResponse, responses=_ERRORS)
    async def embeddings(body: EmbeddingsRequest) -> Any:
        return await _embeddings(engine, settings, body)

    @app.post("/v1/search", response_model=SearchResponse, responses=_ERRORS)
    async def search(body: SearchRequest) -> Any:
        return await _search(engine, settings, body)

    return app


def _middleware(app: Any, settings: ServeSettings) -> None:
    """Outermost first: CORS (only when origins are given), the API key, the body size limit."""
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ApiKeyGuard, api_key=settings.api_key)        # added later = runs earlier
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])


def _version() -> str:
    from .. import __version__

    return __version__


def _page_routes(app: Any) -> None:
    from fastapi.responses import FileResponse

    @app.get("/", include_in_schema=False)
    async def page() -> Any:
        return FileResponse(STATIC / "index.html", media_type="text/html",
                            headers={"Content-Security-Policy": PAGE_POLICY, "X-Content-Type-Options": "nosniff",
                                     "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"})


_CREATED = int(time.time())


def _card(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": _CREATED, "owned_by": "o1embedder"}


QUERY_SUFFIX = ":query"
"""``MODEL:query``, the served model's second id: ``/v1/embeddings`` with it embeds every input as a query
(thinking with the served defaults), so plain OpenAI clients (LangChain's ``OpenAIEmbeddings``, a vector
database's OpenAI embedding function), which send no ``input_type``, get thinking query vectors."""


def _check_model(name: str | None, settings: ServeSettings) -> bool:
    """``True`` when ``name`` is the query id (``MODEL:query``); a model not served here is a 404."""
    if name is None or name == settings.model_id:
        return False
    if name == settings.model_id + QUERY_SUFFIX:
        return True
    raise ApiError(404, f"model {name!r} is not served here; this server serves {settings.model_id!r} (documents "
                   f"and queries by input_type) and {settings.model_id + QUERY_SUFFIX!r} (queries; GET /v1/models)",
                   type="not_found_error", param="model", code="model_not_found")


def _check_text(text: str, settings: ServeSettings, param: str) -> None:
    if len(text) > settings.max_chars:
        raise too_large(f"{param} has {len(text)} characters; the limit is {settings.max_chars}", param)
    if not text.strip():
        raise invalid(f"{param} is empty (send non-blank text)", param)


def _generation(body: GenerationFields, think: bool, settings: ServeSettings) -> Generation:
    if body.n_thoughts is not None and body.n_thoughts > settings.max_n_thoughts:
        raise invalid(f"n_thoughts must be at most {settings.max_n_thoughts}, got {body.n_thoughts}", "n_thoughts")
    if body.max_new_tokens is not None and body.max_new_tokens > settings.max_new_tokens:
        raise invalid(f"max_new_tokens must be at most {settings.max_new_tokens}, got {body.max_new_tokens}",
                      "max_new_tokens")
    if not think:
        return Generation(think=False)
    return Generation(True, body.n_thoughts, body.temperature, body.top_p, body.max_new_tokens, body.seed)


_QUERY_ONLY = ("think", "return_thoughts", "n_thoughts", "temperature", "top_p", "max_new_tokens", "seed")


def _embedding_generation(body: EmbeddingsRequest, settings: ServeSettings) -> Generation | None:
    if body.input_type == "document":
        misplaced = [f for f in _QUERY_ONLY if f in body.model_fields_set]
        if misplaced:
            raise invalid(f"{misplaced[0]} applies to input_type 'query' only (documents never think)",
                          misplaced[0])
        return None
    return _generation(body, _embedding_think(body.think), settings)


def _embedding_think(think: bool | str) -> bool:
    """``think`` of ``/v1/embeddings``: a bool. ``"auto"`` is accepted by the schema only to be refused
    here with the library's one message (it needs a corpus to search: ``/v1/search`` has one), rather
    than with pydantic's "Input should be a valid boolean"."""
    from ..errors import InputError
    from ..retrieval.adaptive import check_think

    try:
        return bool(check_think(think, allow_auto=False, where="/v1/embeddings"))
    except InputError as exc:
        raise invalid(str(exc), "think") from None


def _auto_rule(engine: Engine, body: SearchRequest) -> Any:
    """``think="auto"``'s rule for a search request (``None`` without ``"auto"``); a knob that does not
    apply (without ``"auto"``, two of them, a share or threshold for a model without a policy) is a 422."""
    from ..errors import InputError
    from ..retrieval.adaptive import KNOBS, auto_rule

    given = [name for name in KNOBS if getattr(body, name) is not None]
    if body.think != "auto":
        misplaced = [name for name in given if name != "auto_margin"]    # a margin without "auto": ignored, as before
        if misplaced:
            raise invalid(f"{misplaced[0]} applies to think 'auto' only", misplaced[0])
        return None
    try:
        return auto_rule(getattr(engine.model, "think_policy", None),
                         **{name: getattr(body, name) for name in KNOBS})
    except InputError as exc:
        raise invalid(str(exc), given[-1] if given else "think") from None


def _encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return np.asarray(vector, dtype=np.float32).tolist()


async def _embeddings(engine: Engine, settings: ServeSettings, body: EmbeddingsRequest) -> Any:
    from fastapi.responses import JSONResponse

    if _check_model(body.model, settings):             # MODEL:query: every input is a query
        if "input_type" in body.model_fields_set and body.input_type != "query":
            raise invalid(f"model {body.model!r} embeds queries; input_type 'document' asks for the other id "
                          f"{settings.model_id!r}", "input_type")
        body = body.model_copy(update={"input_type": "query"})
    texts = body.texts()
    if not texts:
        raise invalid("input is empty (send a string or a non-empty list of strings)", "input")
    if len(texts) > settings.max_inputs:
        raise too_large(f"input has {len(texts)} texts; the limit is {settings.max_inputs} per request", "input")
    for i, text in enumerate(texts):
        _check_text(text, settings, "input" if isinstance(body.input, str) else f"input[{i}]")
    if body.dimensions is not None and body.dimensions != engine.dim:
        raise invalid(f"dimensions must be {engine.dim} (this model's size; it cannot shorten vectors)",
                      "dimensions")
    generation = _embedding_generation(body, settings)
    results = await engine.embed(texts, generation)
    data = []
    for i, r in enumerate(results):
        item: dict[str, Any] = {"object": "embedding", "index": i, "embedding": _encode(r.vector, body.encoding_format)}
        if body.return_thoughts:
            item["thoughts"] = r.thoughts
        data.append(item)
    tokens = sum(r.tokens for r in results)
    return JSONResponse({"object": "list", "data": data, "model": body.model or settings.model_id,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


async def _search(engine: Engine, settings: ServeSettings, body: SearchRequest) -> Any:
    from fastapi.responses import JSONResponse

    if engine.index is None:
        raise ApiError(404, "this server has no index; start it with --index to enable /v1/search",
                       type="not_found_error", code="no_index")
    _check_text(body.query, settings, "query")
    if body.k > settings.max_k:
        raise invalid(f"k must be at most {settings.max_k}, got {body.k}", "k")
    generation = _generation(body, body.think is not False, settings)
    rule = _auto_rule(engine, body)
    start = time.perf_counter()
    if rule is not None:
        embedded, hits, thought = await engine.search_auto(body.query, body.k, generation, rule)
    else:
        (embedded, hits), thought = await engine.search(body.query, body.k, generation), generation.think
    return JSONResponse({"query": body.query, "think": body.think, "thought": thought, "thoughts": embedded.thoughts,
                         "results": hits, "model": settings.model_id,
                         "took_ms": round((time.perf_counter() - start) * 1000, 2)})
