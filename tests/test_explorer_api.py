"""The explorer's core pieces and JSON endpoints: prefix completion against a brute-force
filter, the 2-D projection (shared with the plots), the vocabulary / projection / frequency
map routes (every response checked against the OpenAPI document), the page's assets, the
readable /docs with one valid example per operation, and the TF Projector export."""
from __future__ import annotations

import re

import jsonschema_rs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.plot import plot_words
from embeddings import store
from embeddings.completion import PrefixIndex
from embeddings.formats import PROJECTOR_FILES, export_projector
from embeddings.projection import project_2d
from embeddings.query import WordIndex
from embeddings.vectors import Embeddings
from service import validation as v
from service.app import create_app
from service.openapi import EXAMPLES, openapi_document
from tests.conftest import planted_embeddings
from tests.test_api import CheckedClient
from wordspace.cli import main

DOC = openapi_document()


# -- prefix completion ------------------------------------------------------------------------
def brute_force(words: list[str], prefix: str, limit: int) -> tuple[list[str], int]:
    matches = [w for w in words if w.startswith(prefix)]  # row order = most frequent first
    return matches[:limit], len(matches)


@settings(max_examples=200, deadline=None)
@given(words=st.lists(st.text(alphabet="ab\U0010ffffé", min_size=1, max_size=4), unique=True, max_size=40),
       prefix=st.text(alphabet="ab\U0010ffffé", min_size=1, max_size=3), limit=st.integers(1, 12))
def test_completion_equals_a_brute_force_filter(words, prefix, limit):
    found = PrefixIndex(words).complete(prefix, limit)
    assert (found.words, found.total) == brute_force(words, prefix, limit)


def test_completion_is_most_frequent_first_and_validates():
    words = ["the", "then", "there", "this", "thermal", "theta", "a"]
    index = PrefixIndex(words)
    assert index.complete("the", 3) == (["the", "then", "there"], 5)
    assert index.complete("thez", 3) == ([], 0)
    assert index.complete("A", 3) == ([], 0)  # case-sensitive
    for bad in ("", None):
        with pytest.raises(ValueError):
            index.complete(bad)
    for bad_limit in (0, True, 1.5):
        with pytest.raises(ValueError):
            index.complete("t", bad_limit)
    assert WordIndex.brute_force(planted_embeddings()).complete("noise1", 4).words == \
        ["noise1", "noise10", "noise11", "noise12"]


# -- the projection ----------------------------------------------------------------------------
def test_projection_is_deterministic_centred_and_the_plots_map(planted, tmp_path):
    index = WordIndex.brute_force(planted)
    words = ["king", "queen", "man", "woman", "italy", "germany"]
    first, second = index.project(words), index.project(words)
    np.testing.assert_array_equal(first.points, second.points)
    np.testing.assert_allclose(first.points.mean(axis=0), 0, atol=1e-6)  # fit on these words: centred
    assert 0 < first.explained_variance[1] <= first.explained_variance[0] <= 1
    plotted = plot_words(planted, tmp_path / "p.svg", words=words)
    np.testing.assert_allclose([plotted.coordinates[w] for w in words], first.points, rtol=1e-6, atol=1e-7)
    fixed = index.project(["king", "queen"], fit_top=30)
    plotted = plot_words(planted, tmp_path / "v.svg", words=["king", "queen"], fit_on="vocab", fit_top=30)
    np.testing.assert_allclose([plotted.coordinates[w] for w in ("king", "queen")], fixed.points, atol=1e-6)


def test_projection_edge_cases():
    same = np.ones((3, 4), np.float32)
    flat = project_2d(same)
    assert flat.explained_variance == (0.0, 0.0) and not flat.points.any()
    two_dims = project_2d(np.array([[1, 0], [0, 1], [1, 1]], np.float32))
    assert two_dims.points.shape == (3, 2)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        project_2d(np.ones((3, 1), np.float32))
    one = project_2d(np.ones((1, 4), np.float32))  # one word: one point, the origin
    assert one.explained_variance == (0.0, 0.0) and not one.points.any()
    with pytest.raises(ValueError, match="at least one word"):
        project_2d(np.ones((0, 4), np.float32))
    with pytest.raises(ValueError, match="finite"):
        project_2d(np.array([[np.nan, 1, 2], [1, 2, 3]], np.float32))
    index = WordIndex.brute_force(planted_embeddings())
    with pytest.raises(KeyError, match="kinq"):
        index.project(["king", "kinq"])
    with pytest.raises(ValueError, match="fit_top"):
        index.project(["king"], fit_top=1)


# -- the JSON endpoints -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api(tmp_path_factory) -> CheckedClient:
    models = tmp_path_factory.mktemp("explore-models")
    store.save_model(models, "planted", planted_embeddings())
    emb = planted_embeddings()
    store.save_model(models, "nocounts", Embeddings(emb.words, emb.vectors, None, {"method": "imported"}))
    store.save_model(models, "one", Embeddings(["solo"], np.ones((1, 4), np.float32)))
    return CheckedClient(create_app({"MODELS_DIR": models, "TESTING": True}))


