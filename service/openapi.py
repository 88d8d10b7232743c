"""The OpenAPI 3.1 document of the API (GET /openapi.json) and a readable page (GET /docs).

Request schemas carry the exact types and limits `validation.py` enforces;
every operation lists each status it can return, errors with the shared
envelope. Tests check the document against the OpenAPI meta-schema, against
the app's url_map, and every test response against its schema.
"""
from __future__ import annotations

import html
import json
from typing import Any

from flask import Blueprint, Response, jsonify

from embeddings.query import ANALOGY_METHODS
from embeddings.store import NAME_PATTERN

from . import validation as v

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
           "spellings), or a model without a contextual encoder (not_contextual)",
    "405": "method not allowed (the Allow header lists the allowed ones)",
    "413": "request body larger than the limit (1 MiB by default), chunked bodies included",
    "415": "request body is not application/json",
    "503": "the model is still loading or failed to load",
}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _error(ERRORS[code]) for code in codes}


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
                                    "weight": {"type": "number", "minimum": -v.MAX_WEIGHT, "maximum": v.MAX_WEIGHT,
                                               "default": 1}}},
    "Term": {"anyOf": [_ref("Word"), _ref("WeightedWord")]},
    "Vector": {"type": "array", "minItems": 1, "maxItems": v.MAX_VECTOR_DIM,
               "items": {"type": "number", "minimum": -1e30, "maximum": 1e30},
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
                  "properties": {"status": {"const": "ready"}, "models": _ref("ModelStates")}},
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
        "anyOf": [
            {"required": ["positive"], "properties": {"positive": {"minItems": 1}}},
            {"required": ["negative"], "properties": {"negative": {"minItems": 1}}},
            {"required": ["vector"]},
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
                                              "models": {"$ref": REF + "ModelStates",
                           "description": "GET /readyz only: every model's state"},
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
                          "properties": {"text": {"type": "string", "minLength": 1, "maxLength": v.MAX_TEXT_CHARS},
                                         "word": _ref("Word"), "k": K}},
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
    "/openapi.json": {"get": {"summary": "this document", "operationId": "openapi",
                              "responses": {"200": _json({"type": "object"}, "the OpenAPI document"),
                                            "405": _error(ERRORS["405"])}}},
    "/docs": {"get": {"summary": "a readable page describing the API", "operationId": "docs",
                      "responses": {"200": {"description": "HTML page",
                                            "content": {"text/html": {"schema": {"type": "string"}}}},
                                    "405": _error(ERRORS["405"])}}},
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (a fresh copy each call)."""
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
    return json.loads(json.dumps(doc))


@bp.get("/openapi.json")
def openapi_json():
    """The OpenAPI document."""
    return jsonify(openapi_document())


def _docs_html(doc: dict[str, Any]) -> str:
    parts = [f"<h1>{html.escape(doc['info']['title'])} API</h1>",
             f"<p>{html.escape(doc['info']['description'])}</p>",
             '<p>Machine-readable: <a href="/openapi.json">/openapi.json</a></p>']
    schemas = doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            parts.append(f"<h2><code>{method.upper()} {html.escape(path)}</code></h2>")
            parts.append(f"<p>{html.escape(op.get('description') or op['summary'])}</p>")
            for param in op.get("parameters", []):
                parts.append(f"<p>{param['in']} parameter <code>{html.escape(param['name'])}</code>"
                             f"{' (required)' if param.get('required') else ''}: "
                             f"<code>{html.escape(json.dumps(param['schema']))}</code></p>")
            body = op.get("requestBody")
            if body:
                name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
                parts.append(f"<p>JSON body <code>{name}</code>:</p><pre>"
                             f"{html.escape(json.dumps(schemas[name], indent=1))}</pre>")
            codes = ", ".join(f"{code} ({html.escape(r['description'])})" for code, r in op["responses"].items())
            parts.append(f"<p>Responses: {codes}</p>")
    style = "body{font-family:sans-serif;max-width:60em;margin:2em auto}pre{background:#f4f4f4;padding:.5em}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>wordspace API</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")


@bp.get("/docs")
def docs():
    """A self-contained HTML description of every operation (no external assets)."""
    return Response(_docs_html(openapi_document()), mimetype="text/html")
