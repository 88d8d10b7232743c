"""The web explorer on GloVe 6B 50-d (400,000 words) in headless Chromium against a warm
`wordspace serve`: first paint of `/?model=glove-6b-50d&word=frog` (neighbours and map
drawn), completion latency over the whole vocabulary, and the frequency map of the
10,000 (and 50,000) most frequent words.

    .venv/bin/python benchmarks/bench_explorer.py [--models DIR] [--runs 20] [--completions 2000]

Without --models, GloVe is imported into a temporary models directory (its HNSW index is
built while the server loads, about 30-80 s on 2 cores). Only loopback traffic; every loop
is bounded. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import http.client
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from embeddings import store  # noqa: E402
from scripts.browser import launch_chromium, missing_browser, serve  # noqa: E402

NAME = "glove-6b-50d"
VIEWPORT = {"width": 1280, "height": 800}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def summary(values: list[float], unit: str = "ms") -> str:
    return (f"p50 {pct(values, 50):.1f} {unit}, p90 {pct(values, 90):.1f} {unit}, "
            f"p99 {pct(values, 99):.1f} {unit}, max {max(values):.1f} {unit} ({len(values)} runs)")


def completion_latencies(base: str, words: list[str], count: int, seed: int = 0) -> list[float]:
    """GET /vocabulary for `count` prefixes (1-4 leading characters of random words), one client
    on one kept-alive connection; milliseconds per answer."""
    rng = random.Random(seed)
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    times = []
    try:
        for _ in range(count):
            word = rng.choice(words)
            prefix = word[: rng.randint(1, min(4, len(word)))]
            started = time.perf_counter()
            conn.request("GET", f"/models/{NAME}/vocabulary?prefix={quote(prefix)}&limit=8")
            response = conn.getresponse()
            response.read()
            times.append(1000 * (time.perf_counter() - started))
            if response.status != 200:
                raise RuntimeError(f"completion of {prefix!r}: HTTP {response.status}")
    finally:
        conn.close()
    return times


def page_timings(browser, url: str, runs: int, marks: tuple[str, ...]) -> dict[str, list[float]]:
    """Open `url` `runs` times, each in a fresh browser context (empty cache), and return the wall
    time until the view is drawn plus each performance mark's time since navigation start."""
    out: dict[str, list[float]] = {"wall": [], **{mark: [] for mark in marks}}
    for _ in range(runs):
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        started = time.perf_counter()
        page.goto(url)
        page.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=60_000)
        out["wall"].append(1000 * (time.perf_counter() - started))
        status = page.inner_text("#status")
        if page.locator("#status.error").count():
            raise RuntimeError(f"{url}: {status}")
        for mark in marks:
            out[mark].append(page.evaluate(
                "(name) => performance.getEntriesByName(name).slice(-1)[0].startTime", mark))
        context.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=None, help="a models dir holding glove-6b-50d")
    parser.add_argument("--runs", type=int, default=20, help="page loads per measure")
    parser.add_argument("--completions", type=int, default=2000, help="completion requests")
    parser.add_argument("--threads", type=int, default=8, help="waitress threads")
    args = parser.parse_args()
    problem = missing_browser()
    if problem:
        print(f"bench_explorer: {problem}", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-explorer-") as tmp:
        models = args.models
        if models is None:
            from embeddings.formats import import_glove_6b_50d

            models = Path(tmp) / "models"
            store.save_model(models, NAME, import_glove_6b_50d())
        words = list(store.load_model(models, NAME, verify=False).words[:100_000])
        started = time.perf_counter()
        with serve(models, threads=args.threads, timeout_s=600) as base:
            rows.append(("`wordspace serve` start -> /readyz 200", f"{time.perf_counter() - started:.1f} s"))
            # The first answers pay one-time costs (scikit-learn's import, the sorted vocabulary):
            # measure them once, then the warm server.
            for label, path in (("first completion request (sorts the 400k words once)",
                                 f"/models/{NAME}/vocabulary?prefix=fro&limit=8"),
                                ("first map request (imports scikit-learn once)",
                                 f"/models/{NAME}/map?n=2")):
                host, port = base.removeprefix("http://").split(":")
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
                t = time.perf_counter()
                conn.request("GET", path)
                conn.getresponse().read()
                rows.append((label, f"{1000 * (time.perf_counter() - t):.0f} ms"))
                conn.close()
            latencies = completion_latencies(base, words, args.completions)
            rows.append(("completion, GET /vocabulary (prefixes of 1-4 chars, 1 client)", summary(latencies)))

            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                page_timings(browser, f"{base}/?model={NAME}&word=frog", 3, ())  # warm-up
                first = page_timings(browser, f"{base}/?model={NAME}&word=frog", args.runs, ("wordspace:ready",))
                rows.append(("first paint `/?model=glove-6b-50d&word=frog`: navigation -> neighbours + map drawn "
                             "(performance mark, fresh context each run)", summary(first["wordspace:ready"])))
                rows.append(("same, wall clock around `page.goto` + wait", summary(first["wall"])))
                for n in (10_000, 50_000):
                    runs = args.runs if n == 10_000 else max(3, args.runs // 4)
                    timing = page_timings(browser, f"{base}/?model={NAME}&view=map&n={n}", runs,
                                          ("wordspace:map-request", "wordspace:map-drawn"))
                    request_to_drawn = [b - a for a, b in zip(timing["wordspace:map-request"],
                                                              timing["wordspace:map-drawn"])]
                    rows.append((f"frequency map, {n:,} words: navigation -> canvas drawn",
                                 summary(timing["wordspace:map-drawn"])))
                    rows.append((f"frequency map, {n:,} words: request -> canvas drawn (server + JSON + draw)",
                                 summary(request_to_drawn)))
                browser.close()
    print("\n| measure | result |\n| --- | --- |")
    for label, value in rows:
        print(f"| {label} | {value} |")
    print(f"\n(median of the first paint: {statistics.median(first['wordspace:ready']):.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
