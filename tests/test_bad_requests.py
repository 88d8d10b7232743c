"""Hand-written bad requests schemathesis will not generate, property tests of the
query results, corrupt and hostile models at server start, and the production
server (waitress, also under `python -O`) enforcing the same limits.
See RELIABILITY.md, "Requests" and "Models on disk"."""
from __future__ import annotations

import http.client
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embeddings import store
from embeddings.vectors import Embeddings
from service.app import create_app
from tests.conftest import planted_embeddings
from tests.test_faults_store import CORRUPTIONS, corrupt_model, plant_evil_model, plant_payloads

ROOT = Path(__file__).resolve().parents[1]
DIM = 8
PROPERTY_WORDS = 300


def random_model(n: int = PROPERTY_WORDS, dim: int = 16, seed: int = 1) -> Embeddings:
    """Random vectors over words w0..w(n-1), for the property tests."""
    rng = np.random.default_rng(seed)
    return Embeddings([f"w{i}" for i in range(n)], rng.standard_normal((n, dim)).astype(np.float32),
                      np.arange(n, 0, -1) * 3, {"method": "random"})


@pytest.fixture(scope="module")
def served_dir(tmp_path_factory) -> Path:
    """A models directory with the planted model and a random one."""
    models_dir = tmp_path_factory.mktemp("served") / "models"
    store.save_model(models_dir, "planted", planted_embeddings(dim=DIM))
    store.save_model(models_dir, "random", random_model())
    return models_dir


@pytest.fixture(scope="module")
def client(served_dir):
    """A Flask test client of the app on `served_dir`."""
    app = create_app({"MODELS_DIR": served_dir, "TESTING": True})
    return app.test_client()


def post(client, path: str, body: Any = None, raw: bytes | str | None = None,
         content_type: str = "application/json"):
    """POST a JSON body (or raw bytes) and return the response."""
    data = raw if raw is not None else json.dumps(body)
    return client.post(path, data=data, content_type=content_type)


