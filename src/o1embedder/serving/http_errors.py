"""Our exceptions (and FastAPI's) mapped to HTTP codes, every answer in OpenAI's error shape.

=================================  ====  ===========================================
cause                              code  ``error.type``
=================================  ====  ===========================================
body is not JSON                   400   ``invalid_request_error``
missing/bad API key                401   ``authentication_error``
unknown model id, no index         404   ``not_found_error``
body, input count or length        413   ``request_too_large``
bad field, empty input, ``k``      422   ``invalid_request_error``
:class:`InputError` from library   422   ``invalid_request_error``
model queue full                   503   ``overloaded_error`` (+ ``Retry-After``)
anything else (a bug)              500   ``server_error`` (logged with its traceback)
=================================  ====  ===========================================
"""

from __future__ import annotations

from typing import Any

from ..errors import IndexMismatchError, InputError, ModelError, O1Error
from ..log import get_logger
from .batching import Overloaded

logger = get_logger(__name__)


class ApiError(Exception):
    """An HTTP error with a clear message, answered as ``{"error": {...}}``."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def too_large(message: str, param: str | None = None) -> ApiError:
    return ApiError(413, message, type="request_too_large", param=param, code="request_too_large")


def invalid(message: str, param: str | None = None) -> ApiError:
    return ApiError(422, message, param=param, code="invalid_value")


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out


def from_validation(errors: list[dict[str, Any]]) -> ApiError:
    """FastAPI's validation errors -> one readable message (400 for a body that is not JSON)."""
    if any(e.get("type") == "json_invalid" for e in errors):
        ctx = next(e for e in errors if e.get("type") == "json_invalid").get("ctx") or {}
        detail = ctx.get("error", "could not be parsed")
        return ApiError(400, f"request body is not valid JSON ({detail})", code="invalid_json")
    messages, first_param = [], None
    for e in errors[:5]:
        where = _location(tuple(e.get("loc", ())))
        first_param = first_param or where or None
        msg = str(e.get("msg", "invalid value")).removeprefix("Value error, ")
        if e.get("type") == "extra_forbidden":
            msg = "unknown field (not part of this API)"
        elif e.get("type") == "missing":
            msg = "required field is missing"
        if not where and e.get("type") in {"model_type", "model_attributes_type", "dict_type"}:
            msg = "request body must be a JSON object"
        messages.append(f"{where}: {msg}" if where else msg)
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return invalid("; ".join(messages) + more, param=first_param)


def from_exception(exc: Exception) -> ApiError:
    """Library exceptions -> HTTP errors; an unknown exception is a 500 (a bug) and is logged."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, InputError):
        return invalid(str(exc), param=exc.field)
    if isinstance(exc, Overloaded):
        return ApiError(503, str(exc), type="overloaded_error", code="overloaded", headers={"Retry-After": "1"})
    if isinstance(exc, (ModelError, IndexMismatchError)):
        logger.error("model or index unusable: %s", exc)
        return ApiError(503, f"the model cannot serve this request: {exc}", type="server_error",
                        code="model_error")
    logger.error("internal error while serving a request", exc_info=exc)
    return ApiError(500, "internal server error (logged on the server)", type="server_error", code="internal")


def install(app: Any) -> None:
    """Register the handlers on a FastAPI ``app``."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    def respond(error: ApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    async def on_validation(request: Any, exc: RequestValidationError) -> JSONResponse:
        return respond(from_validation(list(exc.errors())))

    async def on_http(request: Any, exc: HTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return respond(ApiError(exc.status_code, str(exc.detail), type=kind, code=str(exc.status_code)))

    async def on_any(request: Any, exc: Exception) -> JSONResponse:
        return respond(from_exception(exc))

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    for kind in (ApiError, O1Error, Overloaded, Exception):
        app.add_exception_handler(kind, on_any)
