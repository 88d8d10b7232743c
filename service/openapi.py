"""The OpenAPI 3.1 document of the API (GET /openapi.json) and a readable page (GET /docs).

Request schemas carry the exact types and limits `validation.py` enforces;
every operation lists each status it can return, errors with the shared
envelope. Tests check the document against the OpenAPI meta-schema, against
the app's url_map, and every test response against its schema.
"""
from __future__ import annotations

import html
import json
from typing import Any, Iterable
from urllib.parse import quote, urlencode

from flask import Blueprint, Response, jsonify, request

from embeddings.query import ANALOGY_METHODS
from embeddings.store import NAME_PATTERN

from . import validation as v
from .registry import registry

bp = Blueprint("openapi", __name__)

REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


ERRORS = {
    "400": "invalid request: bad JSON, wrong types, out-of-range values (code names the problem)",
    "404": "unknown model (model_not_found), unknown word(s) (word_not_found, each with up to 5 close "
           "spellings; for /contextual, a word that is not a token of the text), or a model without a "
           "contextual encoder (not_contextual)",
    "405": "method not allowed (the Allow header lists the allowed ones)",
    "413": "request body larger than the limit (1 MiB by default), chunked bodies included",
    "415": "request body is not application/json",
    "503": "the model is still loading or failed to load",
}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _error(ERRORS[code]) for code in codes}


def _at_most_terms(limit: int) -> dict[str, Any]:
    """positive + negative + vector hold at most `limit` terms in all: one branch per split
    (JSON Schema has no sum of array lengths), so the document says what validation enforces."""
    without = [{"not": {"required": ["vector"]},
                "properties": {"positive": {"maxItems": p}, "negative": {"maxItems": limit - p}}}
               for p in range(limit + 1)]
    with_vector = [{"required": ["vector"],
                    "properties": {"positive": {"maxItems": p}, "negative": {"maxItems": limit - 1 - p}}}
                   for p in range(limit)]
    return {"anyOf": without + with_vector}


WORD = {"type": "string", "minLength": 1, "maxLength": v.MAX_WORD_CHARS}
K = {"type": "integer", "minimum": v.K_MIN, "maximum": v.K_MAX, "default": v.K_DEFAULT,
     "description": "number of results"}
RESTRICT = {"type": "integer", "minimum": 1, "maximum": v.MAX_RESTRICT_VOCAB,
            "description": "search only the first N words (the most frequent ones for trained models)"}
NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_INT = {"type": ["integer", "null"]}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "models": {"$ref": REF + "ModelStates",
                           "description": "GET /readyz only: every model's state"},
                "workers": {"$ref": REF + "WorkerStates",
                            "description": "GET /readyz under `serve --workers N` only: every worker's state"},
                "missing": {"type": "array", "items": {
                    "type": "object", "required": ["word", "suggestions"], "additionalProperties": False,
                    "properties": {"word": {"type": "string"},
                                   "suggestions": {"type": "array", "maxItems": 5, "items": {"type": "string"}}},
                }},
            },
        }},
    },
    "Word": WORD,
    "Scored": {"type": "object", "required": ["word", "score"], "additionalProperties": False,
               "properties": {"word": {"type": "string"}, "score": {"type": "number"}}},
    "ScoredList": {"type": "array", "maxItems": v.K_MAX, "items": _ref("Scored")},
    "WeightedWord": {"type": "object", "required": ["word"], "additionalProperties": False,
                     "properties": {"word": _ref("Word"),
                                    "weight": {"type": "number", "default": 1,
                                               "description": f"{v.MIN_WEIGHT:g} <= |weight| <= {v.MAX_WEIGHT:g}",
                                               "anyOf": [{"type": "number", "minimum": v.MIN_WEIGHT,
                                                          "maximum": v.MAX_WEIGHT},
                                                         {"type": "number", "minimum": -v.MAX_WEIGHT,
                                                          "maximum": -v.MIN_WEIGHT}]}}},
    "Term": {"anyOf": [_ref("Word"), _ref("WeightedWord")]},
    "Vector": {"type": "array", "minItems": 1, "maxItems": v.MAX_VECTOR_DIM,
               "items": {"type": "number", "minimum": -v.MAX_VECTOR_ABS, "maximum": v.MAX_VECTOR_ABS},
               # not all zero: some value at least 1e-150 in magnitude (smaller norms underflow)
               "contains": {"anyOf": [{"minimum": v.MIN_VECTOR_PEAK}, {"maximum": -v.MIN_VECTOR_PEAK}]},
               "description": "exactly the model's dimension; finite; not all zero"},
    "IndexInfo": {"type": "object", "required": ["kind", "source", "seconds"],
                  "properties": {"kind": {"type": "string", "enum": ["flat", "hnsw"]},
                                 "source": {"type": "string"}, "seconds": {"type": "number"},
                                 "ef_search": {"type": "integer"}, "rebuild_reason": {"type": "string"}}},
    "ModelSummary": {
        "type": "object",
        "required": ["name", "status", "method", "dim", "vocab_size", "index", "created", "contextual"],
        "properties": {
            "name": {"type": "string"},
            "status": {"type": "string", "enum": ["ready", "loading", "failed"]},
            "method": NULLABLE_STRING, "dim": NULLABLE_INT, "vocab_size": NULLABLE_INT,
            "index": {"anyOf": [_ref("IndexInfo"), {"type": "null"}]},
            "created": NULLABLE_STRING,
            "contextual": {"type": "boolean"},
            "error": {"type": ["string", "null"], "description": "why a failed model failed"},
        },
    },
    "ModelDetail": {"allOf": [_ref("ModelSummary"), {"type": "object", "properties": {
        "hyperparameters": {"type": "object"},
        "evaluation": {"description": "stored evaluation results (wordspace evaluate), when present"},
        "meta": {"type": "object", "description": "the model's meta.json without the checksum table"},
    }}]},
    "ModelStates": {"type": "object", "additionalProperties": {
        "type": "object", "required": ["status"], "additionalProperties": False,
        "properties": {"status": {"type": "string", "enum": ["ready", "loading", "failed"]},
                       "error": {"type": "string"}}}},
    "Readiness": {"type": "object", "required": ["status", "models"], "additionalProperties": False,
                  "properties": {"status": {"const": "ready"}, "models": _ref("ModelStates"),
                                 "workers": _ref("WorkerStates")}},
    "WorkerStates": {"type": "array", "description": "pre-forked workers (`serve --workers N`), one per slot",
                     "items": {"type": "object", "required": ["slot", "pid", "status", "generation"],
                               "additionalProperties": False,
                               "properties": {"slot": {"type": "integer"}, "pid": NULLABLE_INT,
                                              "status": {"enum": ["ready", "loading", "reloading", "not ready",
                                                                  "not running"]},
                                              "generation": {"type": "integer",
                                                             "description": "reloads (SIGHUP) loaded"}}}},
    "NeighborsResponse": {"type": "object", "required": ["word", "neighbors"], "additionalProperties": False,
                          "properties": {"word": {"type": "string"}, "neighbors": _ref("ScoredList")}},
    "SimilarRequest": {
        "type": "object",
        "additionalProperties": False,
        "description": "gensim most_similar: cosine to the mean of the weighted unit vectors of the "
                       "positive terms minus the negative ones (a raw vector counts as a positive term); "
                       f"at most {v.MAX_TERMS} terms in all; input words are never returned",
        "properties": {
            "positive": {"type": "array", "maxItems": v.MAX_TERMS, "items": _ref("Term")},
            "negative": {"type": "array", "maxItems": v.MAX_TERMS, "items": _ref("Term")},
            "vector": _ref("Vector"),
            "k": K, "restrict_vocab": RESTRICT,
            "exact": {"type": "boolean", "default": False,
                      "description": "exact matrix-product search instead of the index"},
        },
        "allOf": [
            {"anyOf": [  # at least one term
                {"required": ["positive"], "properties": {"positive": {"minItems": 1}}},
                {"required": ["negative"], "properties": {"negative": {"minItems": 1}}},
                {"required": ["vector"]},
            ]},
            _at_most_terms(v.MAX_TERMS),
        ],
    },
    "SimilarResponse": {"type": "object", "required": ["results"], "additionalProperties": False,
                        "properties": {"results": _ref("ScoredList")}},
    "AnalogyRequest": {
        "type": "object", "required": ["a", "b", "c"], "additionalProperties": False,
        "description": "a is to b as c is to ?, i.e. ? = b - a + c (italy : mussolini :: germany : ?)",
        "properties": {"a": _ref("Word"), "b": _ref("Word"), "c": _ref("Word"), "k": K,
                       "method": {"type": "string", "enum": list(ANALOGY_METHODS), "default": "3cosadd"},
                       "restrict_vocab": RESTRICT,
                       "exact": {"type": "boolean", "default": True,
                                 "description": "3cosadd by exact matrix product (3cosmul is always exact)"}},
    },
    "AnalogyResponse": {"type": "object", "required": ["a", "b", "c", "method", "answers"],
                        "additionalProperties": False,
                        "properties": {"a": {"type": "string"}, "b": {"type": "string"},
                                       "c": {"type": "string"},
                                       "method": {"type": "string", "enum": list(ANALOGY_METHODS)},
                                       "answers": _ref("ScoredList")}},
    "SimilarityRequest": {"type": "object", "required": ["pairs"], "additionalProperties": False,
                          "properties": {"pairs": {"type": "array", "minItems": 1, "maxItems": v.MAX_LIST_ITEMS,
                                                   "items": {"type": "array", "minItems": 2, "maxItems": 2,
                                                             "items": _ref("Word")}}}},
    "SimilarityResponse": {"type": "object", "required": ["results"], "additionalProperties": False,
                           "properties": {"results": {"type": "array", "items": {
                               "type": "object", "required": ["pair", "similarity", "missing"],
                               "additionalProperties": False,
                               "properties": {"pair": {"type": "array", "minItems": 2, "maxItems": 2,
                                                       "items": {"type": "string"}},
                                              "similarity": {"type": ["number", "null"]},
                                              "missing": {"type": "array", "items": {"type": "string"}}}}}}},
    "VectorsRequest": {"type": "object", "required": ["words"], "additionalProperties": False,
                       "properties": {"words": {"type": "array", "minItems": 1, "maxItems": v.MAX_LIST_ITEMS,
                                                "items": _ref("Word")},
                                      "normalized": {"type": "boolean", "default": False}}},
    "VectorsResponse": {"type": "object", "required": ["dim", "normalized", "vectors"], "additionalProperties": False,
                        "properties": {"dim": {"type": "integer"}, "normalized": {"type": "boolean"},
                                       "vectors": {"type": "array", "items": {
                                           "type": "object", "required": ["word", "vector"],
                                           "additionalProperties": False,
                                           "properties": {"word": {"type": "string"},
                                                          "vector": {"type": "array",
                                                                     "items": {"type": "number"}}}}}}},
    "OddOneOutRequest": {"type": "object", "required": ["words"], "additionalProperties": False,
                         "properties": {"words": {"type": "array", "minItems": 2, "maxItems": v.MAX_LIST_ITEMS,
                                                  "items": _ref("Word")}}},
    "OddOneOutResponse": {"type": "object", "required": ["odd_one_out", "scores"], "additionalProperties": False,
                          "properties": {"odd_one_out": {"type": "string"},
                                         "scores": {"type": "array", "items": _ref("Scored"),
                                                    "description": "each word's cosine to the mean, input order"}}},
    "ContextualRequest": {"type": "object", "required": ["text"], "additionalProperties": False,
                          "properties": {"text": {"type": "string", "minLength": 1, "maxLength": v.MAX_TEXT_CHARS,
                                                  "description": "a text without words has no tokens"},
                                         "word": {**WORD, "description": "one token of the text (else 404 "
                                                                         "word_not_found)"},
                                         "k": K}},
    "ContextualResponse": {
        "type": "object",
        "description": "contextual vectors of the text's words (a long text is truncated to what the encoder "
                       "holds) and, when `word` is given, its vector in this text, its nearest static "
                       "neighbours and its cosine to its own static vector",
        "required": ["tokens", "truncated", "n_tokens", "n_encoded", "max_len", "layers"],
        "properties": {
            "tokens": {"type": "array", "items": {
                "type": "object", "required": ["token", "vector"],
                "properties": {"token": {"type": "string"},
                               "vector": {"type": ["array", "null"], "items": {"type": "number"}}}}},
            "truncated": {"type": "boolean"},
            "n_tokens": {"type": "integer"}, "n_encoded": {"type": "integer"}, "max_len": {"type": "integer"},
            "layers": {"type": "string"},
            "word": {"type": "string"},
            "vector": {"type": "array", "items": {"type": "number"}},
            "occurrences": {"type": "array", "items": {"type": "integer"}},
            "neighbors": _ref("ScoredList"),
            "static_similarity": {"type": ["number", "null"]},
        },
    },
    "VocabularyResponse": {
        "type": "object", "required": ["prefix", "total", "words"], "additionalProperties": False,
        "properties": {"prefix": {"type": "string"},
                       "total": {"type": "integer", "minimum": 0,
                                 "description": "how many words start with the prefix"},
                       "words": {"type": "array", "maxItems": v.K_MAX, "items": {"type": "string"},
                                 "description": "at most `limit` of them, most frequent (first stored) first"}}},
    "ExplainedVariance": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"},
                          "description": "share of the fitted vectors' variance along each map axis"},
    "ProjectionRequest": {
        "type": "object", "required": ["words"], "additionalProperties": False,
        "description": "TruncatedSVD (random_state 0) of the centred unit vectors: fit on the words themselves "
                       "(`selected`: at least 2 words; copies of one word all map to the origin) or on the "
                       "`fit_top` most frequent words (`vocab`: one fixed map for every request)",
        "properties": {"words": {"type": "array", "minItems": 1, "maxItems": v.MAX_PROJECTION_WORDS,
                                 "items": _ref("Word")},
                       "fit_on": {"type": "string", "enum": ["selected", "vocab"], "default": "selected"},
                       "fit_top": {"type": "integer", "minimum": v.FIT_TOP_MIN, "maximum": v.FIT_TOP_MAX,
                                   "default": v.FIT_TOP_DEFAULT,
                                   "description": "with fit_on vocab only: how many of the most frequent words"}},
        # fit_on vocab (any fit_top), or the selected words: then at least 2 of them and no fit_top.
        "anyOf": [{"required": ["fit_on"], "properties": {"fit_on": {"const": "vocab"}}},
                  {"not": {"required": ["fit_top"]}, "properties": {"words": {"minItems": 2}}}],
    },
    "ProjectionResponse": {
        "type": "object", "required": ["fit_on", "fit_words", "explained_variance", "points"],
        "additionalProperties": False,
        "properties": {"fit_on": {"type": "string", "enum": ["selected", "vocab"]},
                       "fit_words": {"type": "integer", "description": "how many words the map was fit on"},
                       "explained_variance": _ref("ExplainedVariance"),
                       "points": {"type": "array", "items": {
                           "type": "object", "required": ["word", "x", "y"], "additionalProperties": False,
                           "properties": {"word": {"type": "string"}, "x": {"type": "number"},
                                          "y": {"type": "number"}}},
                                  "description": "one per distinct word, in the order given"}}},
    "FrequencyMapResponse": {
        "type": "object", "required": ["n", "words", "x", "y", "counts", "explained_variance"],
        "additionalProperties": False,
        "description": "the first n stored words (the most frequent for trained models and GloVe) on the map "
                       "fit on them; parallel arrays",
        "properties": {"n": {"type": "integer"},
                       "words": {"type": "array", "maxItems": v.MAP_MAX, "items": {"type": "string"}},
                       "x": {"type": "array", "maxItems": v.MAP_MAX, "items": {"type": "number"}},
                       "y": {"type": "array", "maxItems": v.MAP_MAX, "items": {"type": "number"}},
                       "counts": {"type": ["array", "null"], "items": {"type": "integer"},
                                  "description": "corpus counts; null when the model does not know them"},
                       "explained_variance": _ref("ExplainedVariance")}},
}

