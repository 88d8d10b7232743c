"""HTTP edges of the production server (issue 16), each against a real `wordspace serve`:
slow clients above waitress's old connection limit, over-limit bodies with a
Content-Length, malformed HTTP that waitress answers itself, and the served OpenAPI
document saying what validation enforces. RELIABILITY.md, "Requests"."""
from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from embeddings import store
from service.app import create_app
from tests.conftest import planted_embeddings
from tests.test_bad_requests import dechunk, read_until_closed, request, running_server
from tests.test_faults_models import strict_json

SLOW_CLIENTS = 110  # more than waitress's default connection_limit (100), which starved everyone


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
    """`wordspace serve --workers 1` on the planted model: one process holds every connection."""
    models_dir = tmp_path_factory.mktemp("http") / "models"
    store.save_model(models_dir, "planted", planted_embeddings())
    with running_server(models_dir, threads=4, args=("--workers", "1")) as address:
        deadline = time.monotonic() + 60
        while request(*address, "GET", "/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        yield address


class SlowClients:
    """`n` connections that send a request header one byte every `interval` seconds, never
    finishing it (slowloris), until stopped."""

    def __init__(self, host: str, port: int, n: int, interval: float = 0.5) -> None:
        self.stop = threading.Event()
        self.sockets = [socket.create_connection((host, port), timeout=30) for _ in range(n)]
        self.thread = threading.Thread(target=self._drip, args=(interval,), daemon=True)
        self.thread.start()

    def _drip(self, interval: float) -> None:
        message = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100_000
        for byte in message:
            for sock in self.sockets:
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    pass
            if self.stop.wait(interval):
                return

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


def test_slow_clients_above_the_old_connection_limit_do_not_starve_normal_clients(one_worker):
    """110 connections dripping one header byte at a time into one worker process: normal
    clients are still answered promptly (they timed out after 10 s with waitress's default
    limit of 100 connections)."""
    host, port = one_worker
    slow = SlowClients(host, port, SLOW_CLIENTS)
    try:
        time.sleep(1.0)  # every slow connection accepted and mid-header
        timings = []
        for _ in range(10):
            started = time.monotonic()
            status, body = request(host, port, "GET", "/models/planted/neighbors?word=king&k=3")
            timings.append(time.monotonic() - started)
            assert status == 200 and len(body["neighbors"]) == 3
        assert max(timings) < 3.0, timings
    finally:
        slow.close()


def post_sized(host: str, port: int, size: int) -> tuple[bytes, float]:
    """POST a `size`-byte JSON body with a Content-Length; return (whole response, seconds
    until the server closed the connection)."""
    body = b'{"positive": ["king"], "pad": "' + b"x" * size + b'"}'
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(f"POST /models/planted/similar HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode())
        try:
            sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before the whole body was sent (waitress's own 413)
        response = read_until_closed(sock)
    return response, time.monotonic() - started


@pytest.mark.parametrize("mib", [1.5, 4, 15.9])
def test_over_limit_body_with_content_length_gets_json_413_and_a_closed_connection(one_worker, mib):
    """Between the 1 MiB limit and 16 MiB: the JSON 413, then the server closes the
    connection (the client reading to the end is not left waiting)."""
    host, port = one_worker
    response, seconds = post_sized(host, port, int(mib * (1 << 20)))
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert b"connection: close" in head.lower() and seconds < 10, (head, seconds)
    if b"transfer-encoding: chunked" in head.lower():
        body = dechunk(body)
    assert strict_json(body)["error"]["code"] == "payload_too_large"
    assert request(host, port, "GET", "/livez")[0] == 200


def test_huge_body_gets_waitress_413_and_the_server_keeps_serving(one_worker):
    """Above 16 MiB waitress answers itself (plain text, as the README says) and closes."""
    host, port = one_worker
    response, _seconds = post_sized(host, port, 40 << 20)
    assert response.startswith(b"HTTP/1.1 413") or response == b"", response[:200]
    assert request(host, port, "GET", "/livez")[0] == 200


def raw_exchange(host: str, port: int, data: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=30) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            response += chunk
    return response


MALFORMED = {
    "bad request line": (b"GARBAGE\r\n\r\n", 400),
    "bad header": (b"GET /livez HTTP/1.1\r\nHost x\r\n\r\n", 400),
    "bad chunk size": (b"POST /models/planted/similar HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400),
    "300 KiB of headers": (b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (300 << 10) + b"\r\n\r\n", 431),
    "unknown transfer coding": (b"POST /models/planted/similar HTTP/1.1\r\nHost: x\r\n"
                                b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_http_gets_waitress_text_answer_and_the_server_keeps_serving(one_worker, case):
    """Requests waitress rejects before the app sees them: its own text/plain 400/431/501
    (documented in the README's error section), the connection closed, no traceback."""
    host, port = one_worker
    data, status = MALFORMED[case]
    response = raw_exchange(host, port, data)
    head = response.partition(b"\r\n\r\n")[0].lower()
    assert head.split(b" ", 2)[1] == str(status).encode(), response[:200]
    assert b"content-type: text/plain" in head and b"connection: close" in head
    assert b"traceback" not in response.lower()
    assert request(host, port, "GET", "/livez")[0] == 200


# -- the served document says what validation enforces ----------------------------------------------
def test_served_document_states_the_vector_dimension_and_no_stray_property(tmp_path):
    """With every served model of one dimension, /openapi.json requires exactly that many
    numbers (a wrong-dimension vector was schema-valid but refused); mixed dimensions keep
    the general 1..4096. The similarity response lists only what it returns."""
    models_dir = tmp_path / "models"
    store.save_model(models_dir, "a", planted_embeddings(dim=8))
    store.save_model(models_dir, "b", planted_embeddings(dim=8, seed=3))
    client = create_app({"MODELS_DIR": models_dir, "TESTING": True}).test_client()
    doc = strict_json(client.get("/openapi.json").get_data())
    vector = doc["components"]["schemas"]["Vector"]
    assert vector["minItems"] == vector["maxItems"] == 8
    similarity = doc["components"]["schemas"]["SimilarityResponse"]["properties"]["results"]["items"]
    assert set(similarity["properties"]) == {"pair", "similarity", "missing"}
    store.save_model(models_dir, "c", planted_embeddings(dim=16))
    mixed = create_app({"MODELS_DIR": models_dir, "TESTING": True}).test_client()
    vector = mixed.get("/openapi.json").get_json()["components"]["schemas"]["Vector"]
    assert (vector["minItems"], vector["maxItems"]) == (1, 4096)


@pytest.mark.parametrize("body, valid", [
    ({"positive": ["king"] * 10}, True),
    ({"positive": ["king"] * 6, "negative": ["man"] * 5}, False),  # 11 terms in all
    ({"positive": ["king"] * 5, "negative": ["man"] * 4, "vector": [0.1] * 8}, True),
    ({"positive": ["king"] * 5, "negative": ["man"] * 5, "vector": [0.1] * 8}, False),
    ({"vector": [0.0] * 8}, False), ({"vector": [1e-200] * 8}, False), ({"vector": [0.0] * 7 + [1e-3]}, True),
    ({"positive": [{"word": "king", "weight": 0}]}, False),
    ({"positive": [{"word": "king", "weight": 5e-324}]}, False),
    ({"positive": [{"word": "king", "weight": -2.5}]}, True),
])
def test_similar_schema_and_validation_agree(tmp_path, body, valid):
    """The term limit, a zero vector and a vanishing weight: the document's schema and the
    server give the same verdict (schema-valid -> answered, schema-invalid -> 400)."""
    import jsonschema_rs

    models_dir = tmp_path / "models"
    store.save_model(models_dir, "planted", planted_embeddings(dim=8))
    client = create_app({"MODELS_DIR": models_dir, "TESTING": True}).test_client()
    doc = client.get("/openapi.json").get_json()
    # The request schema as the root of a document holding the components its $refs name.
    schema = {**doc["components"]["schemas"]["SimilarRequest"], "components": doc["components"]}
    validator = jsonschema_rs.validator_for(schema)
    assert validator.is_valid(body) == valid
    response = client.post("/models/planted/similar", json=body)
    assert (response.status_code == 200) == valid, response.get_json()


def test_served_responses_never_hold_nan(tmp_path):
    """A model's values are finite by construction (refused at save and load); similarity,
    vectors and neighbours of a model with a zero row stay valid JSON."""
    models_dir = tmp_path / "models"
    emb = planted_embeddings(dim=8)
    vectors = np.array(emb.vectors)
    vectors[5] = 0.0  # a zero vector: cosines with it are 0, never NaN
    store.save_model(models_dir, "z", type(emb)(emb.words, vectors, emb.counts, emb.meta))
    client = create_app({"MODELS_DIR": models_dir, "TESTING": True}).test_client()
    word = emb.words[5]
    for response in (client.post("/models/z/similarity", json={"pairs": [[word, "king"], [word, word]]}),
                     client.post("/models/z/vectors", json={"words": [word], "normalized": True}),
                     client.post("/models/z/similar", json={"positive": ["king", word]}),
                     client.get("/models/z/map?n=10")):
        assert response.status_code == 200
        strict_json(response.get_data())