def assert_error(response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is the JSON error envelope with `status` (and `code`), no traceback."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    assert "Traceback" not in response.get_data(as_text=True)
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


SIMILAR = "/models/planted/similar"
ANALOGY = "/models/planted/analogy"


# -- malformed JSON ---------------------------------------------------------------------
# (test_api.py covers unclosed "[" and '{"a":' nesting, "{", "", null, [], NaN, 1e999 and bad UTF-8.)
@pytest.mark.parametrize("raw", [
    "[" * 100_000 + "]" * 100_000,
    '{"positive": ' + "[" * 100_000 + "]" * 100_000 + "}",
    '{"a":' * 50_000 + "1" + "}" * 50_000,
    '{"positive": ["king"]} trailing',
    '{"positive": ["king"]}{"positive": ["king"]}',
])
def test_deeply_nested_or_trailing_json_is_400(client, raw):
    """Balanced nesting 100,000 deep (top level or inside a field) and trailing data:
    400, never a RecursionError 500."""
    assert_error(post(client, SIMILAR, raw=raw), 400)


# -- vectors ----------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "-1e999", "-NaN"])
def test_non_finite_numbers_in_vectors_are_400(client, value):
    """Flask would parse NaN, Infinity and 1e999 (as inf): each is a 400."""
    raw = '{"vector": [' + ", ".join(["0.5"] * (DIM - 1) + [value]) + "]}"
    assert_error(post(client, SIMILAR, raw=raw), 400)


@pytest.mark.parametrize("vector", [
    [0.1] * (DIM + 1), [0.1] * 5000, [-0.0] * DIM, [1e-320] * DIM, [-1e31] + [0.1] * (DIM - 1),
    [None] * DIM, [[0.1]] * DIM, "0.1", 0.5, {"0": 0.1}, None,
])
def test_bad_vectors_are_400(client, vector):
    """Too long, negative zero, subnormal-only, huge, nulls, nested or not a list: 400
    naming the vector. (test_api.py covers short, zero, string, bool, empty and 1e31.)"""
    error = assert_error(post(client, SIMILAR, {"vector": vector}), 400)
    assert "vector" in error["message"]


def test_good_vector_is_answered(client):
    """Control: a valid vector works (the cases above fail for the right reason)."""
    response = post(client, SIMILAR, {"vector": [0.1] * DIM, "k": 3})
    assert response.status_code == 200 and len(response.get_json()["results"]) == 3


# -- k and other numbers -----------------------------------------------------------------
# test_api.py covers 0, -1, 101, "10", true, 1.5 and null (10.0 is accepted as 10: JSON Schema integer).
MORE_BAD_K = [False, 0.0, 100.5, 10**20, -(10**20), [10], {"k": 10}, "", "١٠"]


@pytest.mark.parametrize("k", MORE_BAD_K, ids=repr)
@pytest.mark.parametrize("path, body", [(SIMILAR, {"positive": ["king"]}),
                                        (ANALOGY, {"a": "man", "b": "king", "c": "woman"})])
def test_bad_k_is_400_never_clamped(client, path, body, k):
    """k must be an integer in [1, 100]: null, booleans, strings, floats, 0, 101 are 400."""
    assert_error(post(client, path, {**body, "k": k}), 400)


@pytest.mark.parametrize("k", ["10.0", "1e1", "10 ", "+10", "010000000000", "true", "0x10", "١٠", "１０"])
def test_bad_k_in_query_string_is_400(client, k):
    """GET neighbors: k must be plain ASCII digits in [1, 100] (Python's int() would
    accept "+10", " 10 ", Arabic-Indic and full-width digits)."""
    assert_error(client.get("/models/planted/neighbors", query_string={"word": "king", "k": k}), 400)


@pytest.mark.parametrize("k", [1, 100])
def test_k_bounds_are_accepted(client, k):
    """Control: the bounds themselves are valid; at most k results come back."""
    response = post(client, "/models/random/similar", {"positive": ["w1"], "k": k})
    assert response.status_code == 200 and len(response.get_json()["results"]) == k


# -- words ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path, body", [
    (SIMILAR, {"positive": [0]}),
    (SIMILAR, {"negative": [-1]}),
    (SIMILAR, {"positive": [0.0]}),
    (SIMILAR, {"positive": [True]}),
    (SIMILAR, {"positive": [{"word": 3, "weight": 1}]}),
    (ANALOGY, {"a": 0, "b": 1, "c": 2}),
    ("/models/planted/similarity", {"pairs": [[0, 1]]}),
    ("/models/planted/vectors", {"words": [0]}),
    ("/models/planted/odd-one-out", {"words": [0, 1, 2]}),
    (SIMILAR, {"positive": [["king"]]}),
    (SIMILAR, {"positive": [{"word": ["king"]}]}),
])
def test_ints_are_400_never_row_indexes(client, path, body):
    """gensim treats an int key as a row index (0 = the first word, -1 = the last):
    ints, floats, bools and nested lists in word positions are 400 on every route."""
    assert_error(post(client, path, body), 400)


def test_ten_thousand_term_query_is_400(client):
    """At most 10 terms per arithmetic query: 10,000 terms is refused quickly."""
    started = time.perf_counter()
    assert_error(post(client, SIMILAR, {"positive": ["king"] * 5000, "negative": ["man"] * 5000}), 400)
    assert time.perf_counter() - started < 5
    assert_error(post(client, SIMILAR, {"positive": ["king"] * 11}), 400)
    assert post(client, SIMILAR, {"positive": ["king"] * 6, "negative": ["man"] * 4}).status_code == 200


def test_duplicate_words(client):
    """Duplicates are legal and never come back as results or break shapes."""
    response = post(client, SIMILAR, {"positive": ["king", "king", "woman"], "negative": ["man", "man"], "k": 5})
    assert response.status_code == 200
    words = [row["word"] for row in response.get_json()["results"]]
    assert words[0] == "queen" and not {"king", "woman", "man"} & set(words)
    response = post(client, "/models/planted/vectors", {"words": ["king", "king"]})
    rows = response.get_json()["vectors"]
    assert [r["word"] for r in rows] == ["king", "king"] and rows[0]["vector"] == rows[1]["vector"]
    response = post(client, ANALOGY, {"a": "king", "b": "king", "c": "king", "k": 5})
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert "king" not in [row["word"] for row in response.get_json()["answers"]]