NAME_PARAM = {"name": "name", "in": "path", "required": True,
              "schema": {"type": "string", "pattern": f"^{NAME_PATTERN.pattern}$"},
              "description": "model name"}


def _post(summary: str, request: str, response: str, description: str = "") -> dict[str, Any]:
    return {"post": {
        "summary": summary, "description": description or summary,
        "operationId": request[0].lower() + request[1:].removesuffix("Request"),
        "parameters": [NAME_PARAM],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(request)}}},
        "responses": {"200": _json(_ref(response), "the answer"), **_errors("400", "404", "405", "413", "415", "503")},
    }}


def _asset(mimetype: str, description: str) -> dict[str, Any]:
    return {"200": {"description": description, "content": {mimetype: {"schema": {"type": "string"}}}},
            "405": _error(ERRORS["405"])}


PATHS: dict[str, Any] = {
    "/livez": {"get": {"summary": "liveness: the process is up", "operationId": "livez",
                       "responses": {"200": _json({"type": "object", "required": ["status"],
                                                   "additionalProperties": False,
                                                   "properties": {"status": {"const": "ok"}}}, "alive"),
                                     "405": _error(ERRORS["405"])}}},
    "/readyz": {"get": {"summary": "readiness: every configured model and its index is loaded",
                        "operationId": "readyz",
                        "responses": {"200": _json(_ref("Readiness"), "all models ready"),
                                      "503": _error("not ready: some models are loading or failed (error.models gives each "
                                                    "state and reason)"),
                                      "405": _error(ERRORS["405"])}}},
    "/models": {"get": {"summary": "list the served models (failed ones with the reason)", "operationId": "listModels",
                        "responses": {"200": _json({"type": "array", "items": _ref("ModelSummary")}, "models"),
                                      "405": _error(ERRORS["405"])}}},
    "/models/{name}": {"get": {"summary": "one model: summary, hyper-parameters, stored evaluation, meta",
                               "operationId": "showModel", "parameters": [NAME_PARAM],
                               "responses": {"200": _json(_ref("ModelDetail"), "the model"),
                                             **_errors("404", "405")}}},
    "/models/{name}/neighbors": {"get": {
        "summary": "nearest neighbours of a word (the word itself excluded)", "operationId": "neighbors",
        "parameters": [NAME_PARAM,
                       {"name": "word", "in": "query", "required": True, "schema": WORD},
                       {"name": "k", "in": "query", "required": False, "schema": K},
                       {"name": "restrict_vocab", "in": "query", "required": False, "schema": RESTRICT}],
        "responses": {"200": _json(_ref("NeighborsResponse"), "neighbours, best first"),
                      **_errors("400", "404", "405", "503")}}},
    "/models/{name}/similar": _post("words most similar to positive minus negative terms (gensim most_similar)",
                                    "SimilarRequest", "SimilarResponse"),
    "/models/{name}/analogy": _post("analogy a : b :: c : ? by 3CosAdd or 3CosMul", "AnalogyRequest",
                                    "AnalogyResponse",
                                    "3CosAdd: argmax cos(x, b - a + c) on unit vectors; 3CosMul (Levy & Goldberg "
                                    "2014): argmax cos'(x,b) cos'(x,c) / (cos'(x,a) + 0.001), cos' = (cos+1)/2. "
                                    "a, b and c are never returned."),
    "/models/{name}/similarity": _post("cosine similarity of word pairs (null for a pair with an unknown word)",
                                       "SimilarityRequest", "SimilarityResponse"),
    "/models/{name}/vectors": _post("the vectors of words", "VectorsRequest", "VectorsResponse"),
    "/models/{name}/odd-one-out": _post("the word that does not match the others (gensim doesnt_match)",
                                        "OddOneOutRequest", "OddOneOutResponse"),
    "/models/{name}/contextual": _post("a word's vector in context and its neighbours (contextual models only)",
                                       "ContextualRequest", "ContextualResponse"),
    "/models/{name}/vocabulary": {"get": {
        "summary": "words starting with a prefix, most frequent first (completion over the whole vocabulary)",
        "operationId": "vocabulary",
        "parameters": [NAME_PARAM,
                       {"name": "prefix", "in": "query", "required": True, "schema": WORD,
                        "description": "case-sensitive prefix"},
                       {"name": "limit", "in": "query", "required": False,
                        "schema": {**K, "description": "at most this many words"}}],
        "responses": {"200": _json(_ref("VocabularyResponse"), "matching words"),
                      **_errors("400", "404", "405", "503")}}},
    "/models/{name}/projection": _post("2-D map coordinates of words", "ProjectionRequest", "ProjectionResponse",
                                       "TruncatedSVD (random_state 0) of the centred unit vectors, computed on the "
                                       "full-dimensional vectors: fit on the words given, or on the fit_top most "
                                       "frequent words. Each distinct word once, in the order given."),
    "/models/{name}/map": {"get": {
        "summary": "the n most frequent words on a 2-D map, with their counts (the explorer's frequency map)",
        "operationId": "frequencyMap",
        "parameters": [NAME_PARAM,
                       {"name": "n", "in": "query", "required": False,
                        "schema": {"type": "integer", "minimum": v.MAP_MIN, "maximum": v.MAP_MAX,
                                   "default": v.MAP_DEFAULT,
                                   "description": "how many words (fewer when the vocabulary is smaller)"}}],
        "responses": {"200": _json(_ref("FrequencyMapResponse"), "the map"),
                      **_errors("400", "404", "405", "503")}}},
    "/openapi.json": {"get": {"summary": "this document", "operationId": "openapi",
                              "responses": {"200": _json({"type": "object"}, "the OpenAPI document"),
                                            "405": _error(ERRORS["405"])}}},
    "/docs": {"get": {"summary": "a readable page describing the API", "operationId": "docs",
                      "responses": {"200": {"description": "HTML page",
                                            "content": {"text/html": {"schema": {"type": "string"}}}},
                                    "405": _error(ERRORS["405"])}}},
    "/": {"get": {"summary": "the web explorer: one page to look at the embedding space",
                  "description": "Its state lives in the query string, so a link reproduces a view: "
                                 "/?model=glove-6b-50d&word=frog (neighbours and map), &view=analogy&a=..&b=..&c=.., "
                                 "&view=compare&model2=.., &view=map&n=10000. The page reads it; the server "
                                 "ignores it.",
                  "operationId": "explorer", "responses": _asset("text/html", "HTML page")}},
    "/explorer.js": {"get": {"summary": "the explorer's script", "operationId": "explorerScript",
                             "responses": _asset("text/javascript", "JavaScript")}},
    "/explorer.css": {"get": {"summary": "the explorer's style sheet", "operationId": "explorerStylesheet",
                              "responses": _asset("text/css", "CSS")}},
}


