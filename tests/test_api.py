"""The REST API: every route's happy path, every error class, the OpenAPI document
(validated, equal to the url_map, and every response here checked against it),
failed models, readiness, reload, and body limits under a real waitress server."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema_rs
import numpy as np
import pytest

from embeddings import store
from embeddings.vectors import Embeddings
from service.app import create_app
from service.registry import registry
from embeddings.index import INDEX_FILE
from service.openapi import openapi_document
from tests.conftest import planted_embeddings

ROOT = Path(__file__).resolve().parents[1]
DOC = openapi_document()
_VALIDATORS: dict[tuple[str, str, str], jsonschema_rs.Draft202012Validator] = {}


# -- fixtures ----------------------------------------------------------------------
def tiny_contextual(models_dir: Path, name: str = "ctx") -> None:
    """A contextual model with an (untrained) tiny word-level Transformer encoder."""
    import torch

    from embeddings.encoders import TransformerEncoder
    from embeddings.pooling import save_contextual
    from embeddings.transformer_model import SPECIALS, TransformerConfig, TransformerEncoderLM

    words = ["the", "king", "queen", "river", "bank", "money", "we", "sat", "on", "and"]
    vocab = list(SPECIALS) + words
    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=len(vocab), d_model=16, n_heads=2, n_layers=1, d_ff=32,
                               max_len=32, dropout=0.0)
    encoder = TransformerEncoder(TransformerEncoderLM(config), vocab, [1] * len(vocab))
    vectors = np.random.default_rng(0).normal(size=(len(words), 16)).astype(np.float32)
    meta = {"method": "contextual", "params": {"layers": "last"},
            "contextual": {"encoder": encoder.describe(), "layers": "last", "lowercase": True}}
    save_contextual(models_dir, name, Embeddings(words, vectors, np.arange(len(words), 0, -1), meta), encoder)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A models dir with planted (+ stored evaluation), a random model and a contextual one."""
    models = tmp_path_factory.mktemp("served-models")
    store.save_model(models, "planted", planted_embeddings())
    store.save_model(models, "planted64", planted_embeddings(dim=64))  # 3CosMul needs less noise than dim 8
    store.update_meta(models, "planted", {"evaluation": {"google": {"accuracy": 1.0}},
                                          "hyperparameters": {"dim": 8}})
    rng = np.random.default_rng(3)
    rand = Embeddings([f"w{i}" for i in range(300)], rng.normal(size=(300, 8)).astype(np.float32),
                      np.arange(300, 0, -1), {"method": "random"})
    store.save_model(models, "rand", rand)
    tiny_contextual(models)
    return models


@pytest.fixture(scope="module")
def app(served):
    return create_app({"MODELS_DIR": served, "TESTING": True})


