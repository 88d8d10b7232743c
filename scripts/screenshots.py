"""Screenshots of the web explorer for the README: a word's neighbours and map, an analogy
with its parallelogram, and two models compared. The browser tests run `take_screenshots`
too, so the pictures cannot drift from a page that works.

    .venv/bin/python scripts/screenshots.py --models models --out docs/explorer \\
        --model glove-6b-50d --word frog --analogy italy,mussolini,germany --compare svd --compare-word music

With --url the screenshots are taken from a running server instead of a new
`wordspace serve --models DIR`.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.browser import launch_chromium, missing_browser, serve  # noqa: E402

VIEWPORT = {"width": 1280, "height": 800}
#: The README's file names.
NAMES = ("neighbours.png", "analogy.png", "compare.png")


def views(model: str, word: str, analogy: tuple[str, str, str], compare: str,
          compare_word: str | None = None) -> list[tuple[str, dict[str, str]]]:
    """(file name, query string) of each screenshot."""
    a, b, c = analogy
    return [
        (NAMES[0], {"model": model, "word": word}),
        (NAMES[1], {"model": model, "view": "analogy", "a": a, "b": b, "c": c}),
        (NAMES[2], {"model": model, "view": "compare", "word": compare_word or word, "model2": compare}),
    ]


def take_screenshots(browser, base_url: str, out_dir: Path, model: str, word: str,
                     analogy: tuple[str, str, str], compare: str, compare_word: str | None = None) -> list[Path]:
    """Open each view at 1280x800, wait until it has drawn, and save a PNG of the viewport."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    try:
        page = context.new_page()
        for name, query in views(model, word, analogy, compare, compare_word):
            page.goto(f"{base_url}/?{urlencode(query)}")
            page.wait_for_selector("body[data-state=ready]")
            if page.locator("#status.error").count():
                raise RuntimeError(f"{name}: the page shows an error: {page.inner_text('#status')}")
            page.mouse.move(0, 0)
            path = out_dir / name
            page.screenshot(path=str(path))
            written.append(path)
    finally:
        context.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8000")
    source.add_argument("--models", type=Path, help="serve this models directory for the screenshots")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "explorer", help="output directory")
    parser.add_argument("--model", default="glove-6b-50d")
    parser.add_argument("--word", default="frog")
    parser.add_argument("--analogy", default="italy,mussolini,germany", help="a,b,c")
    parser.add_argument("--compare", required=True, help="the second model of the comparison")
    parser.add_argument("--compare-word", default=None, help="the word compared (default: --word)")
    args = parser.parse_args(argv)
    analogy = tuple(args.analogy.split(","))
    if len(analogy) != 3:
        parser.error("--analogy takes three words a,b,c")
    problem = missing_browser()
    if problem:
        print(f"screenshots: {problem}", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    with contextlib.ExitStack() as stack:
        base = args.url.rstrip("/") if args.url else stack.enter_context(serve(args.models))
        playwright = stack.enter_context(sync_playwright())
        browser = launch_chromium(playwright)
        stack.callback(browser.close)
        for path in take_screenshots(browser, base, args.out, args.model, args.word, analogy, args.compare,
                                     args.compare_word):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
