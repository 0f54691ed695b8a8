"""Wire schemas (pydantic): what the HTTP API accepts and answers.

``/v1/embeddings`` follows the OpenAI embeddings API, so the official client works unchanged; our
extension fields (``input_type``, ``think``, ``n_thoughts``, ... ``return_thoughts``) ride along in
the same body (the OpenAI client sends them with ``extra_body={...}``). Unknown fields are refused
(422), as the OpenAI API does, so a misspelt option is never silently ignored. Limits that depend on
the server's settings (inputs per request, characters, ``k``) are checked by the app, not here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_STRICT = ConfigDict(extra="forbid", strict=True)
MAX_SEED = 2**63 - 1


class GenerationFields(BaseModel):
    """How a query thinks; ``None`` = the model's default (``o1embedder.json``)."""

    model_config = _STRICT

    n_thoughts: int | None = Field(None, ge=1, description="thoughts sampled per query")
    temperature: float | None = Field(None, ge=0, le=10, description="sampling temperature (0 = greedy)")
    top_p: float | None = Field(None, gt=0, le=1, description="nucleus sampling mass")
    max_new_tokens: int | None = Field(None, ge=0, description="thought budget in tokens")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="sampling seed (same seed, same thoughts)")


class EmbeddingsRequest(GenerationFields):
    """``POST /v1/embeddings`` (OpenAI-compatible, plus the O1 extension fields)."""

    input: str | list[str] = Field(..., description="one text or a list of texts")
    model: str | None = Field(None, description="the served model id (GET /v1/models); default: it")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="'base64': little-endian float32 bytes, base64-encoded (the OpenAI client's default)")
    dimensions: int | None = Field(None, ge=1, description="must equal the model's dimension if given")
    user: str | None = Field(None, description="accepted for compatibility; ignored")
    input_type: Literal["document", "query"] = Field(
        "document", description="'document': embed without thinking; 'query': embed as a query")
    think: bool | Literal["auto"] = Field(
        True, description="queries only: think before embedding (False: the no-thinking vector). 'auto' is "
                          "refused here (it decides from a search; use POST /v1/search with think 'auto')")
    return_thoughts: bool = Field(False, description="queries only: add each input's thoughts to its result")

    @field_validator("input", mode="before")
    @classmethod
    def _no_token_ids(cls, value: Any) -> Any:
        if isinstance(value, list) and value and all(isinstance(v, (int, list)) for v in value):
            raise ValueError("token-id input (lists of integers) is not supported; send text")
        return value

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str
    thoughts: list[str] | None = None


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: Usage


class SearchRequest(GenerationFields):
    """``POST /v1/search``: one query, its thoughts, and the top-``k`` documents of the served index."""

    query: str = Field(..., description="the query text")
    k: int = Field(10, ge=1, description="number of documents to return (at most the server's max_k)")
    think: bool | Literal["auto"] = Field(
        True, description="think before embedding the query (False: the no-thinking vector; 'auto': think "
                          "only when the model's learned policy predicts it helps, or, for a model without "
                          "one or with auto_margin given, when the no-thinking top-2 score margin is below it)")
    auto_margin: float | None = Field(None, ge=0, description="think='auto': the margin rule's margin (default "
                                                              "0.05 for a model without a learned policy)")
    think_share: float | None = Field(None, ge=0, le=1, description="think='auto' with the model's learned "
                                      "policy: the share of queries that think (calibrated when it was fitted)")
    think_threshold: float | None = Field(None, ge=0, le=1, description="think='auto' with the model's learned "
                                          "policy: think when P(thinking helps) >= this (default 0.5)")


class SearchHit(BaseModel):
    rank: int
    id: str
    score: float
    title: str | None = None
    snippet: str | None = None


class SearchResponse(BaseModel):
    query: str
    think: bool | Literal["auto"]
    thought: bool = Field(description="whether the query thought (think='auto' decides per query)")
    thoughts: list[str]
    results: list[SearchHit]
    model: str
    took_ms: float


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "o1embedder"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every error, OpenAI-style: ``{"error": {"message", "type", "param", "code"}}``."""

    error: ErrorBody
