"""The web explorer in a real browser: Playwright drives Debian's Chromium against a real
`wordspace serve` on 127.0.0.1 with small models built here.

Where Chromium (or Playwright) is missing these tests fail with one line saying how to
install it; they are never skipped. Every page is watched: no uncaught exception, no
console error (an expected 404 answer is allowed only where a test asks for one) and no
request to any host but the server (the page must work offline).
"""
from __future__ import annotations

import csv
import io
import json
import struct
from pathlib import Path
from urllib.parse import quote, urlencode, urlparse

import numpy as np
import pytest

from embeddings import store
from embeddings.query import WordIndex
from embeddings.vectors import Embeddings
from scripts.browser import get_json, launch_chromium, missing_browser, serve
from scripts.screenshots import NAMES, take_screenshots
from tests.conftest import planted_embeddings
from tests.test_api import tiny_contextual

NOT_FOUND_LOG = "Failed to load resource: the server responded with a status of 404"
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser():
    problem = missing_browser()
    if problem:
        pytest.fail(problem, pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    """`wordspace serve` on two planted models, a frequency-ordered 5,000-word one and a tiny
    contextual one."""
    models = tmp_path_factory.mktemp("explorer-models")
    store.save_model(models, "planted", planted_embeddings(dim=16, noise_words=200))
    store.save_model(models, "planted-b", planted_embeddings(dim=16, noise_words=200, seed=1))
    rng = np.random.default_rng(7)
    store.save_model(models, "freq", Embeddings([f"w{i}" for i in range(5000)],
                                                rng.normal(size=(5000, 16)).astype(np.float32),
                                                np.arange(5000, 0, -1) * 3, {"method": "random"}))
    tiny_contextual(models, "ctx")
    with serve(models, log=models.parent / "serve.log") as url:
        yield url


class Watched:
    """A page whose console errors, uncaught exceptions and off-server requests are recorded."""

    def __init__(self, page, base_url: str) -> None:
        self.page, self.base_url = page, base_url
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.allowed_404s = 0
        page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        host = urlparse(base_url).netloc

        def only_this_server(route) -> None:
            url = route.request.url
            if urlparse(url).netloc == host or url.startswith(("data:", "blob:")):
                route.continue_()
            else:
                self.foreign.append(url)
                route.abort()

        page.context.route("**/*", only_this_server)

    def open(self, query: dict[str, str] | str = "") -> None:
        """Load the explorer with `query` and wait until its view has been drawn."""
        suffix = query if isinstance(query, str) else "?" + urlencode(query)
        self.page.goto(f"{self.base_url}/{suffix}")
        self.ready()

    def ready(self) -> None:
        # A function, not an expression string: the page's CSP forbids eval.
        self.page.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=TIMEOUT_MS)

    def rerun(self, action) -> None:
        """Do `action` (which starts a new view) and wait until that view has been drawn."""
        self.page.evaluate("document.body.dataset.state = 'waiting'")
        action()
        self.ready()

    def table_words(self, scope: str = "#results") -> list[str]:
        return self.page.locator(f"{scope} tbody tr").evaluate_all("rows => rows.map(r => r.dataset.word)")

    def check_clean(self) -> None:
        unexpected = [e for e in self.errors if not e.startswith(NOT_FOUND_LOG)]
        assert unexpected == [], unexpected
        assert sum(e.startswith(NOT_FOUND_LOG) for e in self.errors) == self.allowed_404s, self.errors
        assert self.foreign == []


@pytest.fixture
def explorer(browser, base_url):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    watched = Watched(context.new_page(), base_url)
    yield watched
    try:
        watched.check_clean()
    finally:
        context.close()


def neighbours(base_url: str, model: str, word: str, k: int = 10) -> list[str]:
    body = get_json(base_url, f"/models/{model}/neighbors?word={quote(word)}&k={k}")
    return [row["word"] for row in body["neighbors"]]


# -- the tests ------------------------------------------------------------------------------
def test_a_link_opens_the_neighbours_and_their_map(explorer, base_url):
    explorer.open({"model": "planted", "word": "king"})
    page = explorer.page
    expected = neighbours(base_url, "planted", "king")
    assert explorer.table_words() == expected
    points = page.locator("#map .point").evaluate_all("nodes => nodes.map(n => n.dataset.word)")
    assert sorted(points) == sorted(["king"] + expected)
    assert page.locator("#map .point.query").get_attribute("data-word") == "king"
    # Hover shows the word and its cosine; the map's coordinates are the server's projection.
    first = expected[0]
    page.hover(f'#map .point[data-word="{first}"] circle')
    tooltip = page.locator("#tooltip")
    assert tooltip.is_visible() and first in tooltip.inner_text() and "cosine" in tooltip.inner_text()
    assert "planted" in page.inner_text("#model-info") and "16 dimensions" in page.inner_text("#model-info")
    # Click re-centres on that word, and the URL follows.
    explorer.rerun(lambda: page.click(f'#map .point[data-word="{first}"] circle'))
    assert explorer.table_words() == neighbours(base_url, "planted", first)
    assert f"word={first}" in page.url


