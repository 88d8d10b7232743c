"""Request parsing and validation: strict types, explicit limits, 400/415 on anything else.

Nothing is clamped or coerced silently: `k` must be a JSON integer in [1, 100]
(`true`, `1.5`, `"10"` and `null` are rejected), words are non-empty strings of
at most 100 characters, vectors have the model's dimension, are finite and not
all zero (one value at least 1e-150 in magnitude), weights are within ±[1e-6, 1e6]. The
OpenAPI document (`openapi.py`) states each of these limits. JSON with `NaN`/`Infinity`, invalid UTF-8 or absurd nesting is a 400.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Iterable, Mapping

import numpy as np
from flask import Request

from .errors import ApiError, bad_request

K_MIN, K_MAX, K_DEFAULT = 1, 100, 10
MAX_WORD_CHARS = 100
MAX_TERMS = 10
MAX_LIST_ITEMS = 100
MAX_TEXT_CHARS = 10_000
MAX_VECTOR_DIM = 4096
MAX_RESTRICT_VOCAB = 1_000_000_000
MAX_WEIGHT = 1e6
MIN_WEIGHT = 1e-6  # smallest |weight|: a term must count (5e-324 would make the query vector underflow to 0)
#: A client vector needs one value at least this large in magnitude: smaller ones (all zeros,
#: subnormals) have no direction (their norm underflows to 0).
MIN_VECTOR_PEAK = 1e-150
MAX_VECTOR_ABS = 1e30
#: The explorer's maps: words per projection request, words on a frequency map, rows to fit on.
MAX_PROJECTION_WORDS = 500
MAP_MIN, MAP_MAX, MAP_DEFAULT = 2, 50_000, 1_000
FIT_TOP_MIN, FIT_TOP_MAX, FIT_TOP_DEFAULT = 2, 100_000, 10_000
_DIGITS = re.compile(r"[0-9]{1,10}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; 415 unless `application/json`, 400 unless a valid object."""
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       "send the request body as JSON with 'Content-Type: application/json'")
    raw = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH, chunked or not
    if not raw:
        raise bad_request("the request body is empty; expected a JSON object", "invalid_json")
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise bad_request("the request body is not UTF-8", "invalid_json") from None
    except RecursionError:
        raise bad_request("the JSON body is nested too deeply", "invalid_json") from None
    except ValueError as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request(f"the JSON body must be an object, got {type(body).__name__}", "invalid_json")
    return body


def check_fields(body: Mapping[str, Any], allowed: Iterable[str], required: Iterable[str] = ()) -> None:
    """400 for unknown or missing fields (typos must not be ignored silently)."""
    allowed = set(allowed)
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: "
                          f"{', '.join(sorted(allowed))}")
    missing = [name for name in required if name not in body]
    if missing:
        raise bad_request(f"missing required field(s) {', '.join(map(repr, missing))}")