def test_vocabulary_completes_over_the_whole_vocabulary(api):
    body = api.get("/models/planted/vocabulary?prefix=noise3&limit=3").get_json()
    assert body == {"prefix": "noise3", "total": 11, "words": ["noise3", "noise30", "noise31"]}
    assert api.get("/models/planted/vocabulary?prefix=noise39").get_json()["words"] == ["noise39"]
    assert api.get("/models/planted/vocabulary?prefix=zzz").get_json() == {"prefix": "zzz", "total": 0, "words": []}
    assert len(api.get("/models/planted/vocabulary?prefix=n&limit=100").get_json()["words"]) == 40


@pytest.mark.parametrize("query", ["", "prefix=", "prefix=" + "a" * 101, "prefix=k&limit=0", "prefix=k&limit=101",
                                   "prefix=k&limit=abc", "prefix=k&limit=1.5"])
def test_vocabulary_bad_queries_are_400(api, query):
    response = api.get(f"/models/planted/vocabulary?{query}")
    assert response.status_code == 400, response.get_json()


def test_projection_route_answers_what_the_core_computes(api):
    words = ["king", "queen", "man", "woman", "king"]
    body = api.post("/models/planted/projection", json={"words": words}).get_json()
    assert [p["word"] for p in body["points"]] == ["king", "queen", "man", "woman"]  # each word once
    assert body["fit_on"] == "selected" and body["fit_words"] == 4
    expected = WordIndex.brute_force(planted_embeddings()).project(["king", "queen", "man", "woman"])
    np.testing.assert_allclose([[p["x"], p["y"]] for p in body["points"]], expected.points, atol=1e-6)
    fixed = api.post("/models/planted/projection", json={"words": ["king"], "fit_on": "vocab", "fit_top": 20})
    assert fixed.get_json()["fit_words"] == 20 and len(fixed.get_json()["points"]) == 1


@pytest.mark.parametrize("body", [
    {}, {"words": []}, {"words": "king"}, {"words": ["king"]},
    {"words": ["king", 3]}, {"words": ["king", ""]}, {"words": ["king", "queen"], "fit_top": 10},
    {"words": ["king"], "fit_on": "vocab", "fit_top": 1}, {"words": ["king"], "fit_on": "corpus"},
    {"words": ["king"] * (v.MAX_PROJECTION_WORDS + 1)}, {"words": ["king", "queen"], "extra": 1},
])
def test_projection_bad_bodies_are_400(api, body):
    response = api.post("/models/planted/projection", json=body)
    assert response.status_code == 400, response.get_json()


def test_projection_of_copies_of_one_word_is_the_origin(api):
    """Two words as the OpenAPI schema asks, but the same one: one point, at the origin (not a 400)."""
    body = api.post("/models/planted/projection", json={"words": ["king", "king"]}).get_json()
    assert body["points"] == [{"word": "king", "x": 0.0, "y": 0.0}] and body["explained_variance"] == [0.0, 0.0]


def test_projection_unknown_words_are_404_with_suggestions(api):
    response = api.post("/models/planted/projection", json={"words": ["king", "quen"]})
    error = response.get_json()["error"]
    assert response.status_code == 404 and error["code"] == "word_not_found"
    assert error["missing"] == [{"word": "quen", "suggestions": ["queen"]}]
    assert api.post("/models/planted/projection", data="{}", content_type="text/plain").status_code == 415


def test_frequency_map(api):
    body = api.get("/models/planted/map?n=10").get_json()
    assert body["n"] == 10 and body["words"] == list(planted_embeddings().words[:10])
    assert body["counts"] == planted_embeddings().counts[:10].tolist()
    assert len(body["x"]) == len(body["y"]) == 10
    assert api.get("/models/planted/map").get_json()["n"] == 48  # default 1,000, capped at the vocabulary
    assert api.get("/models/nocounts/map?n=5").get_json()["counts"] is None
    for query in ("n=1", "n=50001", "n=x", "n=-3"):
        assert api.get(f"/models/planted/map?{query}").status_code == 400
    one = api.get("/models/one/map").get_json()  # a one-word model: its word at the origin
    assert one["words"] == ["solo"] and one["x"] == [0.0] and one["y"] == [0.0]
    assert api.get("/models/nope/map").status_code == 404


