"""Flask app factory for the wordspace REST API.

`create_app(config)` merges defaults, `WORDSPACE_*` environment overrides and
the `config` mapping (tests), loads the models into a `Registry` kept in
`app.extensions["wordspace"]` (reached through `service.registry.registry()`), and registers
one blueprint per resource (the web explorer's page is `service.page`). No module globals hold state.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from embeddings import index as index_mod
from embeddings import store
from embeddings.atomic import json_dumps

from .errors import register_error_handlers
from .health import bp as health_bp
from .openapi import bp as openapi_bp
from .page import bp as page_bp
from .registry import EXTENSION, Registry
from .routes_explore import bp as explore_bp
from .routes_models import bp as models_bp
from .routes_queries import bp as queries_bp

#: Defaults; each may be overridden by the environment variable in ENV_OVERRIDES, then by `config`.
DEFAULTS: dict[str, Any] = {
    "MODELS_DIR": None,  # None: $WORDSPACE_MODELS or ./models
    "MODELS": None,  # list of model names to serve; None: every model in MODELS_DIR
    "MAX_CONTENT_LENGTH": 1 << 20,  # 1 MiB request bodies, chunked ones included
    "INDEX_KIND": None,  # None: flat up to FLAT_MAX_WORDS words, HNSW above
    "FLAT_MAX_WORDS": index_mod.FLAT_MAX_WORDS,
    "HNSW_M": index_mod.HNSW_M,
    "HNSW_EF_CONSTRUCTION": index_mod.HNSW_EF_CONSTRUCTION,
    "HNSW_EF_SEARCH": index_mod.HNSW_EF_SEARCH,
    "PERSIST_INDEX": True,  # write a built index.faiss into the model directory
    "VERIFY_CHECKSUMS": True,  # sha256 every model file at load
    "LOAD_IN_BACKGROUND": False,  # serve /livez and a 503 /readyz while loading
    # OpenMP thread counts are per thread in libgomp: pin each request thread once (None: leave alone)
    "REQUEST_NATIVE_THREADS": None,
    "BUILD_THREADS": None,  # OpenMP threads of the loading thread for index builds (None: leave alone)
    "JSON_SORT_KEYS": False,
}


def _int(value: str) -> int:
    return int(value)


def _bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a boolean, got {value!r}")


def _names(value: str) -> list[str]:
    return [store.validate_name(n) for n in value.replace(",", " ").split()]


#: Environment variable -> (config key, parser).
ENV_OVERRIDES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "WORDSPACE_SERVE_MODELS": ("MODELS", _names),
    "WORDSPACE_MAX_CONTENT_LENGTH": ("MAX_CONTENT_LENGTH", _int),
    "WORDSPACE_INDEX_KIND": ("INDEX_KIND", str),
    "WORDSPACE_FLAT_MAX_WORDS": ("FLAT_MAX_WORDS", _int),
    "WORDSPACE_HNSW_M": ("HNSW_M", _int),
    "WORDSPACE_HNSW_EF_CONSTRUCTION": ("HNSW_EF_CONSTRUCTION", _int),
    "WORDSPACE_EF_SEARCH": ("HNSW_EF_SEARCH", _int),
    "WORDSPACE_PERSIST_INDEX": ("PERSIST_INDEX", _bool),
    "WORDSPACE_VERIFY_CHECKSUMS": ("VERIFY_CHECKSUMS", _bool),
}


def resolve_config(config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Defaults, then environment overrides, then `config` (the test mapping)."""
    environ = os.environ if environ is None else environ
    merged = dict(DEFAULTS)
    for variable, (key, parse) in ENV_OVERRIDES.items():
        if environ.get(variable):
            try:
                merged[key] = parse(environ[variable])
            except ValueError as exc:
                raise ValueError(f"${variable}: {exc}") from None
    merged.update(config or {})
    if merged["MODELS_DIR"] is None:
        merged["MODELS_DIR"] = store.default_models_dir()
    merged["MODELS_DIR"] = Path(merged["MODELS_DIR"])
    if merged["INDEX_KIND"] not in (None, "flat", "hnsw"):
        raise ValueError(f"INDEX_KIND must be 'flat' or 'hnsw', got {merged['INDEX_KIND']!r}")
    for key in ("MAX_CONTENT_LENGTH", "FLAT_MAX_WORDS", "HNSW_M", "HNSW_EF_CONSTRUCTION", "HNSW_EF_SEARCH"):
        if not isinstance(merged[key], int) or merged[key] < 1:
            raise ValueError(f"{key} must be a positive integer, got {merged[key]!r}")
    return merged


class FiniteJSONProvider(DefaultJSONProvider):
    """Flask's JSON with no NaN or Infinity ever written (neither is JSON): a non-finite
    float becomes null. Models refuse non-finite vectors at load; this is the last guard."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("default", self.default)
        kwargs.setdefault("ensure_ascii", self.ensure_ascii)
        kwargs.setdefault("sort_keys", self.sort_keys)
        return json_dumps(obj, **kwargs)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app and load (or start loading) the configured models."""
    settings = resolve_config(config)
    app = Flask("wordspace", static_folder=None)
    app.json = FiniteJSONProvider(app)
    app.config.update(settings)
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False  # OPTIONS is not part of the API: 405 + Allow
    app.json.sort_keys = False
    register_error_handlers(app)

    for blueprint in (health_bp, models_bp, queries_bp, explore_bp, openapi_bp, page_bp):
        app.register_blueprint(blueprint)

    if settings["REQUEST_NATIVE_THREADS"]:
        _pin_request_threads(app, int(settings["REQUEST_NATIVE_THREADS"]))
    reg = Registry(settings["MODELS_DIR"], settings["MODELS"], settings)
    app.extensions[EXTENSION] = reg
    if settings["LOAD_IN_BACKGROUND"]:
        reg.start_background()
    else:
        reg.reload()
    logging.getLogger("wordspace.service").debug("app created for %s", settings["MODELS_DIR"])
    return app


def _pin_request_threads(app: Flask, n: int) -> None:
    """Before a thread's first request, set its OpenMP (FAISS) thread count to `n`:
    libgomp keeps that count per thread, so pinning the main thread is not enough."""
    import threading

    import faiss

    pinned = threading.local()

    @app.before_request
    def pin() -> None:
        if not getattr(pinned, "done", False):
            faiss.omp_set_num_threads(n)
            pinned.done = True

