"""Headless Chromium and a real `wordspace serve`, for the browser tests, the README
screenshots and the explorer benchmark.

Playwright drives Debian's `chromium` package (Playwright's own browser download is not
used): `launch_chromium` starts it from `$WORDSPACE_CHROMIUM` or /usr/bin/chromium, and
`MISSING_CHROMIUM` is the one line that says how to install it. `serve` runs
`wordspace serve --port 0` on 127.0.0.1 (the address is its first output line) and waits
for /readyz.
"""
from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHROMIUM = "/usr/bin/chromium"
#: Headless, no sandbox (root in CI), and no traffic of Chromium's own (updates, sync, QUIC probes).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MISSING_CHROMIUM = ("Chromium not found at {path}: install it with 'sudo apt-get install chromium' "
                    "(make test does this when run as root), or set WORDSPACE_CHROMIUM to a Chromium binary")
MISSING_PLAYWRIGHT = "Playwright for Python is missing: pip install -e '.[test]' (make setup does this)"


def chromium_path() -> str | None:
    """The Chromium binary to drive, or None when there is none."""
    path = os.environ.get("WORDSPACE_CHROMIUM") or DEFAULT_CHROMIUM
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    return shutil.which(path) if os.sep not in path else None


def missing_browser() -> str | None:
    """Why no browser test can run (one line), or None when Playwright and Chromium are there."""
    if importlib.util.find_spec("playwright") is None:
        return MISSING_PLAYWRIGHT
    if chromium_path() is None:
        return MISSING_CHROMIUM.format(path=os.environ.get("WORDSPACE_CHROMIUM") or DEFAULT_CHROMIUM)
    return None


def launch_chromium(playwright: Any) -> Any:
    """A headless Chromium browser (Playwright `Browser`) from the system package."""
    problem = missing_browser()
    if problem:
        raise RuntimeError(problem)
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


def http_get(port: int, path: str, timeout: float = 10) -> tuple[int, bytes]:
    """(status, body) of a GET on 127.0.0.1:port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def get_json(base_url: str, path: str) -> Any:
    """GET a JSON document from the server at `base_url` (raises on a non-200 answer)."""
    port = int(base_url.rsplit(":", 1)[1].rstrip("/"))
    status, body = http_get(port, path)
    if status != 200:
        raise RuntimeError(f"GET {path}: HTTP {status}: {body[:200]!r}")
    return json.loads(body)


@contextlib.contextmanager
def serve(models_dir: Path, threads: int = 4, timeout_s: float = 300, log: Path | None = None) -> Iterator[str]:
    """Run `wordspace serve` on a free loopback port until the block ends; yields its base URL
    once /readyz is 200."""
    cmd = [sys.executable, "-c", "import sys; from wordspace.cli import main; sys.exit(main())",
           "serve", "--models", str(models_dir), "--host", "127.0.0.1", "--port", "0", "--threads", str(threads)]
    stderr = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = proc.stdout.readline()  # the address is always the first line
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not match:
            raise RuntimeError(f"wordspace serve did not print its address: {line!r}")
        port = int(match.group(1))
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if http_get(port, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"wordspace serve did not become ready (exit code {proc.poll()})")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()
        if log:
            stderr.close()