def test_k_control_and_keyboard_recentring(explorer, base_url):
    explorer.open({"model": "planted", "word": "king", "k": "3"})
    page = explorer.page
    assert explorer.table_words() == neighbours(base_url, "planted", "king", 3)
    explorer.rerun(lambda: (page.fill("#k", "5"), page.press("#k", "Enter"), page.locator("#k").blur()))
    assert len(explorer.table_words()) == 5 and "k=5" in page.url
    # Points are focusable; Enter on one re-centres.
    page.focus('#map .point[data-word="queen"]')
    explorer.rerun(lambda: page.keyboard.press("Enter"))
    assert explorer.table_words() == neighbours(base_url, "planted", "queen", 5)


def test_completion_over_the_whole_vocabulary(explorer, base_url):
    explorer.open({"model": "freq"})
    page = explorer.page
    page.click("#word")
    page.keyboard.type("w499")  # rows 499 and 4990-4999: the rarest words of the model
    expected = get_json(base_url, "/models/freq/vocabulary?prefix=w499&limit=8")
    assert expected == {"prefix": "w499", "total": 11, "words": ["w499"] + [f"w499{i}" for i in range(7)]}
    page.wait_for_function("(words) => JSON.stringify([...document.querySelectorAll('#word-completions "
                           "[role=option]')].map(n => n.dataset.word)) === JSON.stringify(words)",
                           arg=expected["words"])
    options = page.locator("#word-completions [role=option]")
    assert "11 words start with" in page.inner_text("#word-completions")
    assert page.locator("#word").get_attribute("aria-expanded") == "true"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert options.nth(1).get_attribute("aria-selected") == "true"
    explorer.rerun(lambda: page.keyboard.press("Enter"))
    picked = expected["words"][1]
    assert page.input_value("#word") == picked and f"word={picked}" in page.url
    assert explorer.table_words() == neighbours(base_url, "freq", picked)


def test_analogy_shows_the_answer_and_the_arrows(explorer, base_url):
    explorer.open({"model": "planted"})
    page = explorer.page
    page.click('.tabs button[data-view="analogy"]')
    page.wait_for_selector("#form-analogy:not([hidden])")
    page.fill("#analogy-a", "man")
    page.fill("#analogy-b", "king")
    page.fill("#analogy-c", "woman")
    explorer.rerun(lambda: page.click("#form-analogy button[type=submit]"))
    assert page.inner_text("#results .answer") == "queen"
    assert explorer.table_words()[0] == "queen"
    arrows = page.locator("#map line.arrow").evaluate_all("nodes => nodes.map(n => [n.dataset.from, n.dataset.to])")
    assert arrows == [["man", "king"], ["woman", "queen"]]
    assert page.locator("#map line.side").count() == 2
    assert page.locator("#map .point.answer").get_attribute("data-word") == "queen"
    assert "view=analogy" in page.url and "a=man" in page.url
    # 3CosMul through the radio button.
    page.check("input[name=method][value=\"3cosmul\"]")
    explorer.rerun(lambda: page.click("#form-analogy button[type=submit]"))
    assert "3CosMul" in page.inner_text("#results caption") and "method=3cosmul" in page.url


def test_switching_models(explorer, base_url):
    explorer.open({"model": "planted", "word": "king"})
    page = explorer.page
    explorer.rerun(lambda: page.select_option("#model", "planted-b"))
    assert "model=planted-b" in page.url
    assert explorer.table_words() == neighbours(base_url, "planted-b", "king")
    # Back returns to the first model's view (the state lives in the URL).
    explorer.rerun(page.go_back)
    assert page.input_value("#model") == "planted"
    assert explorer.table_words() == neighbours(base_url, "planted", "king")


def test_compare_two_models_marks_the_overlap(explorer, base_url):
    explorer.open({"model": "planted", "view": "compare", "word": "king", "model2": "planted-b"})
    page = explorer.page
    left, right = neighbours(base_url, "planted", "king"), neighbours(base_url, "planted-b", "king")
    tables = page.locator("#results table")
    assert tables.count() == 2
    assert explorer.table_words("#results .columns > table:nth-child(1)") == left
    assert explorer.table_words("#results .columns > table:nth-child(2)") == right
    shared = page.locator("#results .columns > table:nth-child(1) tr.shared").evaluate_all(
        "rows => rows.map(r => r.dataset.word)")
    assert shared == [w for w in left if w in right] and shared
    assert f"{len(shared)} of 10 words in both lists" in page.inner_text("#results .overlap")


