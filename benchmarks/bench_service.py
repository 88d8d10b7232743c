"""Index and REST API on the 400k-word GloVe model: index build vs restart from the
persisted index, neighbours under load (16 connections, wrk or a bounded Python
client), analogy latency for one client, and gensim's in-process most_similar on
the same queries for the ratio.

    .venv/bin/python benchmarks/bench_service.py [--duration 15] [--connections 16] [--threads 8]

Only loopback traffic; every request loop is bounded in count and time. Prints a
markdown table.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from embeddings import store  # noqa: E402

NAME = "glove-6b-50d"
ANALOGIES = [("man", "king", "woman"), ("italy", "mussolini", "germany"), ("france", "paris", "japan"),
             ("good", "better", "bad"), ("walk", "walked", "swim"), ("boy", "girl", "brother"),
             ("athens", "greece", "oslo"), ("slow", "slower", "fast")]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


#: A bare Flask + waitress + FAISS probe serving the same route and index, for the ratio.
PROBE = r"""
import sys, threading
import faiss
from flask import Flask, jsonify, request
from waitress import serve
from embeddings import store
from embeddings.index import FaissBackend, check_fits, read_index_file
models, name, port, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
emb = store.load_model(models, name)
path = store.model_path(models, name).resolve()
backend = FaissBackend(check_fits(read_index_file(path), emb, path))
unit = backend.unit_view()
app = Flask("probe")
pinned = threading.local()

@app.get("/models/<name>/neighbors")
def neighbors(name):
    if not getattr(pinned, "done", False):
        faiss.omp_set_num_threads(1)
        pinned.done = True
    word = request.args["word"]
    i, k = emb.index_of(word), int(request.args.get("k", 10))
    scores, ids = backend.search(unit[i:i + 1], k + 1)
    rows = [{"word": emb.words[j], "score": float(s)} for s, j in zip(scores[0], ids[0]) if j != i and j >= 0]
    return jsonify({"word": word, "neighbors": rows[:k]})

print("ready", flush=True)
if len(sys.argv) > 5 and sys.argv[5] == "our-settings":  # wordspace serve's waitress settings
    from wordspace.cli_service import waitress_settings
    serve(app, host="127.0.0.1", port=port, threads=threads, **waitress_settings(1 << 20))