#: One example per JSON operation: path and query parameters, body and the 200 answer (GloVe 6B
#: 50-d, scores cut to 4 decimals). Put into the document and shown on /docs.
EXAMPLE_MODEL = "glove-6b-50d"
EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("/livez", "get"): {"response": {"status": "ok"}},
    ("/readyz", "get"): {"response": {"status": "ready", "models": {EXAMPLE_MODEL: {"status": "ready"}}}},
    ("/models", "get"): {"response": [
        {"name": EXAMPLE_MODEL, "status": "ready", "method": "glove", "dim": 50, "vocab_size": 400000,
         "index": {"kind": "hnsw", "source": "loaded", "seconds": 0.692, "ef_search": 128},
         "created": "2026-11-29T04:05:16+00:00", "contextual": False}]},
    ("/models/{name}", "get"): {"path": {"name": EXAMPLE_MODEL}, "response": {
        "name": EXAMPLE_MODEL, "status": "ready", "method": "glove", "dim": 50, "vocab_size": 400000,
        "index": {"kind": "hnsw", "source": "loaded", "seconds": 0.692, "ef_search": 128},
        "created": "2026-11-29T04:05:16+00:00", "contextual": False, "hyperparameters": {"dim": 50},
        "meta": {"method": "glove", "hyperparameters": {"dim": 50}, "created": "2026-11-29T04:05:16+00:00"}}},
    ("/models/{name}/neighbors", "get"): {
        "path": {"name": EXAMPLE_MODEL}, "query": {"word": "frog", "k": 3},
        "response": {"word": "frog", "neighbors": [{"word": "snake", "score": 0.8445},
                                                   {"word": "ape", "score": 0.7938},
                                                   {"word": "toad", "score": 0.7908}]}},
    ("/models/{name}/similar", "post"): {
        "path": {"name": EXAMPLE_MODEL},
        "body": {"positive": ["king", {"word": "woman", "weight": 1}], "negative": ["man"], "k": 3},
        "response": {"results": [{"word": "queen", "score": 0.8524}, {"word": "throne", "score": 0.7664},
                                 {"word": "prince", "score": 0.7592}]}},
    ("/models/{name}/analogy", "post"): {
        "path": {"name": EXAMPLE_MODEL}, "body": {"a": "italy", "b": "mussolini", "c": "germany", "k": 3},
        "response": {"a": "italy", "b": "mussolini", "c": "germany", "method": "3cosadd",
                     "answers": [{"word": "hitler", "score": 0.8666}, {"word": "adolf", "score": 0.8489},
                                 {"word": "stalin", "score": 0.7797}]}},
    ("/models/{name}/similarity", "post"): {
        "path": {"name": EXAMPLE_MODEL}, "body": {"pairs": [["cat", "dog"], ["cat", "carrot"], ["cat", "qwzx"]]},
        "response": {"results": [{"pair": ["cat", "dog"], "similarity": 0.9218, "missing": []},
                                 {"pair": ["cat", "carrot"], "similarity": 0.3672, "missing": []},
                                 {"pair": ["cat", "qwzx"], "similarity": None, "missing": ["qwzx"]}]}},
    ("/models/{name}/vectors", "post"): {
        "path": {"name": EXAMPLE_MODEL}, "body": {"words": ["frog"]},
        "response": {"dim": 50, "normalized": False, "vectors": [{"word": "frog", "vector": [
            0.6104, -0.2076, -0.7195, 0.893, 0.3248, 0.7656, 0.1814, -0.3309, 0.7917, -0.3166, 0.0111, 0.4541,
            1.5992, 0.0135, -0.0936, 0.1925, 0.251, 1.1277, -1.0897, -0.4291, -1.1327, -0.9046, 0.5617, -0.0585,
            1.0007, -0.3902, -0.4166, 0.7372, -0.5382, -0.9599, 0.6793, -0.5905, 0.1341, 0.5427, -0.3661, 0.015,
            -0.2496, -0.8109, 0.0789, -0.9755, -0.6639, -0.1851, -0.8717, 0.3078, 1.2839, -0.1488, 0.6218, -1.509,
            0.1458, -0.3168]}]}},
    ("/models/{name}/odd-one-out", "post"): {
        "path": {"name": EXAMPLE_MODEL}, "body": {"words": ["breakfast", "lunch", "dinner", "cereal"]},
        "response": {"odd_one_out": "cereal", "scores": [
            {"word": "breakfast", "score": 0.9607}, {"word": "lunch", "score": 0.9042},
            {"word": "dinner", "score": 0.8991}, {"word": "cereal", "score": 0.657}]}},
    ("/models/{name}/contextual", "post"): {
        "path": {"name": "contextual"}, "body": {"text": "we sat on the river bank", "word": "bank", "k": 3}},
    ("/models/{name}/vocabulary", "get"): {
        "path": {"name": EXAMPLE_MODEL}, "query": {"prefix": "fro", "limit": 5},
        "response": {"prefix": "fro", "total": 241, "words": ["from", "front", "frozen", "frontier", "frost"]}},
    ("/models/{name}/projection", "post"): {
        "path": {"name": EXAMPLE_MODEL}, "body": {"words": ["frog", "snake", "ape", "toad"]},
        "response": {"fit_on": "selected", "fit_words": 4, "explained_variance": [0.4788, 0.3167],
                     "points": [{"word": "frog", "x": 0.0032, "y": 0.0912},
                                {"word": "snake", "x": -0.0596, "y": 0.3417},
                                {"word": "ape", "x": -0.3781, "y": -0.2562},
                                {"word": "toad", "x": 0.4346, "y": -0.1767}]}},
    ("/models/{name}/map", "get"): {
        "path": {"name": EXAMPLE_MODEL}, "query": {"n": 3},
        "response": {"n": 3, "words": ["the", ",", "."], "x": [-0.34184, 0.28232, 0.05952],
                     "y": [-0.06192, -0.11155, 0.17347], "counts": None, "explained_variance": [0.8119, 0.1881]}},
}