def test_a_misspelled_word_offers_the_apis_suggestions(explorer, base_url):
    explorer.allowed_404s = 1  # the API's 404 word_not_found, which Chromium logs
    explorer.open({"model": "planted", "word": "kinq"})
    page = explorer.page
    assert "Not in the vocabulary" in page.inner_text("#status")
    suggestions = page.locator("#results button.suggestion")
    assert "king" in suggestions.all_inner_texts()
    explorer.rerun(lambda: page.click('#results button.suggestion:text-is("king")'))
    assert explorer.table_words() == neighbours(base_url, "planted", "king")
    assert page.input_value("#word") == "king"


def test_the_contextual_panel_separates_two_senses(explorer, base_url):
    explorer.open({"model": "ctx", "view": "context", "k": "5"})
    page = explorer.page
    lists = []
    for sentence in ("we sat on the river bank", "the money in the bank"):
        page.fill("#context-text", sentence)
        explorer.rerun(lambda: page.click("#form-context button[type=submit]"))
        explorer.rerun(lambda: page.click('#context-tokens button:text-is("bank")'))
        in_context = explorer.table_words("#results .columns > table:nth-child(1)")
        static = explorer.table_words("#results .columns > table:nth-child(2)")
        assert len(in_context) == 5 and static == neighbours(base_url, "ctx", "bank", 5)
        lists.append(in_context)
    assert lists[0] != lists[1]
    assert "cword=bank" in page.url
    # A static model has no context tab.
    explorer.rerun(lambda: page.select_option("#model", "planted"))
    assert page.locator('.tabs button[data-view="context"]').is_disabled()


def test_export_downloads_csv_and_json(explorer, base_url):
    explorer.open({"model": "planted", "word": "king"})
    page = explorer.page
    with page.expect_download() as info:
        page.click("#export-csv")
    download = info.value
    assert download.suggested_filename == "neighbours-king.csv"
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert rows[0] == ["rank", "word", "cosine", "x", "y"]
    assert [r[1] for r in rows[1:]] == ["king"] + neighbours(base_url, "planted", "king")
    with page.expect_download() as info:
        page.click("#export-json")
    doc = json.loads(Path(info.value.path()).read_text(encoding="utf-8"))
    assert doc["model"] == "planted" and [r["word"] for r in doc["rows"]][1:] == neighbours(base_url, "planted", "king")
    assert all(isinstance(r["x"], float) for r in doc["rows"])


def test_frequency_map_draws_and_recentres(explorer, base_url):
    explorer.open({"model": "freq", "view": "map", "n": "5000"})
    page = explorer.page
    canvas = page.locator("#freq-map")
    assert canvas.is_visible() and canvas.get_attribute("data-points") == "5000"
    assert not page.locator("#map").is_visible()
    # The 10th most frequent word: hover names it, click shows its neighbours.
    x, y = page.evaluate("() => { const m = document.querySelector('#freq-map').wordspaceMap; "
                         "return [m.px[9], m.py[9]]; }")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + y)
    word = page.inner_text("#tooltip").split(" · ")[0]
    assert word == "w9" and "rank 10" in page.inner_text("#tooltip")
    explorer.rerun(lambda: page.mouse.click(box["x"] + x, box["y"] + y))
    assert explorer.table_words() == neighbours(base_url, "freq", word)


def test_arithmetic_and_odd_one_out(explorer, base_url):
    explorer.open({"model": "planted", "view": "arithmetic", "pos": "king woman*1.0", "neg": "man"})
    page = explorer.page
    assert explorer.table_words()[0] == "queen"
    words = ["king", "queen", "man", "woman", "noise3"]
    odd, _ = WordIndex.brute_force(planted_embeddings(dim=16, noise_words=200)).odd_one_out(words)
    explorer.open({"model": "planted", "view": "odd", "words": " ".join(words)})
    assert page.inner_text("#results .answer") == odd
    assert page.locator("#map .point.odd").get_attribute("data-word") == odd


@pytest.mark.parametrize("width,height", [(1280, 800), (390, 844)])
def test_pages_fit_the_screen_and_load_nothing_from_elsewhere(explorer, width, height):
    page = explorer.page
    page.set_viewport_size({"width": width, "height": height})
    for query in ({"model": "planted", "word": "king"}, {"model": "planted", "view": "compare", "word": "king"},
                  {"model": "freq", "view": "map", "n": "1000"}):
        explorer.open(query)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.goto(f"{explorer.base_url}/docs")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.locator("pre", has_text="curl -s").count() >= 10
    font = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#results') || document.body).fontSize)")
    assert font >= 14


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_readme_screenshot_script(browser, base_url, tmp_path):
    """The script that makes the README's pictures, on the small models."""
    paths = take_screenshots(browser, base_url, tmp_path, "planted", "king", ("man", "king", "woman"), "planted-b")
    assert [p.name for p in paths] == list(NAMES)
    for path in paths:
        assert png_size(path) == (1280, 800) and path.stat().st_size > 20_000


def test_a_missing_chromium_is_one_line_saying_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("WORDSPACE_CHROMIUM", str(tmp_path / "no-chromium"))
    problem = missing_browser()
    assert problem is not None and "\n" not in problem and "apt-get install chromium" in problem
