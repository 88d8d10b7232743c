"""Load on the 400k-word GloVe model under waitress: requests/s and p50/p95/p99
latency at 1, 16 and 64 concurrent clients for a mix of 80% neighbours and 20%
analogy queries, the server's peak RSS, and a run above saturation (256
clients) that must be answered (slowly, or 503) without dropped connections or
5xx.

    .venv/bin/python benchmarks/bench_load.py [--duration 15] [--threads 8] [--no-wrk]

The server is a real `wordspace serve` subprocess on 127.0.0.1 (ephemeral
port). The load comes from `wrk` with a Lua script when it is installed
(`apt-get install wrk`), else from a bounded Python client (threads with
keep-alive connections). Every loop is bounded in time and count; loopback
only. The GloVe model is imported (and its HNSW index built by the server on
first start) into --models (default data/bench/models) and re-used after.
Prints a markdown table.
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
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from embeddings import store  # noqa: E402

from bench_service import request as http_request  # noqa: E402  (one HTTP client and server
from bench_service import start_server as serve_on_loopback  # noqa: E402  launcher for both benchmarks)

NAME = "glove-6b-50d"
ANALOGIES = [("man", "king", "woman"), ("italy", "mussolini", "germany"), ("france", "paris", "japan"),
             ("good", "better", "bad"), ("walk", "walked", "swim"), ("boy", "girl", "brother"),
             ("athens", "greece", "oslo"), ("slow", "slower", "fast"), ("big", "bigger", "small"),
             ("china", "beijing", "russia")]
ANALOGY_SHARE = 5  # every 5th request is an analogy: 80% neighbours / 20% analogy


def ensure_model(models: Path) -> str:
    """Import GloVe 6B 50d into `models` unless it is already there; returns what was done."""
    if store.model_path(models, NAME).exists():
        store.load_model(models, NAME)  # verified: a damaged cache is not benchmarked
        return "re-used"
    from embeddings.formats import import_glove_6b_50d

    started = time.perf_counter()
    store.save_model(models, NAME, import_glove_6b_50d())
    return f"imported in {time.perf_counter() - started:.0f} s"


def start_server(models: Path, threads: int, workers: int = 1) -> tuple[subprocess.Popen, int, float]:
    """`wordspace serve --model glove-6b-50d --workers N`; the first start builds the HNSW index (up to 600 s)."""
    return serve_on_loopback(models, threads, ("--model", NAME, "--workers", str(workers)), timeout_s=600)


def memory_kib(pid: int) -> dict[str, int]:
    """For the server's processes (the supervisor and its workers), in KiB from /proc: the
    largest VmRSS and VmHWM (peak RSS) of one process, and their summed Pss (shared pages,
    such as the memory-mapped vectors and index, split between the processes)."""
    pids = [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    values = {"VmRSS": 0, "VmHWM": 0, "Pss": 0, "processes": len(pids)}
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = max(values[key], int(rest.split()[0]))
        for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                values["Pss"] += int(line.split()[1])
    return values


def query_words(models: Path, n: int = 2000) -> list[str]:
    """Plain lowercase words from the frequent part of the vocabulary (no URL escaping needed)."""
    words = store.load_model(models, NAME, verify=False).words
    return [w for w in words[200:20_000] if re.fullmatch(r"[a-z]{3,12}", w)][:n]


# -- load generators ------------------------------------------------------------------------
WRK_SCRIPT = """
local words = {WORDS}
local analogies = {ANALOGIES}
local share = {SHARE}
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  counts = {}
  i = 0