# -- the page, its assets and /docs ------------------------------------------------------------------
def test_page_and_assets_are_served_with_no_outside_reference(api):
    page = api.get("/")
    assert page.mimetype == "text/html" and "default-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    assert '<script src="/explorer.js"' in html and '<link rel="stylesheet" href="/explorer.css">' in html
    for path, mimetype in (("/explorer.js", "text/javascript"), ("/explorer.css", "text/css")):
        response = api.get(path)
        assert response.status_code == 200 and response.mimetype == mimetype
        html += response.get_data(as_text=True)
    urls = set(re.findall(r"https?://[^\s\"'`)]+", html)) - {"http://www.w3.org/2000/svg"}
    assert urls == set(), urls  # nothing from a CDN or any other server
    assert api.open("POST", "/").status_code == 405


def test_every_json_operation_has_a_valid_example_on_docs(api):
    schemas = DOC["components"]["schemas"]

    def check(schema, value, where):
        validator = jsonschema_rs.Draft202012Validator({**schema, "components": {"schemas": schemas}})
        errors = [e.message for e in validator.iter_errors(value)]
        assert errors == [], where

    for path, item in DOC["paths"].items():
        for method, op in item.items():
            ok = op["responses"]["200"]["content"]
            if "application/json" not in ok or path == "/openapi.json":
                continue
            assert (path, method) in EXAMPLES, f"{method} {path}: no example"
            example = EXAMPLES[(path, method)]
            if "response" in example:
                check(ok["application/json"]["schema"], example["response"], f"{method} {path} response")
            if "body" in example:
                check(op["requestBody"]["content"]["application/json"]["schema"], example["body"], f"{path} body")
    docs = api.get("/docs").get_data(as_text=True)
    assert docs.count("curl -s") == len(EXAMPLES) and "white-space:pre-wrap" in docs
    assert "curl -s &#x27;http://localhost/models/glove-6b-50d/neighbors?word=frog&amp;k=3&#x27;" in docs


def test_documented_explorer_limits_are_the_enforced_ones():
    schemas = DOC["components"]["schemas"]
    words = schemas["ProjectionRequest"]["properties"]["words"]
    assert (words["minItems"], words["maxItems"]) == (1, v.MAX_PROJECTION_WORDS)
    fit_top = schemas["ProjectionRequest"]["properties"]["fit_top"]
    assert (fit_top["minimum"], fit_top["maximum"]) == (v.FIT_TOP_MIN, v.FIT_TOP_MAX)
    n = DOC["paths"]["/models/{name}/map"]["get"]["parameters"][1]["schema"]
    assert (n["minimum"], n["maximum"], n["default"]) == (v.MAP_MIN, v.MAP_MAX, v.MAP_DEFAULT)
    limit = DOC["paths"]["/models/{name}/vocabulary"]["get"]["parameters"][2]["schema"]
    assert (limit["minimum"], limit["maximum"]) == (v.K_MIN, v.K_MAX)


# -- the TF Projector export --------------------------------------------------------------------------
def test_projector_export_round_trips(tmp_path):
    emb = planted_embeddings()
    paths = export_projector(emb, tmp_path / "out", "planted")
    assert [p.name for p in paths] == list(PROJECTOR_FILES)
    rows = (tmp_path / "out" / "vectors.tsv").read_text(encoding="utf-8").splitlines()
    vectors = np.array([[float(x) for x in row.split("\t")] for row in rows], dtype=np.float32)
    np.testing.assert_array_equal(vectors, emb.vectors)  # 9 significant digits: exact float32
    metadata = (tmp_path / "out" / "metadata.tsv").read_text(encoding="utf-8").splitlines()
    assert metadata[0] == "word\tcount" and metadata[1:] == [f"{w}\t{c}" for w, c in zip(emb.words, emb.counts)]
    config = (tmp_path / "out" / "projector_config.pbtxt").read_text(encoding="utf-8")
    assert config == ('embeddings {\n  tensor_name: "planted"\n  tensor_shape: 48\n  tensor_shape: 8\n'
                      '  tensor_path: "vectors.tsv"\n  metadata_path: "metadata.tsv"\n}\n')
    export_projector(Embeddings(["a", "b"], np.eye(2)), tmp_path / "bare", 'x"y')
    assert (tmp_path / "bare" / "metadata.tsv").read_text(encoding="utf-8") == "a\nb\n"  # one column: no header
    assert 'tensor_name: "x\\"y"' in (tmp_path / "bare" / "projector_config.pbtxt").read_text(encoding="utf-8")


def test_export_projector_command(tmp_path, capsys):
    store.save_model(tmp_path / "models", "planted", planted_embeddings())
    out = tmp_path / "projector"
    assert main(["export", "planted", "--format", "projector", "--out", str(out), "--limit", "10",
                 "--models", str(tmp_path / "models")]) == 0
    assert "wrote 10 vectors" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(PROJECTOR_FILES)
    assert len((out / "vectors.tsv").read_text(encoding="utf-8").splitlines()) == 10
    with pytest.raises(SystemExit):
        main(["export", "planted", "--format", "projector", "--out", str(out), "--limit", "0"])
