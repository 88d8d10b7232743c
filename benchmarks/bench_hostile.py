"""Hostile clients and hostile models against a real `wordspace serve` (issue 16):

1. the external schemathesis run, `schemathesis run URL/openapi.json --checks all` (positive
   data acceptance included), against the server on the fuzz models of
   tests/test_fuzz_api.py, for a time budget;
2. slow clients (slowloris): N connections dripping one header byte every 0.5 s into one
   worker process while a normal client sends sequential requests: their latency and
   failures, with the tuned waitress and (for comparison) with waitress's defaults;
3. every hand-made bad model of tests/test_faults_models.py in one models directory: the
   server settles (no model left loading), each bad model failed, the good one serving.

    .venv/bin/python benchmarks/bench_hostile.py [--schemathesis-seconds 300] [--slow 0,110,500,900]
                                                 [--probe-seconds 10]

Loopback only; every loop bounded in time. Prints markdown tables; exit status 1 if the
schemathesis run failed, a normal client failed under the tuned server, or a bad model
stopped the server.
"""
from __future__ import annotations

import argparse
import http.client
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from embeddings import store  # noqa: E402
from tests import test_fuzz_api as fz  # noqa: E402
from tests.conftest import planted_embeddings  # noqa: E402
from tests.test_bad_requests import request, running_server  # noqa: E402
from tests.test_faults_http import SlowClients  # noqa: E402
from tests.test_faults_models import SURPRISES, bad_models_dir, settled  # noqa: E402

#: Makes `wordspace serve` use waitress's own defaults (100 connections, select()): the
#: "before" column of the slow-client table.
WAITRESS_DEFAULTS = '''
import waitress
_create_server = waitress.create_server
def create_server(app, **kw):
    for key in ("connection_limit", "asyncore_use_poll", "channel_timeout"):
        kw.pop(key, None)
    return _create_server(app, **kw)
waitress.create_server = create_server
'''


def wait_ready(host: str, port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while request(host, port, "GET", "/readyz")[0] != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not become ready")
        time.sleep(0.1)


def schemathesis_run(seconds: int, seed: int) -> tuple[list[str], bool]:
    """The external run; markdown lines and whether it passed."""
    cli = Path(sys.executable).with_name("schemathesis")
    with tempfile.TemporaryDirectory() as tmp, running_server(fz.build_models_dir(Path(tmp)), threads=4) \
            as (host, port):
        wait_ready(host, port)
        version = subprocess.run([str(cli), "--version"], capture_output=True, text=True).stdout.strip()
        command = [str(cli), "--no-color", "run", f"http://{host}:{port}/openapi.json", "--checks", "all",
                   "--workers", "1", "--max-time", str(seconds), "--seed", str(seed)]
        started = time.monotonic()
        result = subprocess.run(command, capture_output=True, text=True, cwd=tmp, timeout=seconds + 600)
        elapsed = time.monotonic() - started
    out = result.stdout + result.stderr
    cases = re.search(r"(\d+) generated", out)
    summary = [line.strip() for line in out.splitlines() if re.search(r"generated|passed|failed|No issues", line)]
    failures = re.findall(r"^_+ (.+?) _+$", out, re.MULTILINE)
    ok = result.returncode == 0
    lines = [f"`{' '.join(['schemathesis'] + command[1:])}` ({version}, {elapsed:.0f} s): "
             f"{cases.group(1) if cases else '?'} cases, exit status {result.returncode}",
             "", *(f"    {line}" for line in summary[-3:])]
    if failures:
        lines += ["", "failing operations: " + ", ".join(failures)]
    if not ok:
        lines += ["", "```", *out.splitlines()[-60:], "```"]
    return lines, ok


def probe(host: str, port: int, seconds: float) -> tuple[list[float], int]:
    """Sequential normal requests for `seconds`: latencies of the answered ones, failures."""
    latencies, failures = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            connection = http.client.HTTPConnection(host, port, timeout=10)
            connection.request("GET", "/models/planted/neighbors?word=king&k=3")
            response = connection.getresponse()
            response.read()
            connection.close()
            if response.status != 200:
                raise RuntimeError(response.status)
            latencies.append(time.monotonic() - started)
        except (OSError, RuntimeError, http.client.HTTPException):
            failures += 1
        time.sleep(0.05)
    return latencies, failures


def slow_clients(counts: list[int], seconds: float) -> tuple[list[str], bool]:
    rows, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        store.save_model(models, "planted", planted_embeddings())
        shim = Path(tmp) / "shim"
        shim.mkdir()
        (shim / "sitecustomize.py").write_text(WAITRESS_DEFAULTS)
        for label, env in (("tuned (1,000 connections, poll)", {}),
                           ("waitress defaults (100, select)", {"PYTHONPATH": str(shim)})):
            with running_server(models, threads=8, args=("--workers", "1"), env=env) as (host, port):
                wait_ready(host, port)
                for n in counts:
                    if env and n > 200:
                        continue  # the defaults already fail at 110
                    slow = SlowClients(host, port, n) if n else None
                    try:
                        time.sleep(1.0 if n else 0.0)
                        latencies, failures = probe(host, port, seconds)
                    finally:
                        if slow is not None:
                            slow.close()
                    latencies.sort()
                    p50 = latencies[len(latencies) // 2] * 1000 if latencies else float("nan")
                    worst = latencies[-1] * 1000 if latencies else float("nan")
                    verdict = "ok" if failures == 0 else "starved"
                    ok &= bool(env) or failures == 0
                    rows.append(f"| {label} | {n} | {len(latencies)} | {failures} | {p50:.1f} | {worst:.1f} | {verdict} |")
                    time.sleep(1.0)  # let the closed slow connections go
    return rows, ok


def bad_models() -> tuple[str, bool]:
    with tempfile.TemporaryDirectory() as tmp:
        models = bad_models_dir(Path(tmp))
        started = time.monotonic()
        with running_server(models, threads=2) as (host, port):
            status, body = settled(host, port)
            seconds = time.monotonic() - started
            states = body.get("error", {}).get("models", {})
            failed = sum(states.get(case, {}).get("status") == "failed" for case in SURPRISES)
            good = request(host, port, "GET", "/models/good/neighbors?word=w1&k=3")[0] == 200
    ok = status == 503 and failed == len(SURPRISES) and good
    return (f"| {len(SURPRISES)} hand-made bad models + 1 good, `wordspace serve` | {seconds:.1f} | "
            f"{failed} of {len(SURPRISES)} | {'yes' if good else 'NO'} |"), ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemathesis-seconds", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--slow", default="0,110,500,900", help="slow-client counts to try")
    parser.add_argument("--probe-seconds", type=float, default=10.0)
    args = parser.parse_args()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    lines, st_ok = schemathesis_run(args.schemathesis_seconds, args.seed) if args.schemathesis_seconds \
        else ([], True)
    if lines:
        print(f"\n### External schemathesis run ({when})\n")
        print("\n".join(lines))

    rows, slow_ok = slow_clients([int(n) for n in args.slow.split(",") if n.strip()], args.probe_seconds)
    print(f"\n### Slow clients, one worker process, {os.cpu_count()} cores ({when})\n")
    print("| server | slow connections | normal requests answered | failed | p50 ms | max ms | verdict |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    print("\n".join(rows))

    row, models_ok = bad_models()
    print("\n### Bad models at server start\n")
    print("| models directory | seconds until settled | failed with a reason | good model serving |\n"
          "| --- | ---: | ---: | --- |")
    print(row)
    return 0 if st_ok and slow_ok and models_ok else 1


if __name__ == "__main__":
    sys.exit(main())