end
function request()
  i = i + 1
  if i % share == 0 then
    local t = analogies[(i / share) % #analogies + 1]
    local body = string.format('{"a": "%s", "b": "%s", "c": "%s", "k": 10}', t[1], t[2], t[3])
    return wrk.format("POST", "/models/{NAME}/analogy", {["Content-Type"] = "application/json"}, body)
  end
  return wrk.format("GET", "/models/{NAME}/neighbors?k=10&word=" .. words[i % #words + 1])
end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests)
  local statuses = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do
      statuses[status] = (statuses[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(statuses) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  local e = summary.errors
  io.write(string.format('JSON {"requests": %d, "seconds": %f, "p50": %f, "p95": %f, "p99": %f, ' ..
    '"max": %f, "connect": %d, "read": %d, "write": %d, "timeout": %d, "statuses": {%s}}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, e.connect, e.read, e.write, e.timeout,
    table.concat(parts, ", ")))
end
"""


def wrk_load(port: int, words: list[str], clients: int, duration: int) -> dict[str, Any]:
    """wrk with the mixed-query Lua script; requests/s, latency percentiles, statuses, socket errors."""
    lua = (WRK_SCRIPT.replace("{WORDS}", "{" + ",".join(json.dumps(w) for w in words) + "}")
           .replace("{ANALOGIES}", "{" + ",".join("{%s}" % ",".join(json.dumps(x) for x in t)
                                                  for t in ANALOGIES) + "}")
           .replace("{SHARE}", str(ANALOGY_SHARE)).replace("{NAME}", NAME))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(lua)
    try:
        threads = min(2, clients)
        out = subprocess.run(["wrk", f"-t{threads}", f"-c{clients}", f"-d{duration}s", "--timeout", "60s",
                              "-s", handle.name, f"http://127.0.0.1:{port}/"],
                             capture_output=True, text=True, timeout=duration + 120)
    finally:
        os.unlink(handle.name)
    if "JSON " not in out.stdout:
        raise RuntimeError(f"wrk failed (exit {out.returncode}): {out.stderr.strip()[-500:]}")
    stats = json.loads(out.stdout.split("JSON ", 1)[1].splitlines()[0])
    stats["statuses"] = {int(k): v for k, v in stats["statuses"].items()}
    stats["dropped"] = stats.pop("connect") + stats.pop("read") + stats.pop("write") + stats.pop("timeout")
    stats["client"] = "wrk"
    return stats


def python_load(port: int, words: list[str], clients: int, duration: int) -> dict[str, Any]:
    """A bounded Python client: `clients` threads, each with one keep-alive connection."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    statuses: list[Counter] = [Counter() for _ in range(clients)]
    dropped = [0] * clients
    stop = time.perf_counter() + duration

    def worker(slot: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        i = slot
        for _ in range(10_000_000):  # bounded by count as well as time
            if time.perf_counter() >= stop:
                break
            i += 1
            if i % ANALOGY_SHARE == 0:
                a, b, c = ANALOGIES[(i // ANALOGY_SHARE) % len(ANALOGIES)]
                method, path, body = "POST", f"/models/{NAME}/analogy", {"a": a, "b": b, "c": c, "k": 10}
            else:
                method, path, body = "GET", f"/models/{NAME}/neighbors?k=10&word={words[i % len(words)]}", None
            started = time.perf_counter()
            try:
                status, _ = http_request(port, method, path, body, conn=conn)
            except (OSError, http.client.HTTPException):
                dropped[slot] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            latencies[slot].append((time.perf_counter() - started) * 1000)
            statuses[slot][status] += 1
        conn.close()

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(slot,)) for slot in range(clients)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    seconds = time.perf_counter() - started
    flat = np.asarray([x for lat in latencies for x in lat] or [float("nan")])
    return {"requests": int(sum(len(lat) for lat in latencies)), "seconds": seconds,
            "starved": sum(1 for lat in latencies if not lat),
            "p50": float(np.percentile(flat, 50)), "p95": float(np.percentile(flat, 95)),
            "p99": float(np.percentile(flat, 99)), "max": float(np.max(flat)),
            "statuses": dict(sum(statuses, Counter())), "dropped": sum(dropped), "client": "python"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=ROOT / "data" / "bench" / "models",
                        help="where the GloVe model is kept between runs (default: data/bench/models)")
    parser.add_argument("--duration", type=int, default=15, help="seconds per load level (default: 15)")
    parser.add_argument("--threads", type=int, default=8, help="waitress threads per worker (default: 8)")
    parser.add_argument("--workers", type=int, default=1, help="`serve --workers` (default: 1)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64], help="load levels")
    parser.add_argument("--overload", type=int, default=256, help="clients for the saturation run")
    parser.add_argument("--no-wrk", action="store_true", help="use the Python client even if wrk exists")
    args = parser.parse_args()

    setup = ensure_model(args.models)
    words = query_words(args.models)
    load = python_load if args.no_wrk or shutil.which("wrk") is None else wrk_load
    proc, port, ready_s = start_server(args.models, args.threads, args.workers)
    rows = []
    try:
        idle = memory_kib(proc.pid)
        for clients in [*args.clients, args.overload]:
            # The overload run uses the Python client: it sees connections that were never served.
            stats = (python_load if clients == args.overload else load)(port, words, clients, args.duration)
            statuses = stats["statuses"]
            five = sum(n for code, n in statuses.items() if code >= 500 and code != 503)
            rows.append((clients, stats, five))
            if proc.poll() is not None:
                raise RuntimeError("the server died under load")
        alive = http_request(port, "GET", "/livez")[0] == 200
        peak = memory_kib(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"\n### Load: GloVe 400k x 50, {args.workers} worker(s) x {args.threads} waitress threads, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, "
          f"{rows[0][1]['client']}, {args.duration} s per level, 80% neighbours / 20% analogy ({when})\n")
    print(f"Model {setup}; server ready in {ready_s:.1f} s; {idle['processes']} process(es), largest RSS after "
          f"loading {idle['VmRSS'] / 1024:.0f} MiB, total PSS {idle['Pss'] / 1024:.0f} MiB; largest peak RSS "
          f"{peak['VmHWM'] / 1024:.0f} MiB, total PSS after the runs {peak['Pss'] / 1024:.0f} MiB; "
          f"/livez after the runs: {'200' if alive else 'FAILED'}.\n")
    print("| clients | client | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | 200 | 503 | other 4xx "
          "| 5xx (not 503) | dropped/timeouts | never served | verdict |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    failed = not alive
    for clients, s, five in rows:
        st = s["statuses"]
        other4 = sum(n for code, n in st.items() if 400 <= code < 500)
        starved = s.get("starved")
        ok = five == 0 and s["dropped"] == 0 and other4 == 0 and s["requests"] > 0 and not starved
        failed |= not ok
        label = f"{clients}" + (" (overload)" if clients == args.overload else "")
        print(f"| {label} | {s['client']} | {s['requests']} | {s['requests'] / s['seconds']:.0f} | "
              f"{s['p50']:.1f} | {s['p95']:.1f} | {s['p99']:.1f} | {s['max']:.0f} | {st.get(200, 0)} | "
              f"{st.get(503, 0)} | {other4} | {five} | {s['dropped']} | {'-' if starved is None else starved} | "
              f"{'ok' if ok else 'FAIL'} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