def example_url(path: str, example: dict[str, Any]) -> str:
    """The example's URL path with its path and query parameters filled in."""
    url = path
    for key, value in example.get("path", {}).items():
        url = url.replace("{" + key + "}", quote(str(value), safe=""))
    if example.get("query"):
        url += "?" + urlencode(example["query"])
    return url


def _with_examples(paths: dict[str, Any]) -> dict[str, Any]:
    """`paths` with each example set on its parameters, request body and 200 response."""
    for (path, method), example in EXAMPLES.items():
        op = paths[path][method]
        for param in op.get("parameters", []):
            value = {**example.get("path", {}), **example.get("query", {})}.get(param["name"])
            if value is not None:
                param["example"] = value
        if "body" in example:
            op["requestBody"]["content"]["application/json"]["example"] = example["body"]
        if "response" in example:
            op["responses"]["200"]["content"]["application/json"]["example"] = example["response"]
    return paths


def openapi_document(dims: Iterable[int] = ()) -> dict[str, Any]:
    """The OpenAPI 3.1 document (a fresh copy each call). `dims`: the dimensions of the
    served models; when they all have one dimension D, a `Vector` must have exactly D
    numbers (as `validation.check_vector` requires), otherwise 1 to 4096."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        api_version = version("wordspace")
    except PackageNotFoundError:
        api_version = "0"
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "wordspace", "version": api_version,
                 "description": "Similarity, analogy and contextual queries over trained word embeddings. "
                                "Every error is {\"error\": {\"code\", \"message\"}}."},
        "paths": PATHS,
        "components": {"schemas": SCHEMAS},
    }
    doc = json.loads(json.dumps(doc))
    _with_examples(doc["paths"])
    dims = set(dims)
    if len(dims) == 1:
        dim = dims.pop()
        doc["components"]["schemas"]["Vector"].update(
            minItems=dim, maxItems=dim, description=f"exactly {dim} numbers (the served models' dimension); "
                                                    "finite; not all zero")
    return doc


def served_document() -> dict[str, Any]:
    """The document for the models this app serves now (see `openapi_document`)."""
    return openapi_document({model.emb.dim for model in registry().snapshot.models.values()})


@bp.get("/openapi.json")
def openapi_json():
    """The OpenAPI document of this deployment."""
    return jsonify(served_document())


# -- /docs: a readable page made from the document ----------------------------------------
def _code(value: Any) -> str:
    return f"<code>{html.escape(value if isinstance(value, str) else json.dumps(value))}</code>"


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def _describe(schema: dict[str, Any]) -> str:
    """A one-line human description of a schema (type, limits, default) as HTML."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a href="#schema-{name}">{name}</a>'
    if "const" in schema:
        text = f"always {_code(schema['const'])}"
    elif "enum" in schema:
        text = "one of " + ", ".join(_code(e) for e in schema["enum"])
    elif "anyOf" in schema or "allOf" in schema:
        joiner = " or " if "anyOf" in schema else " and "
        text = joiner.join(_describe(part) for part in schema.get("anyOf") or schema["allOf"])
    else:
        kinds = schema.get("type", "any")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        words = []
        for kind in kinds:
            if kind == "array":
                item = _describe(schema["items"]) if "items" in schema else "values"
                low, high = schema.get("minItems"), schema.get("maxItems")
                count = (f" ({low}&ndash;{high} items)" if low is not None and high is not None
                         else f" (at most {high})" if high is not None else f" (at least {low})" if low else "")
                words.append(f"array of {item}{count}")
            elif kind in ("integer", "number"):
                low, high = schema.get("minimum"), schema.get("maximum")
                bounds = f" in [{_number(low)}, {_number(high)}]" if low is not None and high is not None else ""
                words.append(f"{kind}{bounds}")
            elif kind == "string":
                low, high = schema.get("minLength"), schema.get("maxLength")
                size = f", {low}&ndash;{high} characters" if low is not None and high is not None else ""
                pattern = f" matching {_code(schema['pattern'])}" if "pattern" in schema else ""
                words.append(f"string{size}{pattern}")
            else:
                words.append(str(kind))
        text = " or ".join(words)
    if "default" in schema:
        text += f"; default {_code(schema['default'])}"
    if schema.get("description"):
        text += f". {html.escape(schema['description'])}"
    return text