def test_unknown_model_names_that_are_not_valid_names_are_404(client):
    """Names that could never be a model (spaces, 200 chars, NUL, '.hidden' version
    directories) are a plain 404, never a path lookup on disk or a 500."""
    version = os.readlink(client.application.config["MODELS_DIR"] / "planted")
    for name in ("a b", "x" * 200, "%00", "%2e%2e", version, ".lock", ".checkpoints"):
        assert_error(post(client, f"/models/{name}/similar", {"positive": ["king"]}), 404)
        assert_error(client.get(f"/models/{name}"), 404)


# -- content type, methods, sizes ------------------------------------------------------------
@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=x", "application/xml", "",
                                          "application/jsonx", "text/json", "application/json-patch+json"])
def test_other_wrong_content_types_are_415(client, content_type):
    """POST bodies must be exactly application/json (test_api.py covers text/plain,
    form-encoded and none)."""
    assert_error(post(client, SIMILAR, {"positive": ["king"]}, content_type=content_type), 415)


def test_json_with_charset_is_accepted(client):
    """Control: `application/json; charset=utf-8` is JSON."""
    assert post(client, SIMILAR, {"positive": ["king"]},
                content_type="application/json; charset=utf-8").status_code == 200


# -- property tests ----------------------------------------------------------------------------
RANDOM_UNIT = random_model().normalized.astype(np.float64)
WORD_IDS = st.integers(0, PROPERTY_WORDS - 1).map(lambda i: f"w{i}")
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                             suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY_SETTINGS
@given(a=WORD_IDS, b=WORD_IDS)
def test_similarity_is_symmetric_and_self_similarity_is_one(client, a, b):
    """cos(a, b) == cos(b, a) and cos(a, a) == 1 within 1e-5."""
    response = post(client, "/models/random/similarity", {"pairs": [[a, b], [b, a], [a, a]]})
    ab, ba, aa = (row["similarity"] for row in response.get_json()["results"])
    assert abs(ab - ba) <= 1e-5 and abs(aa - 1.0) <= 1e-5 and -1 - 1e-5 <= ab <= 1 + 1e-5


def check_results(rows: list[dict[str, Any]], k: int, inputs: set[str]) -> None:
    """Sorted by score, at most k, no duplicates, never an input word, finite scores."""
    words = [row["word"] for row in rows]
    scores = [row["score"] for row in rows]
    assert len(rows) <= k
    assert scores == sorted(scores, reverse=True)
    assert len(set(words)) == len(words)
    assert not set(words) & inputs
    assert all(math.isfinite(s) for s in scores)


@PROPERTY_SETTINGS
@given(positive=st.lists(WORD_IDS, max_size=5), negative=st.lists(WORD_IDS, max_size=5),
       k=st.integers(1, 100), exact=st.booleans())
def test_similar_results_properties(client, positive, negative, k, exact):
    """most_similar: sorted, at most k, distinct, never a query word."""
    response = post(client, "/models/random/similar",
                    {"positive": positive, "negative": negative, "k": k, "exact": exact})
    unit = RANDOM_UNIT
    query = sum((unit[int(w[1:])] for w in positive), np.zeros(unit.shape[1])) \
        - sum((unit[int(w[1:])] for w in negative), np.zeros(unit.shape[1]))
    if not positive and not negative:  # nothing asked
        assert_error(response, 400)
        return
    if np.linalg.norm(query) < 1e-5:  # terms that cancel out (king - king): no direction, no results
        assert response.status_code == 200 and response.get_json()["results"] == [], response.get_json()
        return
    assert response.status_code == 200, response.get_json()
    rows = response.get_json()["results"]
    check_results(rows, k, set(positive) | set(negative))
    assert len(rows) == min(k, PROPERTY_WORDS - len(set(positive) | set(negative)))


