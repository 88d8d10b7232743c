"""`wordspace serve --workers N`: the shared worker board behind /readyz, and a real
two-worker server on 127.0.0.1 (both workers answer, SIGHUP reaches each, /readyz
waits for all, a killed worker is replaced, stop signals leave no process behind)."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from embeddings import store
from embeddings.index import INDEX_FILE
from service.app import create_app
from service.registry import registry
from service.workers import EMPTY, LOADING, READY, WORKER_HEADER, WorkerBoard, attach
from tests.conftest import planted_embeddings
from tests.test_api import check_against_openapi

ROOT = Path(__file__).resolve().parents[1]


# -- the board, in process --------------------------------------------------------------------
def test_readyz_waits_for_every_worker_on_the_board(tmp_path):
    store.save_model(tmp_path, "p", planted_embeddings())
    app = create_app({"MODELS_DIR": tmp_path})
    board = WorkerBoard(2)
    attach(app, board, 0)
    client = app.test_client()

    def readyz():
        response = client.get("/readyz")
        check_against_openapi(app, "GET", "/readyz", response)
        assert response.headers[WORKER_HEADER] == str(os.getpid())
        body = response.get_json()
        return response.status_code, body.get("workers") or body["error"]["workers"], body

    status, workers, body = readyz()  # worker 1 never started
    assert status == 503 and [w["status"] for w in workers] == ["ready", "not running"]
    assert workers[0]["pid"] == os.getpid() and workers[1]["pid"] is None
    assert "worker 1" in body["error"]["message"]
    board.write(1, 4242, LOADING, 0)
    assert readyz()[1][1] == {"slot": 1, "pid": 4242, "status": "loading", "generation": 0}
    board.write(1, 4242, READY, 0)
    status, workers, _ = readyz()
    assert status == 200 and [w["status"] for w in workers] == ["ready", "ready"]

    board.next_generation()  # a SIGHUP: every worker must reload before /readyz is 200 again
    status, workers, _ = readyz()
    assert status == 503 and [w["status"] for w in workers] == ["reloading", "reloading"]
    board.publish(0, registry(app).snapshot, 1)
    assert [w["status"] for w in readyz()[1]] == ["ready", "reloading"]
    board.write(1, 4242, READY, 1)
    assert readyz()[0] == 200 and board.all_ready()
    board.write(1, 0, EMPTY, 0)  # the supervisor saw it die
    assert readyz()[0] == 503 and not board.all_ready()


def test_the_board_is_shared_with_forked_children():
    board = WorkerBoard(3)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        board.write(2, os.getpid(), READY, 7, 3)
        os._exit(0)
    os.waitpid(pid, 0)
    assert board.read(2).pid == pid and board.read(2).state == READY and board.read(2).generation == 7
    with pytest.raises(ValueError, match="workers"):
        WorkerBoard(0)


# -- a real server --------------------------------------------------------------------------
def _get(port: int, path: str) -> tuple[int, dict[str, str], dict]:
    """GET on a fresh connection: (status, headers, JSON body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read() or b"{}")
    finally:
        conn.close()


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _wait_for(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _ready_workers(port: int) -> list[dict] | None:
    status, _, body = _get(port, "/readyz")
    return body["workers"] if status == 200 else None


@contextmanager
def serving(models: Path, workers: int = 2) -> Iterator[tuple[subprocess.Popen, int]]:
    """`wordspace serve --workers N` on a free port; yields (process, port) once /readyz is 200."""
    command = [sys.executable, "-m", "wordspace.cli", "serve", "--models", str(models), "--port", "0",
               "--threads", "2", "--workers", str(workers)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = proc.stdout.readline()  # the address is the first line
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line + proc.stderr.read()
        port = int(match.group(1))
        _wait_for(lambda: _ready_workers(port), what="/readyz 200")
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def _answering_pids(port: int, path: str, want: set[int], tries: int = 400) -> set[int]:
    """Worker pids seen answering `path` with 200 on fresh connections (stops once all of `want` are seen)."""
    seen: set[int] = set()
    for _ in range(tries):
        status, headers, _ = _get(port, path)
        assert status == 200, (path, status)
        seen.add(int(headers[WORKER_HEADER]))
        if want <= seen:
            break
    return seen


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = tmp_path_factory.mktemp("workers-models")
    store.save_model(models, "p", planted_embeddings())
    with serving(models) as (proc, port):
        yield proc, port, models


def test_every_worker_is_a_child_and_answers(server):
    proc, port, models = server
    workers = _ready_workers(port)
    pids = {w["pid"] for w in workers}
    assert [w["slot"] for w in workers] == [0, 1] and len(pids) == 2
    assert all(_parent_of(pid) == proc.pid for pid in pids)
    assert _answering_pids(port, "/models/p/neighbors?word=king&k=3", pids) == pids
    # No copy per worker: the vectors are a mapped file in each; worker 1 (started once
    # worker 0 had built and persisted the index, which made a new version directory)
    # maps the current version's index.faiss too.
    model = store.model_path(models, "p").resolve()
    maps = {w["slot"]: Path(f"/proc/{w['pid']}/maps").read_text() for w in workers}
    assert all(re.search(rf"{re.escape(str(models.resolve()))}/\S+/vectors\.npy", text) for text in maps.values())
    assert str(model / INDEX_FILE) in maps[1] and str(model / "vectors.npy") in maps[1]


def test_sighup_reaches_every_worker_and_readyz_waits_for_all(server):
    proc, port, models = server
    workers = _ready_workers(port)
    stopped = workers[1]["pid"]  # slot 1: worker 0 reloads first when a new index must be built
    os.kill(stopped, signal.SIGSTOP)  # it cannot take the reload (nor accept connections) until SIGCONT
    try:
        store.save_model(models, "q", planted_embeddings(seed=2))
        proc.send_signal(signal.SIGHUP)

        def only_worker_0_reloaded():
            status, _, body = _get(port, "/readyz")
            states = [w["status"] for w in body["error"]["workers"]] if status == 503 else []
            return states == ["ready", "reloading"] and body

        body = _wait_for(only_worker_0_reloaded, what="worker 0 to reload")
        assert f"worker 1 (pid {stopped}) reloading" in body["error"]["message"]
        status, headers, detail = _get(port, "/models/q")
        assert status == 200 and int(headers[WORKER_HEADER]) == workers[0]["pid"]
        assert detail["index"]["source"] == "built (persisted)"  # built once, by worker 0
    finally:
        os.kill(stopped, signal.SIGCONT)
    after = _wait_for(lambda: _ready_workers(port), what="every worker to reload")
    assert [(w["pid"], w["generation"]) for w in after] == [(w["pid"], 1) for w in workers]
    assert INDEX_FILE in store.read_meta(store.model_path(models, "q").resolve())["files"]
    pids = {w["pid"] for w in after}
    assert _answering_pids(port, "/models/q/neighbors?word=king&k=3", pids) == pids
    for _ in range(50):  # worker 1 read the index worker 0 persisted, it did not build its own
        status, headers, detail = _get(port, "/models/q")
        if int(headers[WORKER_HEADER]) == stopped:
            assert detail["index"]["source"] == "loaded"
            break


def test_a_killed_worker_is_replaced(server):
    proc, port, _ = server
    workers = _ready_workers(port)
    victim = workers[1]["pid"]
    os.kill(victim, signal.SIGKILL)
    replaced = _wait_for(lambda: (w := _ready_workers(port)) and w[1]["pid"] != victim and w,
                         what="a replacement worker")
    assert replaced[0]["pid"] == workers[0]["pid"] and _parent_of(replaced[1]["pid"]) == proc.pid
    assert not _alive(victim)
    assert replaced[1]["generation"] == workers[1]["generation"]  # it loaded the current models
    pids = {w["pid"] for w in replaced}
    assert _answering_pids(port, "/models/q/neighbors?word=king&k=3", pids) == pids


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_stopping_the_supervisor_stops_every_worker(tmp_path, how):
    """SIGTERM/SIGINT: the workers are stopped and reaped; SIGKILL of the supervisor
    itself: the kernel sends each worker SIGTERM (no orphans)."""
    store.save_model(tmp_path, "p", planted_embeddings())
    with serving(tmp_path) as (proc, port):
        pids = [w["pid"] for w in _ready_workers(port)]
        proc.send_signal(getattr(signal, how))
        code = proc.wait(20)
        assert code == (-9 if how == "SIGKILL" else 0)
        _wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=20, what="the workers to exit")


def test_workers_must_be_positive(tmp_path):
    out = subprocess.run([sys.executable, "-m", "wordspace.cli", "serve", "--models", str(tmp_path),
                          "--port", "0", "--workers", "0"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode != 0 and "--workers must be in [1, 64]" in out.stderr
