"""One JSON error envelope for every 4xx/5xx: `{"error": {"code", "message", ...}}`.

The library raises `MissingWords` (a `KeyError`) and `ValueError`; this edge maps them (and Werkzeug's
HTTP exceptions) to JSON responses. 405 keeps its `Allow` header; 413 closes the
connection; unexpected exceptions become a 500 without a traceback in the body (it
goes to the log).
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from embeddings.query import MissingWords

log = logging.getLogger("wordspace.service")

#: Error codes for HTTP statuses raised by Werkzeug/Flask itself.
HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error with an HTTP status, a stable machine-readable code and extra fields."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def bad_request(message: str, code: str = "invalid_request", **extra: Any) -> ApiError:
    """A 400 naming what is wrong with the request."""
    return ApiError(400, code, message, **extra)


def error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    """The JSON envelope with `status`."""
    response = jsonify({"error": {"code": code, "message": message, **extra}})
    response.status_code = status
    return response


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = HTTP_CODES.get(status, exc.name.lower().replace(" ", "_").replace("'", ""))
    response = error_response(status, code, exc.description or exc.name)
    if status == 405 and getattr(exc, "valid_methods", None):
        response.headers["Allow"] = ", ".join(sorted(set(exc.valid_methods)))
    if status == 413:
        # Close the connection after an over-limit body. An app may not send "Connection: close"
        # (PEP 3333), but a production server closes a connection whose response has no length:
        # the envelope goes out as a stream (chunked under HTTP/1.1), then the server closes.
        body = response.get_data()
        response.response = (part for part in (body,))
        del response.headers["Content-Length"]
    return response


def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message, **exc.extra)


def _missing_words(exc: MissingWords) -> Response:
    """404 naming every missing word, each with up to 5 close spellings."""
    return error_response(404, "word_not_found", exc.message,
                          missing=[{"word": w, "suggestions": exc.suggestions.get(w) or []} for w in exc.words])


def _invalid_query(exc: ValueError) -> Response:
    """The query layer's `ValueError` (a zero query vector, a bad method...) is the client's 400."""
    return error_response(400, "invalid_request", str(exc))


def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    log.exception("unhandled error while serving a request")
    return error_response(500, "internal_error", "internal server error (see the server log)")


def register_error_handlers(app: Flask) -> None:
    """Route every error raised while handling a request to the JSON envelope."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(MissingWords, _missing_words)
    app.register_error_handler(ValueError, _invalid_query)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