def _properties_table(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", []))
    rows = "".join(f"<tr><td>{_code(name)}{' <em>required</em>' if name in required else ''}</td>"
                   f"<td>{_describe(prop)}</td></tr>" for name, prop in schema.get("properties", {}).items())
    return f"<table><tr><th>field</th><th>type, limits, meaning</th></tr>{rows}</table>"


def _parameter_row(param: dict[str, Any]) -> str:
    where = param["in"] + (", <em>required</em>" if param.get("required") else "")
    schema = {**param["schema"], **({"description": param["description"]} if "description" in param else {})}
    return f"<tr><td>{_code(param['name'])} ({where})</td><td>{_describe(schema)}</td></tr>"


def _pretty(value: Any, indent: int = 0) -> str:
    """JSON with one key per line, short arrays of scalars kept on one (wrapped) line."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, dict) and value:
        items = ",\n".join(f"{inner}{json.dumps(k)}: {_pretty(v, indent + 1)}" for k, v in value.items())
        return "{\n" + items + "\n" + pad + "}"
    if isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(inner + _pretty(v, indent + 1) for v in value) + "\n" + pad + "]"
    return json.dumps(value)


def _curl(base: str, path: str, method: str, example: dict[str, Any]) -> str:
    url = base.rstrip("/") + example_url(path, example)
    if method == "get":
        return f"curl -s '{url}'"
    body = json.dumps(example.get("body", {}))
    return f"curl -s -X POST {url} -H 'Content-Type: application/json' -d '{body}'"


DOCS_STYLE = """
body{font:16px/1.5 system-ui,sans-serif;max-width:62em;margin:0 auto;padding:1em;color:#1b1b1b}
h1{margin-top:0}h2{font-size:1.15em;margin:2em 0 .3em;padding-top:.6em;border-top:1px solid #ddd}
h2 code{font-size:1em}.method{display:inline-block;min-width:3.5em;font-weight:700;color:#05507a}
pre{background:#f4f5f7;padding:.6em .8em;white-space:pre-wrap;overflow-wrap:anywhere;font-size:.88em}
code{overflow-wrap:anywhere}table{border-collapse:collapse;width:100%;margin:.3em 0;table-layout:fixed}
td,th{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f4f5f7}td:first-child,th:first-child{width:12em}nav ul{columns:2 20em;padding-left:1.2em}
details{margin:.4em 0}summary{cursor:pointer;color:#05507a}a{color:#05507a}
@media (max-width:40em){td:first-child,th:first-child{width:7em}body{padding:.5em}}
"""


def _docs_html(doc: dict[str, Any], base: str) -> str:
    """Every operation with its parameters, body fields, one example request and answer and its
    responses, then every schema: wrapped text, no external assets."""
    schemas = doc["components"]["schemas"]
    toc, parts = [], []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            anchor = op["operationId"]
            toc.append(f'<li><a href="#{anchor}"><code>{method.upper()} {html.escape(path)}</code></a> '
                       f'{html.escape(op["summary"])}</li>')
            parts.append(f'<h2 id="{anchor}"><span class="method">{method.upper()}</span> '
                         f'<code>{html.escape(path)}</code></h2>')
            parts.append(f"<p>{html.escape(op.get('description') or op['summary'])}</p>")
            params = op.get("parameters", [])
            if params:
                rows = "".join(_parameter_row(param) for param in params)
                parts.append(f"<table><tr><th>parameter</th><th>type, limits, meaning</th></tr>{rows}</table>")
            body = op.get("requestBody")
            if body:
                name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
                parts.append(f'<p>JSON body (<a href="#schema-{name}">{name}</a>):</p>'
                             + _properties_table(schemas[name]))
            example = EXAMPLES.get((path, method))
            if example is not None:
                parts.append(f"<p>Example:</p><pre>{html.escape(_curl(base, path, method, example))}</pre>")
                if "response" in example:
                    parts.append(f"<pre>{html.escape(_pretty(example['response']))}</pre>")
            codes = "".join(f"<li><b>{code}</b> {html.escape(r['description'])}</li>"
                            for code, r in op["responses"].items())
            parts.append(f"<p>Responses:</p><ul>{codes}</ul>")
    parts.append('<h2 id="schemas">Schemas</h2>')
    for name, schema in schemas.items():
        text = _properties_table(schema) if "properties" in schema else f"<p>{_describe(schema)}</p>"
        parts.append(f'<h3 id="schema-{name}">{name}</h3>{text}<details><summary>JSON Schema</summary>'
                     f"<pre>{html.escape(json.dumps(schema, indent=2))}</pre></details>")
    head = (f"<h1>{html.escape(doc['info']['title'])} API</h1><p>{html.escape(doc['info']['description'])}</p>"
            '<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1). '
            'The web explorer: <a href="/">/</a>.</p>'
            f"<nav><ul>{''.join(toc)}</ul></nav>")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<title>wordspace API</title><link rel='icon' href='data:,'>"
            f"<style>{DOCS_STYLE}</style></head><body>{head}{''.join(parts)}</body></html>")


@bp.get("/docs")
def docs():
    """A self-contained HTML description of every operation (no external assets)."""
    return Response(_docs_html(served_document(), request.url_root), mimetype="text/html")