def is_int(value: Any) -> bool:
    """A JSON integer (bool is not an integer here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def get_int(body: Mapping[str, Any], name: str, default: int | None, low: int, high: int) -> int | None:
    """An integer field in [low, high], or `default` when absent."""
    if name not in body:
        return default
    value = body[name]
    # JSON Schema counts 10.0 as an integer, so it is accepted as 10; 1.5, "10", true, null are not.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not is_int(value) or not low <= value <= high:
        raise bad_request(f"'{name}' must be an integer in [{low}, {high}], got {json.dumps(value)[:40]}",
                          "invalid_parameter")
    return value


def get_k(body: Mapping[str, Any], name: str = "k") -> int:
    """`k`: how many results, an integer in [1, 100], default 10."""
    return get_int(body, name, K_DEFAULT, K_MIN, K_MAX)  # type: ignore[return-value]


def get_restrict_vocab(body: Mapping[str, Any]) -> int | None:
    """`restrict_vocab`: search only the first N (most frequent) words."""
    return get_int(body, "restrict_vocab", None, 1, MAX_RESTRICT_VOCAB)


def get_bool(body: Mapping[str, Any], name: str, default: bool) -> bool:
    """A JSON boolean field."""
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise bad_request(f"'{name}' must be true or false", "invalid_parameter")
    return value


def get_choice(body: Mapping[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
    """A string field that must be one of `choices`."""
    value = body.get(name, default)
    if not isinstance(value, str) or value not in choices:
        raise bad_request(f"'{name}' must be one of {', '.join(choices)}", "invalid_parameter")
    return value


def check_word(value: Any, where: str) -> str:
    """A word: a non-empty string of at most 100 characters (never an int row index)."""
    if not isinstance(value, str) or not value or len(value) > MAX_WORD_CHARS:
        raise bad_request(f"{where} must be a non-empty string of at most {MAX_WORD_CHARS} characters",
                          "invalid_word")
    return value


def get_word(body: Mapping[str, Any], name: str) -> str:
    """A required word field."""
    if name not in body:
        raise bad_request(f"missing required field '{name}'")
    return check_word(body[name], f"'{name}'")


def get_list(body: Mapping[str, Any], name: str, low: int, high: int, required: bool = True) -> list[Any]:
    """An array field with `low`..`high` items."""
    if name not in body:
        if required:
            raise bad_request(f"missing required field '{name}'")
        return []
    value = body[name]
    if not isinstance(value, list) or not low <= len(value) <= high:
        raise bad_request(f"'{name}' must be an array of {low} to {high} items", "invalid_parameter")
    return value


def get_words(body: Mapping[str, Any], name: str, low: int, high: int) -> list[str]:
    """A required array of `low`..`high` words."""
    return [check_word(w, f"'{name}[{i}]'") for i, w in enumerate(get_list(body, name, low, high))]


def check_weight(value: Any, where: str) -> float:
    """A number (not a bool) of magnitude in [1e-6, 1e6], either sign (a zero or vanishing
    weight would make a term that does not count)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not MIN_WEIGHT <= abs(value) <= MAX_WEIGHT:
        raise bad_request(f"{where} must be a number with {MIN_WEIGHT:g} <= |x| <= {MAX_WEIGHT:g}",
                          "invalid_parameter")
    return float(value)


def check_vector(value: Any, dim: int, where: str = "'vector'") -> np.ndarray:
    """A list of `dim` finite numbers, not all zero, as float64."""
    if not isinstance(value, list) or not value:
        raise bad_request(f"{where} must be a non-empty array of numbers", "invalid_vector")
    if len(value) != dim:
        raise bad_request(f"{where} has {len(value)} dimensions, the model has {dim}", "invalid_vector")
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in value):
        raise bad_request(f"{where} must contain only numbers", "invalid_vector")
    vector = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(vector)) or np.any(np.abs(vector) > MAX_VECTOR_ABS):
        raise bad_request(f"{where} must contain finite numbers (|x| <= {MAX_VECTOR_ABS:g})", "invalid_vector")
    if not np.any(np.abs(vector) >= MIN_VECTOR_PEAK):
        raise bad_request(f"{where} is all zeros (no value with |x| >= {MIN_VECTOR_PEAK:g}); a zero vector has "
                          "no direction", "invalid_vector")
    return vector


def query_int(args: Mapping[str, str], name: str, default: int | None, low: int, high: int) -> int | None:
    """An integer query-string parameter: plain digits only, in [low, high]."""
    if name not in args:
        return default
    raw = args[name]
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise bad_request(f"query parameter '{name}' must be an integer in [{low}, {high}], got {raw[:40]!r}",
                          "invalid_parameter")
    return int(raw)


def query_word(args: Mapping[str, str], name: str) -> str:
    """A required word-like query-string parameter (non-empty, at most 100 characters)."""
    if name not in args:
        raise bad_request(f"missing required query parameter '{name}'")
    return check_word(args[name], f"query parameter '{name}'")
