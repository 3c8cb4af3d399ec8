"""JSON answers and the mapping of every failure to a status code with ``{"error": ...}``.

Dkron answers most errors in plain text; we answer every one, 404 and 405 included, as JSON
naming the field or problem (DESIGN.md §6). The mapping lives here and only here.
"""

import json
from collections.abc import Mapping

from quart import Response, has_request_context, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from dkron_trio.job import ValidationError
from dkron_trio.logs import get_logger
from dkron_trio.store.base import (
    AclBootstrapDone,
    ClusterUnavailable,
    DependencyCycle,
    ExecutionNotFound,
    InvalidQuery,
    JobHasChildren,
    JobNotFound,
    ParentNotFound,
    StoreError,
    TokenExists,
    TokenNotFound,
)

log = get_logger(__name__)

JSON_TYPE = "application/json"


class ApiError(Exception):
    """An answer other than success, raised anywhere in a handler."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(
    data: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Compact JSON like Go's encoder (non-ASCII kept); indented when ``?pretty`` is given."""
    pretty = has_request_context() and "pretty" in request.args
    text = json.dumps(
        data,
        ensure_ascii=False,
        indent=4 if pretty else None,
        separators=None if pretty else (",", ":"),
    )
    return Response(text.encode(), status=status, headers=dict(headers or {}), mimetype=JSON_TYPE)


def error_response(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


_STORE_STATUS: tuple[tuple[type[StoreError], int], ...] = (
    (JobNotFound, 404),
    (ExecutionNotFound, 404),
    (ParentNotFound, 404),
    (JobHasChildren, 409),
    (DependencyCycle, 400),
    (InvalidQuery, 400),
    (ClusterUnavailable, 503),
    (TokenNotFound, 404),
    (TokenExists, 409),
    (AclBootstrapDone, 409),
)


def store_status(exc: StoreError) -> int:
    for kind, status in _STORE_STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def _http_message(exc: HTTPException, body_limit: int) -> str:
    if not has_request_context():
        return exc.description or exc.name
    if exc.code == 404:
        return f"not found: {request.path}"
    if exc.code == 405:
        allowed = getattr(exc, "valid_methods", None) or []
        listed = ", ".join(sorted(allowed))
        return f"method {request.method} not allowed on {request.path} (allowed: {listed})"
    if exc.code == 413:
        return f"request body is larger than the limit of {body_limit} bytes"
    return exc.description or exc.name


def install_error_handlers(app: QuartTrio, body_limit: int) -> None:
    """Turn every exception a handler can raise into a JSON error answer."""

    async def api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.message)

    async def invalid(exc: ValidationError) -> Response:
        return error_response(400, str(exc))

    async def store_error(exc: StoreError) -> Response:
        status = store_status(exc)
        if status == 500:
            log.error("store error", error=str(exc))
        return error_response(status, str(exc))

    async def http_error(exc: HTTPException) -> Response:
        response = error_response(exc.code or 500, _http_message(exc, body_limit))
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        if exc.code == 413:
            response.headers["Connection"] = "close"
        return response

    async def unexpected(exc: Exception) -> Response:
        log.exception("unexpected error in HTTP handler", error=repr(exc))
        return error_response(500, f"internal error: {type(exc).__name__}")

    app.register_error_handler(ApiError, api_error)
    app.register_error_handler(ValidationError, invalid)
    app.register_error_handler(StoreError, store_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected)