class CheckedClient:
    """The Flask test client; every response is checked against the OpenAPI document."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()

    def open(self, method: str, url: str, **kwargs):
        response = self.client.open(url, method=method, **kwargs)
        check_against_openapi(self.app, method, url, response)
        return response

    def get(self, url, **kw):
        return self.open("GET", url, **kw)

    def post(self, url, **kw):
        return self.open("POST", url, **kw)


@pytest.fixture(scope="module")
def api(app) -> CheckedClient:
    return CheckedClient(app)


def _template(app, method: str, url: str) -> str | None:
    adapter = app.url_map.bind("localhost")
    try:
        rule, _ = adapter.match(url.split("?")[0], method=method if method != "HEAD" else "GET",
                                return_rule=True)
    except Exception:  # noqa: BLE001 - unknown path or method: no operation to check
        return None
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)


def check_against_openapi(app, method: str, url: str, response) -> None:
    """The status is documented for the operation, the body matches its schema; errors use the envelope."""
    if response.status_code >= 400:
        assert response.mimetype == "application/json", response.get_data(as_text=True)[:200]
        body = response.get_json()
        assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
        assert "Traceback" not in response.get_data(as_text=True)
    path = _template(app, method, url)
    if path is None:
        return
    operation = DOC["paths"][path][method.lower()]
    status = str(response.status_code)
    assert status in operation["responses"], f"{method} {path} returned undocumented {status}"
    content = operation["responses"][status]["content"]
    assert response.mimetype in content
    if response.mimetype != "application/json":
        return
    key = (path, method, status)
    if key not in _VALIDATORS:
        schema = dict(content["application/json"]["schema"])
        schema["components"] = DOC["components"]
        _VALIDATORS[key] = jsonschema_rs.Draft202012Validator(schema)
    _VALIDATORS[key].validate(response.get_json())


# -- health and models -------------------------------------------------------------
def test_livez_and_readyz(api):
    assert api.get("/livez").get_json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["models"] == {n: {"status": "ready"} for n in ("ctx", "planted", "planted64", "rand")}


def test_models_list(api):
    rows = {row["name"]: row for row in api.get("/models").get_json()}
    assert set(rows) == {"ctx", "planted", "planted64", "rand"}
    planted = rows["planted"]
    assert (planted["method"], planted["dim"], planted["vocab_size"], planted["status"]) == ("planted", 8, 48, "ready")
    assert planted["index"]["kind"] == "flat" and planted["created"]
    assert rows["ctx"]["contextual"] is True and rows["planted"]["contextual"] is False


def test_model_detail_has_hyperparameters_and_evaluation(api):
    detail = api.get("/models/planted").get_json()
    assert detail["hyperparameters"] == {"dim": 8}
    assert detail["evaluation"] == {"google": {"accuracy": 1.0}}
    assert "files" not in detail["meta"]
    assert api.get("/models/ctx").get_json()["hyperparameters"] == {"layers": "last"}


def test_index_was_persisted_at_start_and_is_loaded_next_time(served, app):
    assert INDEX_FILE in store.read_meta(store.model_path(served, "planted").resolve())["files"]
    again = create_app({"MODELS_DIR": served, "MODELS": ["planted"]})
    assert registry(again).get("planted").index_report.source == "loaded"


# -- query happy paths ---------------------------------------------------------------
def test_neighbors(api):
    body = api.get("/models/planted/neighbors?word=king&k=3").get_json()
    assert body["word"] == "king" and len(body["neighbors"]) == 3
    assert "king" not in [n["word"] for n in body["neighbors"]]
    scores = [n["score"] for n in body["neighbors"]]
    assert scores == sorted(scores, reverse=True)
    assert len(api.get("/models/planted/neighbors?word=king").get_json()["neighbors"]) == 10


def test_neighbors_restrict_vocab(api):
    body = api.get("/models/rand/neighbors?word=w250&k=5&restrict_vocab=20").get_json()
    assert all(int(n["word"][1:]) < 20 for n in body["neighbors"])


@pytest.mark.parametrize("model,method", [("planted", "3cosadd"), ("planted64", "3cosadd"),
                                          ("planted64", "3cosmul")])
def test_analogy_king_queen(api, model, method):
    body = api.post(f"/models/{model}/analogy",
                    json={"a": "man", "b": "king", "c": "woman", "k": 3, "method": method}).get_json()
    assert body["answers"][0]["word"] == "queen" and body["method"] == method
    assert not {"man", "king", "woman"} & {a["word"] for a in body["answers"]}


def test_analogy_seed_example(api):
    body = api.post("/models/planted/analogy", json={"a": "italy", "b": "mussolini", "c": "germany"}).get_json()
    assert body["answers"][0]["word"] == "hitler" and len(body["answers"]) == 10
    assert not {"italy", "mussolini", "germany"} & {a["word"] for a in body["answers"]}


def test_integral_float_k_is_an_integer_as_in_json_schema(api):
    body = api.post("/models/planted/analogy", json={"a": "man", "b": "king", "c": "woman", "k": 2.0}).get_json()
    assert len(body["answers"]) == 2


def test_similar_words_weights_and_vector(api):
    plain = api.post("/models/planted/similar", json={"positive": ["king", "woman"], "negative": ["man"], "k": 1})
    assert plain.get_json()["results"][0]["word"] == "queen"
    weighted = api.post("/models/planted/similar",
                        json={"positive": [{"word": "king", "weight": 1}, "woman"],
                              "negative": [{"word": "man", "weight": 1.0}], "k": 2, "exact": True})
    assert weighted.get_json()["results"][0]["word"] == "queen"
    vector = api.post("/models/planted/similar", json={"vector": [1, 0, 0, 0, 0, 0, 0, 0], "k": 48}).get_json()
    assert len(vector["results"]) == 48  # a raw vector excludes nothing
    assert api.post("/models/planted/similar", json={"negative": ["man"], "k": 2}).status_code == 200


def test_similarity_pairs_with_oov(api):
    body = api.post("/models/planted/similarity",
                    json={"pairs": [["king", "queen"], ["king", "zzz"], ["yyy", "zzz"]]}).get_json()["results"]
    assert body[0]["similarity"] == pytest.approx(0.5, abs=1e-6) and body[0]["missing"] == []
    assert body[1] == {"pair": ["king", "zzz"], "similarity": None, "missing": ["zzz"]}
    assert body[2]["missing"] == ["yyy", "zzz"]


def test_vectors(api):
    body = api.post("/models/planted/vectors", json={"words": ["king", "man"]}).get_json()
    assert body["dim"] == 8 and [v["word"] for v in body["vectors"]] == ["king", "man"]
    np.testing.assert_allclose(body["vectors"][0]["vector"], planted_embeddings().vector("king"))
    unit = api.post("/models/planted/vectors", json={"words": ["king"], "normalized": True}).get_json()
    assert np.linalg.norm(unit["vectors"][0]["vector"]) == pytest.approx(1.0, abs=1e-6)


def test_odd_one_out(api):
    body = api.post("/models/planted/odd-one-out", json={"words": ["king", "queen", "man", "woman", "noise1"]})
    assert body.get_json()["odd_one_out"] == "noise1"


def test_contextual(api):
    body = api.post("/models/ctx/contextual", json={"text": "We sat on the river bank", "word": "bank", "k": 3})
    assert body.status_code == 200, body.get_json()
    data = body.get_json()
    assert data["word"] == "bank" and len(data["neighbors"]) == 3 and len(data["vector"]) == 16
    assert "bank" not in [n["word"] for n in data["neighbors"]]
    assert [t["token"] for t in data["tokens"]] == ["we", "sat", "on", "the", "river", "bank"]
    assert api.post("/models/ctx/contextual", json={"text": "the king"}).status_code == 200


def test_openapi_and_docs(api):
    assert api.get("/openapi.json").get_json() == DOC
    page = api.get("/docs")
    assert page.mimetype == "text/html" and "/models/{name}/analogy" in page.get_data(as_text=True)


# -- error classes -------------------------------------------------------------------
BAD_K = [0, -1, 101, "10", True, 1.5, None]


@pytest.mark.parametrize("k", BAD_K)
@pytest.mark.parametrize("route,body", [
    ("similar", {"positive": ["king"]}),
    ("analogy", {"a": "man", "b": "king", "c": "woman"}),
])
def test_bad_k_is_400(api, route, body, k):
    response = api.post(f"/models/planted/{route}", json={**body, "k": k})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_parameter"


@pytest.mark.parametrize("query", ["k=0", "k=101", "k=-1", "k=1.5", "k=abc", "k=", "k=%2010",
                                   "restrict_vocab=0", "word=", "word=" + "a" * 101, ""])
def test_bad_neighbors_query_is_400(api, query):
    url = "/models/planted/neighbors?" + (query if query.startswith("word=") else f"word=king&{query}")
    if query == "":
        url = "/models/planted/neighbors"
    assert api.get(url).status_code == 400


@pytest.mark.parametrize("route,body", [
    ("similar", {"positive": [""]}),
    ("similar", {"positive": [3]}),
    ("similar", {"positive": ["x" * 101]}),
    ("similar", {"positive": [None]}),
    ("similar", {"positive": []}),
    ("similar", {}),
    ("similar", {"positive": ["king"] * 11}),
    ("similar", {"positive": ["king"] * 6, "negative": ["man"] * 5}),
    ("similar", {"positive": [{"word": "king", "weight": "2"}]}),
    ("similar", {"positive": [{"word": "king", "weight": True}]}),
    ("similar", {"positive": [{"word": "king", "extra": 1}]}),
    ("similar", {"positive": "king"}),
    ("similar", {"positive": ["king"], "typo": 1}),
    ("similar", {"positive": ["king"], "restrict_vocab": 0}),
    ("similar", {"positive": ["king"], "exact": "yes"}),
    ("similar", {"vector": [1, 2, 3]}),
    ("similar", {"vector": [0] * 8}),
    ("similar", {"vector": ["1"] * 8}),
    ("similar", {"vector": [True] * 8}),
    ("similar", {"vector": []}),
    ("similar", {"vector": [1e31] + [0] * 7}),
    ("analogy", {"a": "man", "b": "king"}),
    ("analogy", {"a": "man", "b": "king", "c": 1}),
    ("analogy", {"a": "man", "b": "king", "c": "woman", "method": "3cosfoo"}),
    ("similarity", {"pairs": []}),
    ("similarity", {"pairs": [["king"]]}),
    ("similarity", {"pairs": [["king", "queen", "man"]]}),
    ("similarity", {"pairs": ["king"]}),
    ("similarity", {"pairs": [["king", 5]]}),
    ("vectors", {"words": []}),
    ("vectors", {"words": "king"}),
    ("vectors", {"words": ["king"] * 101}),
    ("odd-one-out", {"words": ["king"]}),
    ("odd-one-out", {"words": ["king", ""]}),
])
def test_invalid_bodies_are_400(api, route, body):
    response = api.post(f"/models/planted/{route}", json=body)
    assert response.status_code == 400, response.get_json()


@pytest.mark.parametrize("raw", [
    "{", "", "[]", '"king"', "null", "NaN", '{"vector": [NaN, 1, 1, 1, 1, 1, 1, 1]}',
    '{"vector": [1e999, 1, 1, 1, 1, 1, 1, 1]}', '{"positive": ["king"], "k": Infinity}',
    "[" * 100_000, '{"a":' * 50_000, b"\xff\xfe{}",
])
def test_malformed_json_is_400(api, raw):
    response = api.post("/models/planted/similar", data=raw, content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize("route", ["similar", "analogy", "similarity", "vectors", "odd-one-out", "contextual"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(api, route, content_type):
    kwargs = {"data": '{"positive": ["king"]}'}
    if content_type:
        kwargs["content_type"] = content_type
    response = api.post(f"/models/ctx/{route}", **kwargs)
    assert response.status_code == 415 and response.get_json()["error"]["code"] == "unsupported_media_type"


def test_body_over_limit_is_413(api):
    big = json.dumps({"positive": ["king"], "pad": "x" * (1 << 20)})
    response = api.post("/models/planted/similar", data=big, content_type="application/json")
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("url,method,allow", [
    ("/models/planted/similar", "DELETE", {"POST"}),
    ("/models/planted/analogy", "GET", {"POST"}),
    ("/models/planted/neighbors", "POST", {"GET", "HEAD"}),
    ("/livez", "PUT", {"GET", "HEAD"}),
    ("/models", "OPTIONS", {"GET", "HEAD"}),
])
def test_wrong_method_is_405_with_allow(api, url, method, allow):
    response = api.open(method, url)
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == allow


@pytest.mark.parametrize("request_", [
    ("GET", "/models/nope", None), ("GET", "/models/nope/neighbors?word=king", None),
    ("POST", "/models/nope/similar", {"positive": ["king"]}), ("GET", "/models/..", None),
    ("GET", "/models/a%2Fb/neighbors?word=x", None), ("GET", "/nowhere", None),
])
def test_unknown_model_or_path_is_404(api, request_):
    method, url, body = request_
    response = api.open(method, url, json=body) if body else api.open(method, url)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] in ("model_not_found", "not_found")


@pytest.mark.parametrize("route,body", [
    ("similar", {"positive": ["kinq", "woman"], "negative": ["mann"]}),
    ("analogy", {"a": "kinq", "b": "king", "c": "mann"}),
    ("vectors", {"words": ["king", "kinq", "mann"]}),
    ("odd-one-out", {"words": ["king", "kinq", "mann"]}),
])
def test_unknown_words_are_404_naming_each_with_spellings(api, route, body):
    response = api.post(f"/models/planted/{route}", json=body)
    error = response.get_json()["error"]
    assert response.status_code == 404 and error["code"] == "word_not_found"
    assert [m["word"] for m in error["missing"]] == ["kinq", "mann"]
    assert "king" in error["missing"][0]["suggestions"] and "man" in error["missing"][1]["suggestions"]
    assert "'kinq'" in error["message"] and "'mann'" in error["message"]


def test_unknown_word_in_neighbors_is_404(api):
    response = api.get("/models/planted/neighbors?word=quen")
    assert response.status_code == 404 and response.get_json()["error"]["missing"][0]["suggestions"][0] == "queen"


def test_contextual_on_a_static_model_is_404(api):
    response = api.post("/models/planted/contextual", json={"text": "the king"})
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_contextual"


@pytest.mark.parametrize("body", [{"text": ""}, {"text": 5}, {"text": "the king", "k": 0}, {"text": "x", "extra": 1},
                                  {"text": "the king", "word": ""}])
def test_contextual_bad_input_is_400(api, body):
    assert api.post("/models/ctx/contextual", json=body).status_code == 400


def test_contextual_requests_the_schema_allows_are_answered(api):
    """A text without words has no tokens (200); a word that is not a token of the text is
    404 word_not_found, as for a word a model lacks (both bodies are valid per the schema)."""
    for text in ("   ", "?!"):
        body = api.post("/models/ctx/contextual", json={"text": text}).get_json()
        assert body["tokens"] == [] and body["n_tokens"] == 0
    for word in ("queen", "the king", "  "):
        response = api.post("/models/ctx/contextual", json={"text": "the king", "word": word})
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "word_not_found"


# -- the OpenAPI document ------------------------------------------------------------
def test_openapi_document_validates():
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    OPENAPI_31_VALIDATOR.validate(DOC)
    broken = json.loads(json.dumps(DOC))
    del broken["paths"]["/livez"]["get"]["responses"]
    broken["paths"]["/livez"]["get"]["parameters"] = [{"name": "x"}]
    assert not OPENAPI_31_VALIDATOR.is_valid(broken)
    for name, schema in DOC["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name


def test_openapi_loads_in_schemathesis():
    import schemathesis

    schema = schemathesis.openapi.from_dict(DOC)
    operations = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert ("POST", "/models/{name}/analogy") in operations and len(operations) == 19


def test_openapi_matches_url_map(app):
    from_app = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        from_app |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    from_doc = {(path, method) for path, item in DOC["paths"].items() for method in item}
    assert from_app == from_doc
    assert len(from_doc) == 19


def test_every_request_schema_limit_matches_validation():
    """The documented limits are the enforced ones (k, word length, term count)."""
    from service import validation as v

    schemas = DOC["components"]["schemas"]
    assert schemas["Word"] == {"type": "string", "minLength": 1, "maxLength": v.MAX_WORD_CHARS}
    k = schemas["AnalogyRequest"]["properties"]["k"]
    assert (k["minimum"], k["maximum"], k["type"]) == (1, 100, "integer")
    assert schemas["SimilarRequest"]["properties"]["positive"]["maxItems"] == v.MAX_TERMS


# -- failures, readiness, reload -----------------------------------------------------
def _corrupt(models: Path, name: str) -> None:
    path = store.model_path(models, name).resolve() / "vectors.npy"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_corrupt_model_is_reported_and_the_others_serve(tmp_path):
    store.save_model(tmp_path, "good", planted_embeddings())
    store.save_model(tmp_path, "bad", planted_embeddings(seed=1))
    _corrupt(tmp_path, "bad")
    api = CheckedClient(create_app({"MODELS_DIR": tmp_path}))
    ready = api.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["error"]["code"] == "not_ready"
    assert ready.get_json()["error"]["models"]["bad"]["status"] == "failed"
    assert ready.get_json()["error"]["models"]["good"]["status"] == "ready"
    assert "checksum" in ready.get_json()["error"]["models"]["bad"]["error"]
    rows = {r["name"]: r for r in api.get("/models").get_json()}
    assert rows["bad"]["status"] == "failed" and "vectors.npy" in rows["bad"]["error"]
    assert rows["good"]["status"] == "ready"
    assert api.get("/models/bad").get_json()["status"] == "failed"
    assert api.get("/models/good/neighbors?word=king").status_code == 200
    response = api.get("/models/bad/neighbors?word=king")
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "model_unavailable"


@pytest.mark.parametrize("garbage", [b"\x00\xffnot json", b"{not json", b"[]"])
def test_a_garbage_meta_fails_that_model_only(tmp_path, garbage):
    store.save_model(tmp_path, "good", planted_embeddings())
    store.save_model(tmp_path, "bad", planted_embeddings(seed=1))
    (store.model_path(tmp_path, "bad").resolve() / "meta.json").write_bytes(garbage)
    api = CheckedClient(create_app({"MODELS_DIR": tmp_path}))
    rows = {r["name"]: r for r in api.get("/models").get_json()}
    assert rows["good"]["status"] == "ready"
    assert rows["bad"]["status"] == "failed" and "meta.json" in rows["bad"]["error"]


def test_terms_that_cancel_out_give_no_results(api):
    """king - king is a valid request with no direction: 200 and no results (not a 400 the
    OpenAPI document could not announce)."""
    response = api.post("/models/planted/similar", json={"positive": ["king"], "negative": ["king"]})
    assert response.status_code == 200 and response.get_json() == {"results": []}


def test_a_word_with_a_zero_vector_is_a_400_not_a_500(tmp_path):
    emb = planted_embeddings()
    vectors = np.array(emb.vectors)
    vectors[emb.index_of("queen")] = 0
    store.save_model(tmp_path, "z", Embeddings(emb.words, vectors, emb.counts, emb.meta))
    api = CheckedClient(create_app({"MODELS_DIR": tmp_path}))
    assert api.get("/models/z/neighbors?word=queen").status_code == 400
    assert api.post("/models/z/similar", json={"positive": ["queen"]}).status_code == 400
    assert api.post("/models/z/odd-one-out", json={"words": ["queen", "queen"]}).status_code == 400
    pair = api.post("/models/z/similarity", json={"pairs": [["queen", "king"]]}).get_json()["results"][0]
    assert pair["similarity"] == 0.0
    answers = api.post("/models/z/analogy", json={"a": "man", "b": "king", "c": "woman"}).get_json()["answers"]
    assert len(answers) == 10 and all(np.isfinite(a["score"]) for a in answers)


def test_a_corrupt_index_fails_the_model_until_rebuilt(tmp_path):
    store.save_model(tmp_path, "p", planted_embeddings())
    store.save_model(tmp_path, "q", planted_embeddings(seed=1))
    create_app({"MODELS_DIR": tmp_path})  # builds and persists index.faiss
    path = store.model_path(tmp_path, "p").resolve() / INDEX_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    api = CheckedClient(create_app({"MODELS_DIR": tmp_path}))
    assert api.get("/readyz").status_code == 503
    rows = {row["name"]: row for row in api.get("/models").get_json()}
    assert rows["p"]["status"] == "failed"
    assert "index.faiss: checksum mismatch" in rows["p"]["error"] and "--rebuild" in rows["p"]["error"]
    assert api.get("/models/q/neighbors?word=king").status_code == 200  # the others serve
    from wordspace.cli import main

    assert main(["index", "p", "--rebuild", "--models", str(tmp_path)]) == 0
    api = CheckedClient(create_app({"MODELS_DIR": tmp_path}))
    assert api.get("/readyz").status_code == 200
    assert api.get("/models/p/neighbors?word=king").status_code == 200
    store.verify_file(store.model_path(tmp_path, "p").resolve(), INDEX_FILE)


def test_readyz_is_503_while_loading(tmp_path):
    store.save_model(tmp_path, "p", planted_embeddings())
    app = create_app({"MODELS_DIR": tmp_path, "MODELS": []})
    reg = registry(app)
    reg.names = ["p"]
    client = app.test_client()
    with reg._reload_lock:  # hold the loader at its start
        thread = reg.start_background()
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["error"]["models"]["p"] == {"status": "loading"}
        assert client.get("/models/p/neighbors?word=king").status_code == 503
    thread.join(30)
    assert client.get("/readyz").status_code == 200
    assert client.get("/models/p/neighbors?word=king").status_code == 200


def test_reload_swaps_one_reference_and_old_requests_finish_on_the_old_model(tmp_path):
    store.save_model(tmp_path, "p", planted_embeddings())
    app = create_app({"MODELS_DIR": tmp_path})
    reg = registry(app)
    old = reg.get("p")
    flipped = planted_embeddings()
    store.save_model(tmp_path, "p", Embeddings(flipped.words, -np.asarray(flipped.vectors), flipped.counts,
                                               flipped.meta))
    reg.reload()
    new = reg.get("p")
    assert new is not old
    np.testing.assert_allclose(old.emb.vector("king"), -new.emb.vector("king"))
    assert old.index.neighbors("king", 3) == new.index.neighbors("king", 3)  # both still answer
    assert old.index.emb.vector("king")[0] == 1.0


def test_env_overrides_and_test_mapping(tmp_path, monkeypatch):
    from service.app import resolve_config

    monkeypatch.setenv("WORDSPACE_EF_SEARCH", "77")
    monkeypatch.setenv("WORDSPACE_MAX_CONTENT_LENGTH", "2048")
    config = resolve_config({"MAX_CONTENT_LENGTH": 4096, "MODELS_DIR": tmp_path})
    assert config["HNSW_EF_SEARCH"] == 77 and config["MAX_CONTENT_LENGTH"] == 4096
    monkeypatch.setenv("WORDSPACE_EF_SEARCH", "many")
    with pytest.raises(ValueError, match="WORDSPACE_EF_SEARCH"):
        resolve_config({})


def test_each_request_thread_pins_its_own_openmp_threads(tmp_path):
    """libgomp keeps the thread count per thread: the app pins each request thread once."""
    import faiss

    app = create_app({"MODELS_DIR": tmp_path, "REQUEST_NATIVE_THREADS": 1})
    seen = []

    def run() -> None:
        faiss.omp_set_num_threads(2)
        app.test_client().get("/livez")
        seen.append(faiss.omp_get_max_threads())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [1]


def test_hnsw_model_serves_with_configured_ef_search(tmp_path):
    store.save_model(tmp_path, "p", planted_embeddings())
    api = CheckedClient(create_app({"MODELS_DIR": tmp_path, "FLAT_MAX_WORDS": 10, "HNSW_EF_SEARCH": 64}))
    index = api.get("/models/p").get_json()["index"]
    assert index["kind"] == "hnsw" and index["ef_search"] == 64
    body = api.post("/models/p/analogy", json={"a": "man", "b": "king", "c": "woman", "exact": False})
    assert body.get_json()["answers"][0]["word"] == "queen"


# -- a real waitress server ----------------------------------------------------------
@pytest.fixture(scope="module")
def waitress_server(app):
    from waitress import create_server

    from wordspace.cli_service import WAITRESS_BODY_FACTOR

    server = create_server(app, host="127.0.0.1", port=0, threads=2,
                           max_request_body_size=app.config["MAX_CONTENT_LENGTH"] * WAITRESS_BODY_FACTOR)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield "127.0.0.1", server.effective_port
    server.close()
    thread.join(5)


def _chunked_post(host, port, path, chunks):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for chunk in chunks:
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


def test_chunked_body_over_limit_is_413_json_under_waitress(waitress_server):
    host, port = waitress_server
    status, ctype, body = _chunked_post(host, port, "/models/planted/similar",
                                        [b'{"positive": ["king"], "pad": "'] + [b"x" * 65536] * 40 + [b'"}'])
    assert status == 413 and ctype == "application/json"
    assert json.loads(body)["error"]["code"] == "payload_too_large"


def test_small_chunked_body_is_served_under_waitress(waitress_server):
    host, port = waitress_server
    status, _, body = _chunked_post(host, port, "/models/planted/analogy",
                                    [b'{"a": "man", "b": ', b'"king", "c": "woman", "k": 1}'])
    assert status == 200 and json.loads(body)["answers"][0]["word"] == "queen"


def _get(host, port, path):
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_wordspace_serve_and_index_commands(tmp_path):
    """The CLI: `index` persists indexes, `serve` runs waitress and turns ready."""
    store.save_model(tmp_path, "p", planted_embeddings())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-c", "import sys; from wordspace.cli import main; sys.exit(main())"]
    out = subprocess.run(cli + ["index", "--models", str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0 and "p: flat index built (persisted)" in out.stdout
    proc = subprocess.Popen(cli + ["serve", "--models", str(tmp_path), "--port", "0", "--threads", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", line).group(1))
        deadline = time.monotonic() + 60
        while True:
            status, headers, _ = _get("127.0.0.1", port, "/readyz")
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 200 and headers["Server"] == "wordspace"
        assert json.loads(_get("127.0.0.1", port, "/models/p")[2])["index"]["source"] == "loaded"
        store.save_model(tmp_path, "q", planted_embeddings(seed=2))
        proc.send_signal(signal.SIGHUP)  # reload: the new model appears once built on the side
        deadline = time.monotonic() + 60
        while _get("127.0.0.1", port, "/models/q")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        # One worker has reloaded; /readyz turns 200 again once every worker has (serve
        # runs one worker per core, and each request may reach any of them).
        while _get("127.0.0.1", port, "/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        for _ in range(10):
            assert json.loads(_get("127.0.0.1", port, "/models/q")[2])["status"] == "ready"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
