"""Schemathesis against the service's own OpenAPI document, in-process through
the WSGI app: every operation, positive and negative data, and the checks
not_a_server_error, status_code_conformance, content_type_conformance and
response_schema_conformance. Zero failures allowed (RELIABILITY.md, "Requests")."""
from __future__ import annotations

import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, positive_data_acceptance,
                                               response_schema_conformance, status_code_conformance)

from embeddings import store
from embeddings.vectors import Embeddings
from service.app import create_app
from service.openapi import openapi_document
from tests.conftest import planted_embeddings
from tests.test_api import tiny_contextual

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
#: Positive cases also check that a request the document allows is never refused with a 4xx
#: other than 404 (an unknown model or word), as `schemathesis run --checks all` does.
POSITIVE_CHECKS = CHECKS + [positive_data_acceptance]
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
#: Generated cases per operation and mode (positive + negative = 220 per operation with inputs).
EXAMPLES_PER_MODE = 110
SERVED, CONTEXTUAL = "fuzz", "ctx"
#: The tiny contextual model's dimension: with every served model of one dimension, the served
#: document says exactly how long a `vector` must be (positive data is then always accepted).
FUZZ_DIM = 16
#: Words of the planted model (tests.conftest) put into some generated bodies.
KNOWN_WORDS = ("man", "king", "woman", "king")


def operation_labels() -> list[str]:
    """Every operation of the OpenAPI document, as "METHOD /path"."""
    doc = openapi_document()
    return [f"{method.upper()} {path}" for path, item in doc["paths"].items()
            for method in item if method in HTTP_METHODS]


def has_inputs(label: str) -> bool:
    """Whether the operation takes parameters or a body (else there is one request to make)."""
    method, path = label.split(" ", 1)
    operation = openapi_document()["paths"][path][method.lower()]
    return bool(operation.get("parameters") or operation.get("requestBody") or "{" in path)


def fuzz_vocabulary() -> Embeddings:
    """The planted model plus every printable one-character word, so that generated
    strings often hit the vocabulary and the real query paths run, not only 404s."""
    base = planted_embeddings(dim=FUZZ_DIM)
    extra = [c for c in string.printable if not c.isspace()] + ["00", "aa", "AA", "é", "日本"]
    words = list(base.words) + [w for w in extra if w not in base]
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((len(words) - len(base), base.dim)).astype(np.float32)
    return Embeddings(words, np.vstack([base.vectors, noise]), None, {"method": "planted"})


def build_models_dir(root: Path) -> Path:
    """A models directory with the fuzz model and a tiny contextual one. (A failed model
    answers 503 by design, which not_a_server_error would flag: test_bad_requests.py
    covers that case.)"""
    models_dir = root / "models"
    store.save_model(models_dir, SERVED, fuzz_vocabulary())
    tiny_contextual(models_dir, CONTEXTUAL)
    return models_dir


@dataclass
class FuzzStats:
    """What one operation/mode run did: cases sent, statuses seen, failed checks."""

    label: str
    mode: str
    cases: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def fuzz_operation(schema: Any, label: str, mode: GenerationMode, max_examples: int) -> FuzzStats:
    """Send up to `max_examples` generated cases for one operation and run every check.

    Every other case targets a served model instead of the generated name (the
    contextual model for /contextual), so both the query paths and the
    unknown-model path are exercised."""
    operation = schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the served /openapi.json"
    stats = FuzzStats(label, mode.value)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    def run(case) -> None:
        stats.cases += 1
        if case.path_parameters and "name" in case.path_parameters and stats.cases % 2:
            case.path_parameters["name"] = CONTEXTUAL if label.endswith("/contextual") else SERVED
            if stats.cases % 4 == 1 and isinstance(case.body, dict):
                # Hypothesis draws strings partly from constants it finds in the project's source,
                # so how often generated words hit the vocabulary changes with unrelated code; put
                # known words into a quarter of the cases so the answering path always runs.
                for key, word in zip(("a", "b", "c", "word"), KNOWN_WORDS):
                    if isinstance(case.body.get(key), str):
                        case.body[key] = word
        response = case.call()
        stats.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=POSITIVE_CHECKS if mode == GenerationMode.POSITIVE else CHECKS)
        except (AssertionError, BaseExceptionGroup) as exc:  # one Failure, or a FailureGroup of several
            stats.failures.append(f"{exc}\n  reproduce: {case.as_curl_command()}")

    run()
    return stats


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    """The app on a small model, and the schema it serves."""
    models_dir = build_models_dir(tmp_path_factory.mktemp("fuzz"))
    app = create_app({"MODELS_DIR": models_dir, "TESTING": True})
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


def test_served_document_lists_every_operation(schema):
    """The operations in the served /openapi.json are exactly the ones fuzzed below."""
    served = {f"{method.upper()} {path}" for path, item in schema.raw_schema["paths"].items()
              for method in item if method in HTTP_METHODS}
    assert served == set(operation_labels())
    assert len(served) >= 12


@pytest.mark.parametrize("label", operation_labels())
def test_fuzz_operation(schema, label):
    """Positive and negative generated requests: no check fails for any case."""
    if not has_inputs(label):
        stats = [fuzz_operation(schema, label, GenerationMode.POSITIVE, 5)]
        assert stats[0].cases >= 1
    else:
        stats = [fuzz_operation(schema, label, mode, EXAMPLES_PER_MODE)
                 for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
        assert sum(s.cases for s in stats) >= 200
        statuses = sum((s.statuses for s in stats), Counter())
        # Both the happy path and the rejections were reached, not only one of them.
        assert any(400 <= code < 500 for code in statuses), statuses
        assert statuses[200] > 0, statuses
    failures = [failure for s in stats for failure in s.failures]
    assert failures == [], "\n\n".join(failures[:5])