@PROPERTY_SETTINGS
@given(a=WORD_IDS, b=WORD_IDS, c=WORD_IDS, k=st.integers(1, 100),
       method=st.sampled_from(["3cosadd", "3cosmul"]))
def test_analogy_results_properties(client, a, b, c, k, method):
    """Analogy answers: sorted, at most k, distinct, never a, b or c."""
    response = post(client, "/models/random/analogy", {"a": a, "b": b, "c": c, "k": k, "method": method})
    assert response.status_code == 200, response.get_json()
    check_results(response.get_json()["answers"], k, {a, b, c})


@PROPERTY_SETTINGS
@given(word=WORD_IDS, k=st.integers(1, 100))
def test_neighbors_results_properties(client, word, k):
    """Neighbours: sorted, exactly min(k, n - 1), distinct, never the word itself."""
    response = client.get("/models/random/neighbors", query_string={"word": word, "k": str(k)})
    rows = response.get_json()["neighbors"]
    check_results(rows, k, {word})
    assert len(rows) == min(k, PROPERTY_WORDS - 1)


ANY_TEXT = st.text(st.characters(codec="utf-8"), min_size=0, max_size=120)


@settings(max_examples=150, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(word=ANY_TEXT)
def test_any_unicode_word_is_200_or_404_never_500(client, word):
    """Any Unicode string as a word: 200 or 404 (400 only if empty or > 100 chars), never 5xx."""
    valid = 1 <= len(word) <= 100
    expected = {200, 404} if valid else {400}
    responses = [
        client.get("/models/planted/neighbors", query_string={"word": word}),
        post(client, SIMILAR, {"positive": [word]}),
        post(client, ANALOGY, {"a": word, "b": "king", "c": "woman"}),
        post(client, "/models/planted/vectors", {"words": [word]}),
        post(client, "/models/planted/similarity", {"pairs": [[word, "king"]]}),
    ]
    for response in responses:
        assert response.status_code in expected, (word, response.status_code, response.get_data()[:300])
        assert response.mimetype == "application/json"


@pytest.mark.parametrize("escaped", [r"\ud800", r"\udfff", r"\ud800\udc00", r"\u0000", r"a\u0000b", r"\ufeff"])
def test_escaped_surrogates_and_nul_are_not_500(client, escaped):
    """Lone surrogates and NUL (legal JSON escapes, not encodable as UTF-8) answer 4xx."""
    raw = '{"positive": ["' + escaped + '"]}'
    response = post(client, SIMILAR, raw=raw)
    assert response.status_code in (400, 404), response.get_data()[:300]
    assert_error(response, response.status_code)


# -- corrupt and hostile models at start --------------------------------------------------------
SERVER_CORRUPTIONS = ["truncated-vectors", "flipped-byte-vectors", "missing-vocab",
                      "vocab-vector-count-mismatch", "garbage-meta", "missing-vectors", "garbage-index"]


@pytest.mark.parametrize("corruption", SERVER_CORRUPTIONS)
def test_corrupt_model_is_reported_failed_and_others_serve(tmp_path, corruption):
    """The app starts, /models and /readyz report the broken model failed with a reason
    naming the damaged file, /readyz is 503, and the healthy model answers queries."""
    models_dir = tmp_path / "models"
    store.save_model(models_dir, "good", planted_embeddings(dim=DIM))
    corrupt_model(models_dir, "bad", corruption)
    client = create_app({"MODELS_DIR": models_dir, "TESTING": True}).test_client()
    damaged = CORRUPTIONS[corruption][1]
    rows = {row["name"]: row for row in client.get("/models").get_json()}
    assert rows["good"]["status"] == "ready"
    assert rows["bad"]["status"] == "failed" and damaged in rows["bad"]["error"], rows["bad"]
    ready = client.get("/readyz")
    assert ready.status_code == 503
    states = ready.get_json()["error"]["models"]
    assert states["bad"]["status"] == "failed" and damaged in states["bad"]["error"]
    assert states["good"]["status"] == "ready"
    response = post(client, "/models/good/analogy", {"a": "man", "b": "king", "c": "woman", "k": 1})
    assert response.get_json()["answers"][0]["word"] == "queen"
    error = assert_error(post(client, "/models/bad/similar", {"positive": ["king"]}), 503)
    assert damaged in error["message"]


def _evil_contextual_model(models_dir: Path, sentinel: Path) -> None:
    """A valid static model whose meta says it is contextual, with an encoder/ made of
    pickle payloads (checksums recorded, so the encoder loader is reached)."""
    def write_extra(directory: Path) -> None:
        plant_payloads(directory, ("encoder/checkpoint.pt", "encoder/model.safetensors",
                                   "encoder/config.json", "encoder/tokenizer.json"), sentinel)
    emb = planted_embeddings(dim=DIM)
    meta = {**emb.meta, "contextual": {"encoder": {"kind": "transformer"}, "layers": "last"}}
    store.save_model(models_dir, "evilctx", Embeddings(emb.words, emb.vectors, emb.counts, meta), write_extra)
    meta["contextual"]["encoder"]["kind"] = "hf"
    store.save_model(models_dir, "evilhf", Embeddings(emb.words, emb.vectors, emb.counts, meta), write_extra)


def _evil_index_model(models_dir: Path, sentinel: Path) -> None:
    """A valid model whose index.faiss (listed with its checksum) is a pickle payload."""
    store.save_model(models_dir, "evilindex", planted_embeddings(dim=DIM),
                     lambda directory: plant_payloads(directory, ("index.faiss",), sentinel))


def test_server_start_never_unpickles_planted_payloads(tmp_path):
    """Payloads under every file name a loader reads (model files, index, encoder/,
    checkpoints): the server starts, no payload runs, the healthy model serves."""
    models_dir = tmp_path / "models"
    sentinel = tmp_path / "pwned"
    store.save_model(models_dir, "good", planted_embeddings(dim=DIM))
    plant_evil_model(models_dir, "evil", sentinel)
    plant_evil_model(models_dir, "evilunlisted", sentinel, listed=False)
    _evil_contextual_model(models_dir, sentinel)
    _evil_index_model(models_dir, sentinel)
    plant_payloads(models_dir / ".checkpoints" / "good", ("checkpoint.pt", "epoch-0001.pt",
                                                          "epoch-0001/input.npy"), sentinel)
    client = create_app({"MODELS_DIR": models_dir, "TESTING": True}).test_client()
    rows = {row["name"]: row for row in client.get("/models").get_json()}
    assert not sentinel.exists()
    assert rows["good"]["status"] == "ready"
    for name in ("evil", "evilunlisted", "evilctx", "evilhf"):
        assert rows[name]["status"] == "failed", rows[name]
    # The index payload is refused: the model fails, or serves with a rebuilt index.
    assert rows["evilindex"]["status"] in ("failed", "ready")
    for name in rows:
        client.get(f"/models/{name}")
        post(client, f"/models/{name}/contextual", {"text": "the king", "word": "king"})
    assert not sentinel.exists()


# -- the production server ------------------------------------------------------------------------
@contextmanager
def running_server(models_dir: Path, *python_flags: str, threads: int = 4,
                   env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> Iterator[tuple[str, int]]:
    """`wordspace serve` in a subprocess on 127.0.0.1 (port chosen by the OS), with extra
    `args`; yields (host, port) once /readyz has answered; stops it afterwards."""
    command = [sys.executable, *python_flags, "-m", "wordspace.cli", "serve", "--models", str(models_dir),
               "--port", "0", "--threads", str(threads), *args]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    try:
        port = None
        for line in proc.stdout:
            match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            if match:
                port = int(match.group(1))
                break
        assert port is not None, proc.stderr.read()
        deadline = time.monotonic() + 60
        while True:
            status, body = request("127.0.0.1", port, "GET", "/readyz")
            # Ready, or settled with a failed model; loading models and starting workers are transient.
            if status == 200 or '"failed"' in json.dumps(body) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        yield "127.0.0.1", port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def request(host: str, port: int, method: str, path: str, body: Any = None,
            headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    """One HTTP request on a fresh connection; (status, parsed JSON body or {})."""
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        connection.request(method, path, body=data,
                           headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        raw = response.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = {}
        return response.status, parsed if isinstance(parsed, dict) else {"_": parsed}
    finally:
        connection.close()


def send_chunked(host: str, port: int, path: str, payload: bytes, chunk: int = 64 * 1024) -> tuple[int, bytes]:
    """POST `payload` with Transfer-Encoding: chunked (no Content-Length); (status, body)."""
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode())
        try:
            for start in range(0, len(payload), chunk):
                piece = payload[start:start + chunk]
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before the whole body is sent
        response = read_until_closed(sock)
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    if b"transfer-encoding: chunked" in head.lower():  # e.g. the 413, which closes the connection
        body = dechunk(body)
    return status, body


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closed)."""
    response = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        response += data
    return response


def dechunk(body: bytes) -> bytes:
    """The payload of a chunked HTTP body."""
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2:]
    return out


@pytest.fixture(scope="module")
def server(served_dir):
    """The real server (waitress) on the served models."""
    with running_server(served_dir) as address:
        yield address


def test_chunked_body_over_limit_is_413_under_waitress(server):
    """A chunked body over 1 MiB gets 413 (JSON from the app; waitress's own 413 for
    absurd sizes), a chunked body under the limit is served."""
    host, port = server
    status, body = send_chunked(host, port, SIMILAR, b'{"positive": ["king"], "k": 3}', chunk=7)
    assert status == 200 and len(json.loads(body)["results"]) == 3, body[:300]
    for size in (2 << 20, 40 << 20):
        status, body = send_chunked(host, port, SIMILAR, b'{"positive": ["king"], "pad": "' + b"x" * size + b'"}')
        assert status == 413, (size, status, body[:300])
        if size == 2 << 20:
            assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert request(host, port, "GET", "/livez")[0] == 200  # and it is still serving


def test_waitress_rejects_the_same_bad_requests(server):
    """The production server gives the same 4xx as the test client for the classic cases."""
    host, port = server
    assert request(host, port, "POST", SIMILAR, {"vector": [float("nan")] * DIM})[0] == 400
    assert request(host, port, "POST", SIMILAR, {"positive": ["king"], "k": True})[0] == 400
    assert request(host, port, "POST", SIMILAR, {"positive": ["king"]}, {"Content-Type": "text/plain"})[0] == 415
    status, body = request(host, port, "GET", SIMILAR)
    assert status == 405 and body["error"]["code"]


def test_server_under_python_O_still_rejects_bad_vectors(served_dir):
    """`python -O` strips asserts (FAISS's dimension checks among them): our own
    validation must still turn wrong-dimension and non-finite vectors into 400s."""
    with running_server(served_dir, "-O", threads=2) as (host, port):
        status, body = request(host, port, "GET", "/readyz")
        assert status == 200, body
        for vector in (json.dumps([0.1] * (DIM - 1)), json.dumps([0.1] * (DIM + 5)),
                       json.dumps([0.0] * DIM), "[" + ", ".join(["1e999"] * DIM) + "]",
                       "[" + ", ".join(["1e300"] * DIM) + "]"):
            status, body = request(host, port, "POST", SIMILAR, raw=b'{"vector": ' + vector.encode() + b"}")
            assert status == 400 and body["error"]["code"] == "invalid_vector", (vector, status, body)
        status, body = request(host, port, "POST", "/models/random/similar", {"vector": [0.1] * (DIM)})
        assert status == 400  # the random model has 16 dimensions
        status, body = request(host, port, "POST", SIMILAR, {"vector": [0.1] * DIM, "k": 3})
        assert status == 200 and len(body["results"]) == 3
        flags = subprocess.run([sys.executable, "-O", "-c", "import sys; print(sys.flags.optimize)"],
                               capture_output=True, text=True).stdout.strip()
        assert flags == "1"