else:
    serve(app, host="127.0.0.1", port=port, threads=threads)
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_probe(models: Path, threads: int, our_settings: bool = False) -> tuple[subprocess.Popen, int]:
    """The bare probe on a free port (with `wordspace serve`'s waitress settings if asked)."""
    port = free_port()
    extra = ["our-settings"] if our_settings else []
    proc = subprocess.Popen([sys.executable, "-c", PROBE, str(models), NAME, str(port), str(threads), *extra], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    proc.stdout.readline()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if request(port, "GET", f"/models/{NAME}/neighbors?word=the&k=10")[0] == 200:
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("probe did not start")


def start_server(models: Path, threads: int, extra_args: tuple[str, ...] = (),
                 timeout_s: float = 300) -> tuple[subprocess.Popen, int, float]:
    """`wordspace serve` on an ephemeral loopback port; returns (process, port, seconds until ready)."""
    started = time.perf_counter()
    cmd = [sys.executable, "-c", "import sys; from wordspace.cli import main; sys.exit(main())",
           "serve", "--models", str(models), "--port", "0", "--threads", str(threads), *extra_args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    match = None
    for line in proc.stdout:
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if match:
            break
    if not match:
        proc.kill()
        raise RuntimeError("the server did not start")
    port = int(match.group(1))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if request(port, "GET", "/readyz")[0] == 200:
                return proc, port, time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"server not ready within {timeout_s:.0f} s")


def request(port: int, method: str, path: str, body: dict | None = None,
            conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
    """One loopback request (on `conn` if given, else a fresh connection); (status, body)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        if own:
            conn.close()


def wrk_load(port: int, words: list[str], connections: int, duration: int) -> dict[str, float]:
    """wrk with a Lua script cycling through `words`; requests/s and latency percentiles."""
    paths = [f"/models/{NAME}/neighbors?word={quote(w)}&k=10" for w in words]
    lua = ("local paths = {" + ",".join(json.dumps(p) for p in paths) + "}\n"
           "local i = 0\nrequest = function()\n  i = i % #paths + 1\n"
           "  return wrk.format('GET', paths[i])\nend\n"
           "done = function(summary, latency, requests)\n"
           "  io.write(string.format('JSON {\"requests\": %d, \"errors\": %d, \"p50\": %f, \"p99\": %f, "
           "\"seconds\": %f, \"non2xx\": %d}\\n', summary.requests, summary.errors.connect + summary.errors.read"
           " + summary.errors.write + summary.errors.timeout, latency:percentile(50) / 1000, "
           "latency:percentile(99) / 1000, summary.duration / 1e6, summary.errors.status))\nend\n")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(lua)
    try:
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "-s", handle.name,
                              f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=duration + 60)
    finally:
        os.unlink(handle.name)
    if "JSON " not in out.stdout:
        raise RuntimeError(f"wrk failed (exit {out.returncode}): {out.stderr.strip()[-500:]}")
    stats = json.loads(out.stdout.split("JSON ", 1)[1].splitlines()[0])
    stats["rps"] = stats["requests"] / stats["seconds"]
    stats["client"] = "wrk"
    return stats


def python_load(port: int, words: list[str], connections: int, duration: int) -> dict[str, float]:
    """A bounded Python client: `connections` threads with keep-alive connections."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    stop = time.perf_counter() + duration

    def worker(slot: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = slot
        for _ in range(1_000_000):  # bounded
            if time.perf_counter() >= stop:
                break
            path = f"/models/{NAME}/neighbors?word={quote(words[i % len(words)])}&k=10"
            t = time.perf_counter()
            status, _ = request(port, "GET", path, conn=conn)
            latencies[slot].append((time.perf_counter() - t) * 1000)
            errors[slot] += status != 200
            i += connections
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(s,)) for s in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    flat = [x for lat in latencies for x in lat]
    return {"requests": len(flat), "errors": 0, "non2xx": sum(errors), "p50": pct(flat, 50),
            "p99": pct(flat, 99), "seconds": elapsed, "rps": len(flat) / elapsed, "client": "python"}


def single_client(port: int, make, n: int) -> tuple[float, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    lat = []
    for i in range(n):
        method, path, body = make(i)
        t = time.perf_counter()
        status, _ = request(port, method, path, body, conn=conn)
        lat.append((time.perf_counter() - t) * 1000)
        assert status == 200, status
    conn.close()
    return pct(lat, 50), pct(lat, 99)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=8, help="waitress threads")
    parser.add_argument("--workers", type=int, default=1,
                        help="`serve --workers` (default: 1, the probe's one process; see bench_workers.py)")
    parser.add_argument("--no-wrk", action="store_true", help="use the Python client even if wrk exists")
    parser.add_argument("--models", type=Path, default=None,
                        help="reuse a models dir holding glove-6b-50d (skips import; build only if missing)")
    args = parser.parse_args()

    from embeddings.formats import import_glove_6b_50d
    from embeddings.training import cpu_count
    from wordspace.cli_service import limit_native_threads
    from embeddings.index import load_or_build
    from embeddings.query import WordIndex
    from tests.helpers import to_keyed_vectors

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        models = args.models or Path(tmp) / "models"
        if args.models is None:
            t = time.perf_counter()
            emb = import_glove_6b_50d()
            store.save_model(models, NAME, emb)
            rows.append(("import + save GloVe 400k x 50", f"{time.perf_counter() - t:.1f} s"))

        limit_native_threads(cpu_count())
        emb = store.load_model(models, NAME)
        backend, report = load_or_build(models, NAME, emb)
        rows.append((f"index {report.source} ({report.kind}, M=32, efConstruction=40, {cpu_count()} threads)",
                     f"{report.seconds:.1f} s"))

        # In-process query cost: ours (HNSW, exact) vs gensim most_similar, same words.
        limit_native_threads(1)
        words = list(emb.words[100:1100])
        ours = WordIndex(emb, backend)
        kv = to_keyed_vectors(emb)
        kv.fill_norms()
        probe = words[:200]

        def per_query(fn) -> float:
            fn(probe[0])
            t0 = time.perf_counter()
            for w in probe:
                fn(w)
            return (time.perf_counter() - t0) / len(probe) * 1000

        gensim_ms = per_query(lambda w: kv.most_similar(w, topn=10))
        hnsw_ms = per_query(lambda w: ours.neighbors(w, 10))
        exact_ms = per_query(lambda w: ours.neighbors(w, 10, exact=True))
        recall = np.mean([len({r.word for r in ours.neighbors(w, 10)} & {x for x, _ in kv.most_similar(w, topn=10)})
                          / 10 for w in probe])
        rows.append(("in-process neighbours, gensim most_similar (exact)", f"{gensim_ms:.2f} ms/query"))
        rows.append(("in-process neighbours, ours HNSW (efSearch 128)",
                     f"{hnsw_ms:.2f} ms/query ({gensim_ms / hnsw_ms:.0f}x faster than gensim), "
                     f"recall@10 vs gensim {recall:.3f}"))
        rows.append(("in-process neighbours, ours exact (faiss.knn)",
                     f"{exact_ms:.2f} ms/query ({gensim_ms / exact_ms:.1f}x vs gensim)"))
        del kv

        proc, port, ready_s = start_server(models, args.threads, ("--workers", str(args.workers)))
        try:
            rows.append(("restart: `wordspace serve` process start -> /readyz 200 (persisted index)",
                         f"{ready_s:.2f} s (vs {report.seconds:.1f} s index {report.source})"))
            status, body = request(port, "GET", f"/models/{NAME}")
            rows.append(("index as served", json.dumps(json.loads(body)["index"])))
            use_wrk = shutil.which("wrk") is not None and not args.no_wrk
            loader = wrk_load if use_wrk else python_load
            load = loader(port, words, args.connections, args.duration)
            rows.append((f"GET neighbors, {args.connections} connections, {args.duration} s ({load['client']}, "
                         f"{args.threads} waitress threads)",
                         f"{load['rps']:.0f} req/s, p50 {load['p50']:.1f} ms, p99 {load['p99']:.1f} ms, "
                         f"{load['requests']} requests, {load['errors'] + load['non2xx']} errors"))
            probe, probe_port = start_probe(models, args.threads)
            try:
                bare = loader(probe_port, words, args.connections, args.duration)
            finally:
                probe.terminate()
                probe.wait(30)
                probe.stdout.close()
            rows.append(("same load on a bare Flask + waitress + HNSW probe (no validation, same index)",
                         f"{bare['rps']:.0f} req/s, p50 {bare['p50']:.1f} ms, p99 {bare['p99']:.1f} ms; "
                         f"ours = {load['rps'] / bare['rps']:.2f}x its throughput"))
            p50, p99 = single_client(port, lambda i: ("GET", f"/models/{NAME}/neighbors?word={quote(words[i])}&k=10",
                                                      None), 300)
            rows.append(("GET neighbors, 1 client", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"))
            for method in ("3cosadd", "3cosmul"):
                p50, p99 = single_client(port, lambda i: ("POST", f"/models/{NAME}/analogy", dict(
                    zip("abc", ANALOGIES[i % len(ANALOGIES)]), k=10, method=method)), 200)
                label = "exact " + method
                rows.append((f"POST analogy ({label}), 1 client", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"))
            status, body = request(port, "POST", f"/models/{NAME}/analogy",
                                   {"a": "italy", "b": "mussolini", "c": "germany", "k": 3})
            answers = [a["word"] for a in json.loads(body)["answers"]]
            rows.append(("italy : mussolini :: germany : ?", ", ".join(answers)))
        finally:
            proc.terminate()
            proc.wait(30)
            proc.stdout.close()

    print(f"\n### Index and REST API ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores)\n")
    print("| measure | result |\n| --- | --- |")
    for key, value in rows:
        print(f"| {key} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
