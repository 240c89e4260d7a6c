"""The search page and the API docs. First what the app serves (in-process); then, marked slow, the page in a
real browser: Debian's Chromium, headless, driven by Playwright, against the real server (``python -m service``)
on the tiny index and a second collection. Search, modes, errors, escaping, the API key, a phone's width, the
keyboard, the loading state, side by side, sentence similarity, the collection picker (and a key limited to one
collection), ``/docs``; and no request ever leaves the page's origin.

``SIMSEARCH_SCREENSHOTS=1`` also saves screenshots into ``docs/images/`` (the pictures in docs/search-page.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tests.server import ROOT, Server, running_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WRITE_KEY = "write-key-0123456789"
READ_KEY = "read-key-0123456789-x"
SCOPED_KEY = "scoped-key-0123456789"  # reads collection "x" only
MARKUP_TITLE = "<img src=x onerror=alert(1)>"
MARKUP_DOC = {
    "id": "x",
    "title": MARKUP_TITLE,
    "text": "A title that looks like markup <script>alert(2)</script> must show as text: onerror alert.",
}
# the second collection's documents: nothing like the tiny index's, so a hit says which collection answered
SPACE_DOCS = [
    {"id": "s1", "title": "Saturn", "text": "The rings of Saturn are made of ice and rock."},
    {"id": "s2", "title": "Comets", "text": "A comet's tail always points away from the Sun."},
    {"id": "s3", "title": "Mars", "text": "Mars has the tallest volcano in the solar system, Olympus Mons."},
]
SCREENSHOTS = ROOT / "docs" / "images" if os.environ.get("SIMSEARCH_SCREENSHOTS") == "1" else None
STATIC = ROOT / "service" / "static"


# ---- the browser, the servers, one visit per test -------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: pip install playwright (see the dev extra in pyproject.toml)")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (the browser tests drive Debian's Chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _copy_index(root: Path, built_index: Path) -> Path:
    """A private copy of the tiny index (the server writes its log beside it)."""
    root.mkdir()
    real = built_index.resolve()
    shutil.copytree(real, root / real.name)
    os.symlink(real.name, root / "tiny")
    return root


def _fill_collection(server: Server, name: str) -> None:
    """Create collection ``name`` (its specification's defaults) and write SPACE_DOCS into it."""
    auth = {"authorization": f"Bearer {WRITE_KEY}"}
    r = httpx.put(f"{server.url}/collections/{name}", json={}, headers=auth, timeout=30)
    assert r.status_code == 201, r.text
    docs = {"documents": SPACE_DOCS}
    r = httpx.put(f"{server.url}/collections/{name}/documents", json=docs, headers=auth, timeout=30)
    assert r.status_code == 200, r.text


def _check_wired(server: Server) -> None:
    r = httpx.get(f"{server.url}/", timeout=10)
    if r.status_code != 200 or "text/html" not in r.headers.get("content-type", ""):
        pytest.fail(
            f"GET / answered {r.status_code}: the app does not serve the page; create_app in service/app.py "
            "needs app.include_router(page.router) and page.install_docs(app) (see service/page.py)"
        )


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, built_index: Path, tiny_model: str, tiny_cross: str
) -> Iterator[Server]:
    """Open for reading, with a cross-encoder and a write key; the default collection holds DOCS and a document
    titled as markup, collection "space" (no cross-encoder) SPACE_DOCS."""
    root = _copy_index(tmp_path_factory.mktemp("page") / "indexes", built_index)
    env = {"SIMSEARCH_CROSS_MODEL": tiny_cross, "SIMSEARCH_WRITE_KEYS": WRITE_KEY, "SIMSEARCH_LOG_LEVEL": "warning"}
    with running_server(tiny_model, root, "tiny", **env) as s:
        _check_wired(s)
        r = httpx.put(
            f"{s.url}/documents",
            json={"documents": [MARKUP_DOC]},
            headers={"authorization": f"Bearer {WRITE_KEY}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        _fill_collection(s, "space")
        yield s


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory, built_index: Path, tiny_model: str) -> Iterator[Server]:
    """A read key for every collection, and SCOPED_KEY for collection "x" (SPACE_DOCS) only."""
    root = _copy_index(tmp_path_factory.mktemp("page-keys") / "indexes", built_index)
    scoped = json.dumps([{"key": SCOPED_KEY, "scopes": ["read"], "collections": ["x"]}])
    env = {"SIMSEARCH_WRITE_KEYS": WRITE_KEY, "SIMSEARCH_SCOPED_KEYS": scoped, "SIMSEARCH_LOG_LEVEL": "warning"}
    with running_server(tiny_model, root, "tiny", SIMSEARCH_API_KEYS=READ_KEY, **env) as s:
        _check_wired(s)
        _fill_collection(s, "x")
        yield s


@dataclass
class Visit:
    """A fresh browser context on one server, recording what a person would not see."""

    page: Any
    base: str
    foreign: list[str] = field(default_factory=list)  # requests to any other origin (aborted)
    dialogs: list[str] = field(default_factory=list)  # alert/confirm/prompt: none may open
    console_errors: list[str] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)

    def open(self, path: str = "/") -> None:
        self.page.goto(self.base + path)
        if path == "/":
            self.page.wait_for_selector("body[data-ready=true]")

    def search(self, query: str, mode: str = "dense") -> None:
        self.page.check(f"#mode-{mode}")
        self.page.fill("#q", query)
        self.page.press("#q", "Enter")
        self.wait_idle()

    def wait_idle(self) -> None:
        self.page.wait_for_selector("#results[aria-busy=false]")
        self.page.wait_for_selector("#search-status:not(.busy)")

    def shoot(self, name: str, full_page: bool = True) -> None:
        if SCREENSHOTS is not None:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(SCREENSHOTS / name), full_page=full_page)


@contextmanager
def visiting(browser: Any, server: Server, **context: Any) -> Iterator[Visit]:
    ctx = browser.new_context(**{"viewport": {"width": 1280, "height": 900}, **context})
    page = ctx.new_page()
    page.set_default_timeout(20_000)
    visit = Visit(page, server.url)

    def guard(route: Any) -> None:
        url = route.request.url
        if url.startswith(server.url + "/") or url.startswith("data:"):
            route.continue_()
        else:
            visit.foreign.append(url)
            route.abort()

    ctx.route("**/*", guard)
    page.on("request", lambda r: visit.requests.append(r))
    page.on("dialog", lambda d: (visit.dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: visit.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: visit.console_errors.append(f"uncaught: {e}"))
    try:
        yield visit
        assert visit.foreign == [], f"the page reached other origins: {visit.foreign}"
        assert visit.dialogs == [], f"dialogs opened: {visit.dialogs}"
        policy = [e for e in visit.console_errors if "Content Security Policy" in e or "uncaught" in e]
        assert policy == [], policy
    finally:
        ctx.close()


@pytest.fixture
def visit(browser: Any, server: Server) -> Iterator[Visit]:
    with visiting(browser, server) as v:
        yield v


def _ids(page: Any, scope: str = "#results") -> list[str]:
    return page.eval_on_selector_all(f"{scope} .hit", "els => els.map(e => e.dataset.id)")


def _options(page: Any) -> list[tuple[str, bool]]:
    """The collection picker's choices: (name, disabled)."""
    options = page.eval_on_selector_all("#collection option", "os => os.map(o => [o.value, o.disabled])")
    return [(name, disabled) for name, disabled in options]


def _api_search(server: Server, path: str = "/search", **body: Any) -> dict[str, Any]:
    r = httpx.post(f"{server.url}{path}", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


# ---- what the app serves (in-process) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, built_index: Path, tiny_model: str, tiny_cross: str
) -> Iterator[TestClient]:
    from simsearch.settings import Settings

    root = _copy_index(tmp_path_factory.mktemp("page-app") / "indexes", built_index)
    settings = Settings(bi_model=tiny_model, cross_model=tiny_cross, index_dir=root, index_name="tiny")
    with TestClient(create_app(settings)) as c:
        yield c


def test_page_is_served_with_a_strict_policy_and_names_no_other_origin(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200, "create_app must include service.page.router"
    policy = r.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self';" in policy and "unsafe" not in policy
    assert r.headers["x-content-type-options"] == "nosniff"
    files = sorted(p.name for p in STATIC.iterdir())
    assert {"index.html", "app.js", "style.css"} <= set(files)
    for name in files:
        text = (STATIC / name).read_text(encoding="utf-8")
        names = text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a namespace, never fetched
        assert not re.search(r"https?://|//[a-z0-9-]+\.[a-z]", names), f"{name} names another origin"
        served = client.get(f"/static/{name}")
        assert served.status_code == 200 and served.text == text
        assert served.headers["content-security-policy"] == policy  # /static/index.html too
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text and "document.write" not in text


def test_modes_say_which_modes_run_and_why_not(client: TestClient) -> None:
    modes = {m["mode"]: m for m in client.get("/modes").json()["modes"]}
    assert list(modes) == ["dense", "lexical", "hybrid", "rerank", "cur"]
    assert all(modes[m]["available"] and modes[m]["reason"] is None for m in ("dense", "lexical", "hybrid", "rerank"))
    assert not modes["cur"]["available"] and "CUR" in modes["cur"]["reason"]
    r = client.post("/search", json={"query": "tea", "mode": "cur"})
    assert r.status_code == 422 and modes["cur"]["reason"] in r.json()["message"]  # /modes says what /search does


def test_docs_are_served_from_the_package(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    html = r.text
    assert "https://" not in html and "http://" not in html, "FastAPI's CDN page: create_app needs docs_url=None"
    scripts = re.findall(r'<script src="([^"]+)"', html)
    styles = re.findall(r'<link type="text/css" rel="stylesheet" href="([^"]+)"', html)
    assert scripts == ["/docs/swagger-ui/swagger-ui-bundle.js"] and styles == ["/docs/swagger-ui/swagger-ui.css"]
    for url in scripts + styles:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 100_000
    inline = re.search(r"<script>(.*?)</script>", html, flags=re.S)
    assert inline is not None
    digest = base64.b64encode(hashlib.sha256(inline.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in r.headers["content-security-policy"]  # the one inline script, by its hash
    assert client.get("/redoc").status_code == 404  # FastAPI's CDN-loading ReDoc is off too


# ---- the page in the browser ---------------------------------------------------------------------------


@pytest.mark.slow
def test_search_shows_hits_with_highlights_and_the_response_facts(visit: Visit, server: Server) -> None:
    visit.open()
    page = visit.page
    assert page.is_disabled("#mode-cur") and "CUR" in page.inner_text("#mode-cur-reason")
    assert page.is_enabled("#mode-rerank")
    manifest = page.inner_text("#manifest")
    assert "model" in manifest and "recall@10" in manifest and "9 (8 at build)" in manifest

    visit.search("roasted coffee beans", "lexical")
    expected = _api_search(server, query="roasted coffee beans", mode="lexical")
    assert _ids(page) == [h["id"] for h in expected["hits"]] and _ids(page)[0] == "d6"
    first = page.locator("#results .hit").first
    assert first.locator(".hit-title").inner_text() == "Coffee"
    assert first.locator(".score").inner_text() == f"{expected['hits'][0]['score']:.4f}"
    marks = first.locator(".snippet mark").all_inner_texts()
    assert {m.lower() for m in marks} >= {"coffee", "roasted", "beans"}
    status = page.inner_text("#search-status")
    assert re.search(r"^lexical: \d+ hits? · [\d.]+ ms · cross-encoder calls: 0 · not truncated$", status), status
    assert "9 documents" in page.inner_text("#index-badge")  # live, with the document written since the build
    visit.search("domesticated animals, coffee or tea", "lexical")
    assert set(_ids(page)) == {"d1", "d2", "d6", "d7"}
    visit.shoot("search-page.png")


@pytest.mark.slow
def test_switching_mode_uses_the_cross_encoder_budget(visit: Visit) -> None:
    visit.open()
    page = visit.page
    assert page.is_disabled("#k-r")  # only rerank and cur spend it
    page.check("#mode-rerank")
    assert page.is_enabled("#k-r") and page.is_enabled("#candidates")
    page.fill("#k-r", "4")
    page.select_option("#candidates", "dense")
    visit.search("hot drinks", "rerank")
    assert "cross-encoder calls: 4" in page.inner_text("#search-status")
    assert page.inner_text("#results .column-head").startswith("rerank")
    assert len(_ids(page)) == 4  # k=10, but only the k_r=4 candidates are re-scored

    page.fill("#filter", '{"lang": {"$eq": "en"}}')
    visit.search("animals", "dense")
    assert _ids(page) == ["d1"]


@pytest.mark.slow
def test_a_rejected_request_shows_the_service_message(visit: Visit, server: Server) -> None:
    visit.open()
    page = visit.page
    visit.search("coffee", "lexical")
    before = _ids(page)
    page.fill("#filter", '{"year": {"$near": 1}}')
    visit.search("coffee", "lexical")
    bad = {"query": "coffee", "mode": "lexical", "filter": {"year": {"$near": 1}}}
    r = httpx.post(f"{server.url}/search", json=bad, timeout=10)
    assert r.status_code == 422
    error = page.locator("#search-error")
    assert error.is_visible()
    assert "HTTP 422" in error.inner_text() and r.json()["message"] in error.inner_text()
    assert _ids(page) == before  # the last good results stay

    sent = len(visit.requests)
    page.fill("#filter", "{year: 2020")
    page.press("#q", "Enter")
    assert "Check the form" in error.inner_text() and "not valid JSON" in error.inner_text()
    assert len(visit.requests) == sent  # checked in the page, nothing sent


@pytest.mark.slow
@pytest.mark.parametrize(
    ("status", "body", "shown"),
    [
        (403, {"detail": "no", "message": "this key may read but not write"}, "Not allowed (HTTP 403)"),
        (409, {"detail": "x", "message": "the collection is read-only"}, "Conflict (HTTP 409)"),
        (429, {"detail": "x", "message": "the bi-encoder queue is full"}, "try again in 2 s"),
        (503, {"detail": "x", "message": "timed out: the model took too long"}, "not available (HTTP 503)"),
        (502, "<html>Bad Gateway</html>", "Error (HTTP 502)"),
    ],
)
def test_error_answers_are_readable_messages(visit: Visit, status: int, body: Any, shown: str) -> None:
    """The page's handling of answers the tiny server cannot be made to give on demand (a full queue, a
    proxy's HTML error page): the browser receives them as if from the server."""
    visit.open()
    text = body if isinstance(body, str) else json.dumps(body)
    visit.page.route(
        "**/search",
        lambda route: route.fulfill(
            status=status,
            body=text,
            content_type="text/html" if isinstance(body, str) else "application/json",
            headers={"Retry-After": "2"} if status == 429 else {},
        ),
    )
    visit.search("coffee", "dense")
    error = visit.page.inner_text("#search-error")
    assert shown in error
    assert (body if isinstance(body, str) else body["message"]) in error


@pytest.mark.slow
def test_text_from_the_index_is_shown_as_text(visit: Visit) -> None:
    visit.open()
    page = visit.page
    visit.search("onerror alert", "lexical")
    assert _ids(page)[0] == "x"
    hit = page.locator('#results .hit[data-id="x"]')
    assert hit.locator(".hit-title").text_content() == MARKUP_TITLE
    assert hit.locator(".hit-title mark").all_inner_texts() == ["onerror", "alert"]
    assert "<script>alert(2)</script>" in hit.locator(".snippet").text_content()
    assert page.locator("#results img, #results script").count() == 0
    page.wait_for_timeout(300)  # an onerror handler would have fired by now
    assert not [r.url for r in visit.requests if r.url.rstrip("/").endswith("/x")]  # no <img src=x> was loaded
    visit.shoot("escaping.png")


@pytest.mark.slow
def test_keyboard_only(visit: Visit) -> None:
    visit.open()
    page = visit.page

    def focused() -> str:
        return page.evaluate("document.activeElement.id")

    assert focused() == "q"  # the query box has the focus on arrival
    page.keyboard.type("coffee beans")
    page.keyboard.press("Enter")
    visit.wait_idle()
    assert _ids(page)
    order = []
    for _ in range(5):
        page.keyboard.press("Tab")
        order.append(focused())
    # disabled controls (k_r, first stage and the second mode, while unused) are skipped
    assert order == ["search-button", "mode-dense", "k", "filter", "side-by-side"]
    for _ in range(3):
        page.keyboard.press("Shift+Tab")
    assert focused() == "mode-dense"
    page.keyboard.press("ArrowRight")  # the next mode: lexical
    assert focused() == "mode-lexical" and page.is_checked("#mode-lexical")
    page.keyboard.press("Enter")
    visit.wait_idle()
    assert page.inner_text("#results .column-head").startswith("lexical")
    assert _ids(page)[0] == "d6"


@pytest.mark.slow
def test_readable_at_a_phone_width(browser: Any, server: Server) -> None:
    with visiting(browser, server, viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True) as visit:
        visit.open()
        page = visit.page
        visit.search("coffee", "lexical")
        page.check("#side-by-side")
        page.select_option("#mode-b", "dense")
        visit.search("coffee", "lexical")
        assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
        for selector in ("#q", "#search-button", "#filter", "#results .hit", "#manifest"):
            box = page.locator(selector).first.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375, (selector, box)
        visit.shoot("phone.png", full_page=False)
        page.evaluate("document.querySelector('#results').scrollIntoView({block: 'start'})")
        visit.shoot("phone-results.png", full_page=False)


@pytest.mark.slow
def test_results_keep_their_place_while_loading(visit: Visit) -> None:
    visit.open()
    page = visit.page
    visit.search("coffee", "lexical")
    height = page.locator("#results").bounding_box()["height"]
    ids = _ids(page)
    gate: list[Any] = []
    page.route("**/search", lambda route: gate.append(route))  # hold the next answer
    page.press("#q", "Enter")
    page.wait_for_selector("#results[aria-busy=true]")
    assert "busy" in page.get_attribute("#search-status", "class")
    assert "Searching" in page.inner_text("#search-status")
    assert _ids(page) == ids  # the old results stay, dimmed
    # dimmed: the opacity eases over 0.15 s (a CSS transition), so poll it rather than read it at once
    # (polled from Python: wait_for_function evaluates a string, which the page's CSP forbids)
    opacity = "getComputedStyle(document.getElementById('results')).opacity"
    for _ in range(40):
        if float(page.evaluate(opacity)) < 0.9:
            break
        page.wait_for_timeout(50)
    assert float(page.evaluate(opacity)) < 0.9
    assert page.locator("#results").bounding_box()["height"] == height
    page.wait_for_timeout(100)
    assert len(gate) == 1
    gate[0].continue_()
    visit.wait_idle()
    assert _ids(page) == ids


@pytest.mark.slow
def test_side_by_side_marks_what_moved(visit: Visit, server: Server) -> None:
    visit.open()
    page = visit.page
    page.check("#side-by-side")
    page.select_option("#mode-b", "rerank")
    page.fill("#k-r", "20")
    query = "domesticated coffee tea drink"
    visit.search(query, "lexical")
    left, right = page.locator('[data-mode="lexical"]'), page.locator('[data-mode="rerank"]')
    assert left.is_visible() and right.is_visible()
    a = [h["id"] for h in _api_search(server, query=query, mode="lexical")["hits"]]
    b = [h["id"] for h in _api_search(server, query=query, mode="rerank", k_r=20)["hits"]]
    assert _ids(page, '[data-mode="lexical"]') == a and _ids(page, '[data-mode="rerank"]') == b
    expected = []
    for i, doc_id in enumerate(b, 1):
        j = a.index(doc_id) + 1 if doc_id in a else None
        expected.append("new" if j is None else f"↑{j - i}" if j > i else f"↓{i - j}" if j < i else "=")
    assert right.locator(".move").all_inner_texts() == expected
    assert left.locator(".move").all_inner_texts() == ["out" for d in a if d not in b]
    assert {"new", "="} != set(expected)  # this query moves some documents, not only adds them
    box_l, box_r = left.bounding_box(), right.bounding_box()
    assert box_l["x"] + box_l["width"] <= box_r["x"]  # two columns, side by side
    visit.shoot("side-by-side.png")


@pytest.mark.slow
def test_compare_sentences(visit: Visit, server: Server) -> None:
    visit.open()
    page = visit.page
    page.click("#tab-similarity")
    assert page.is_visible("#panel-similarity") and not page.is_visible("#panel-search")
    page.check("#sim-cross")
    page.click("#sim-button")
    page.wait_for_selector("#sim-results table")
    shown = page.locator("#sim-results tbody td.num:nth-child(3)").all_inner_texts()
    targets = page.input_value("#sim-targets").split("\n")
    r = httpx.post(
        f"{server.url}/similarity",
        json={"source": page.input_value("#sim-source"), "targets": targets, "model": "cross"},
        timeout=30,
    )
    assert shown == [f"{s:.4f}" for s in r.json()["scores"]]
    assert "cross-encoder" in page.inner_text("#sim-status")
    visit.shoot("similarity.png")


@pytest.mark.slow
def test_the_key_is_asked_once_and_sent(browser: Any, keyed_server: Server) -> None:
    with visiting(browser, keyed_server) as visit:
        page = visit.page
        page.goto(keyed_server.url + "/")
        page.wait_for_selector("#key-panel:not([hidden])")
        assert page.evaluate("document.activeElement.id") == "key-input"
        visit.shoot("api-key.png")
        page.fill("#key-input", "not-the-key-at-all-0000")
        page.press("#key-input", "Enter")
        page.wait_for_selector("#key-reason:has-text('refused')")
        assert "missing or invalid API key" in page.inner_text("#key-reason")
        page.fill("#key-input", READ_KEY)
        page.press("#key-input", "Enter")
        page.wait_for_selector("body[data-ready=true]")
        assert page.is_hidden("#key-panel")
        visit.search("coffee", "lexical")
        assert _ids(page)[0] == "d6"
        searches = [r for r in visit.requests if r.url.endswith("/search")]
        assert searches and all(r.headers.get("authorization") == f"Bearer {READ_KEY}" for r in searches)
        assert page.evaluate("sessionStorage.getItem('simsearch.apiKey')") == READ_KEY
        assert page.evaluate("localStorage.length") == 0  # the tab only
        page.reload()
        page.wait_for_selector("body[data-ready=true]")
        assert page.is_hidden("#key-panel")  # asked once per tab


@pytest.mark.slow
def test_the_picker_searches_the_collection_picked_and_the_url_keeps_it(
    visit: Visit, server: Server, tiny_model: str
) -> None:
    visit.open()
    page = visit.page
    assert _options(page) == [("space", False), ("tiny", False)]
    assert page.input_value("#collection") == "tiny"  # the default collection, /ready's "index"
    assert "collection=" not in page.url  # nothing picked yet
    visit.search("rings of Saturn", "lexical")
    assert _ids(page) == [] and "No documents matched" in page.inner_text("#results")

    page.select_option("#collection", "space")
    page.wait_for_selector("body[data-collection=space][data-ready=true]")
    visit.wait_idle()  # the search that had run, run again in the collection picked
    expected = _api_search(server, "/collections/space/search", query="rings of Saturn", mode="lexical")
    assert _ids(page) == [h["id"] for h in expected["hits"]] and _ids(page)[0] == "s1"
    assert page.locator("#results .hit").first.locator(".hit-title").inner_text() == "Saturn"
    assert urlsplit(page.url).query == "collection=space"
    assert page.inner_text("#index-badge") == "collection space · 3 documents · no cross-encoder"
    assert page.is_disabled("#mode-rerank")  # its specification names no cross-encoder
    manifest = page.inner_text("#manifest")
    info = httpx.get(f"{server.url}/collections/space", timeout=10).json()
    assert "space" in manifest and "3 (0 at build)" in manifest
    assert f"{info['models']['bi']['name']} (folder {info['models']['bi']['folder']})" in manifest
    assert info["models"]["bi"]["sha256"][:12] in manifest
    assert tiny_model not in manifest and str(ROOT) not in manifest  # a model by name, never a server path
    assert page.is_hidden("#collection-warnings")  # none reported
    visit.shoot("collections.png")

    page.reload()  # the URL keeps the choice
    page.wait_for_selector("body[data-collection=space][data-ready=true]")
    assert page.input_value("#collection") == "space"
    visit.search("volcano", "dense")
    assert set(_ids(page)) == {"s1", "s2", "s3"}
    paths = {urlsplit(r.url).path for r in visit.requests if r.method == "POST"}
    assert paths == {"/collections/tiny/search", "/collections/space/search"}


@pytest.mark.slow
def test_unavailable_collections_are_greyed_out_and_warnings_shown(visit: Visit) -> None:
    """A collection that failed to open, and warnings, which the tiny server has none of: added to its answers."""
    warning = "31% of the documents sampled are not in English, the model's language"

    def listing(route: Any) -> None:
        answer = route.fetch()
        body = answer.json()
        broken = {"name": "broken", "state": "unavailable", "reason": "its manifest does not match its files"}
        body["collections"].append({**broken, "documents": None, "model": None, "backend": None})
        route.fulfill(response=answer, json=body)

    def described(route: Any) -> None:
        answer = route.fetch()
        route.fulfill(response=answer, json={**answer.json(), "warnings": [warning, MARKUP_TITLE]})

    visit.page.route("**/collections", listing)
    visit.page.route("**/collections/tiny", described)
    visit.open()
    page = visit.page
    assert _options(page) == [("space", False), ("tiny", False), ("broken", True)]
    assert page.get_attribute('#collection option[value="broken"]', "title") == "its manifest does not match its files"
    box = page.locator("#collection-warnings")
    assert box.is_visible() and "tiny" in box.locator("h2").inner_text()
    assert box.locator("li").all_text_contents() == [warning, MARKUP_TITLE]  # as text, not markup
    assert box.locator("img").count() == 0
    visit.search("coffee", "lexical")
    assert box.is_visible() and _ids(page)[0] == "d6"


@pytest.mark.slow
def test_a_key_limited_to_one_collection_sees_only_that_one(browser: Any, keyed_server: Server) -> None:
    with visiting(browser, keyed_server) as visit:
        page = visit.page
        page.goto(keyed_server.url + "/?collection=tiny")
        page.wait_for_selector("#key-panel:not([hidden])")
        page.fill("#key-input", SCOPED_KEY)
        page.press("#key-input", "Enter")
        page.wait_for_selector("body[data-ready=true]")
        assert _options(page) == [("x", False)]  # not the default collection, which this key may not read
        assert page.input_value("#collection") == "x"
        assert "no collection tiny this key may search" in page.inner_text("#search-status")
        assert urlsplit(page.url).query == "collection=x"
        visit.search("rings of Saturn", "lexical")
        assert _ids(page)[0] == "s1"
        asked = {urlsplit(r.url).path for r in visit.requests}
        assert not asked & {"/modes", "/indexes", "/search", "/collections/tiny"}  # the default's routes: 403


@pytest.mark.slow
def test_docs_render_offline(visit: Visit, server: Server) -> None:
    r = httpx.get(f"{server.url}/docs", timeout=10)
    assert r.status_code == 200 and "cdn" not in r.text and "https://" not in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    visit.open("/docs")
    page = visit.page
    page.wait_for_selector(".opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert {"/search", "/similarity", "/modes", "/indexes"} <= {p.strip() for p in paths}
    page.locator(".opblock-summary-path", has_text="/search").first.click()
    page.wait_for_selector(".opblock.is-open .opblock-description-wrapper")
    assert page.locator("text=Unable to render this definition").count() == 0
    visit.shoot("docs.png", full_page=False)


@pytest.mark.slow
def test_a_long_documents_best_passage_is_marked_in_its_place(visit: Visit, server: Server) -> None:
    """A collection that splits long documents: each hit shows its best passage marked inside the
    document's text, the passage the API returned (created last: the tests above count the collections)."""
    auth = {"authorization": f"Bearer {WRITE_KEY}"}
    r = httpx.put(f"{server.url}/collections/long", json={"passages": {"tokens": 16, "overlap": 4}}, headers=auth)
    assert r.status_code == 201, r.text
    filler = "The committee met on a cold morning to discuss the budget. " * 12
    docs = [
        {
            "id": "report",
            "title": "Field report",
            "text": filler + "A new species of frog was found near the river delta. " + filler,
        },
        {"id": "other", "text": filler},
    ]
    r = httpx.put(f"{server.url}/collections/long/documents", json={"documents": docs}, headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    visit.open("/?collection=long")
    visit.page.wait_for_selector("body[data-collection=long][data-ready=true]")
    visit.search("species of frog near the river delta", "lexical")
    expected = _api_search(
        server, "/collections/long/search", query="species of frog near the river delta", mode="lexical"
    )
    passage = expected["hits"][0]["passage"]
    assert expected["hits"][0]["id"] == "report" and passage["start"] > 0
    marked = visit.page.locator("#results .hit").first.locator(".passage")
    assert marked.inner_text() == passage["text"] and "frog" in marked.inner_text()
    assert "characters" in (marked.get_attribute("title") or "")
    visit.shoot("passage.png")


@pytest.mark.slow
def test_chinese_text_renders_and_its_words_are_marked(visit: Visit, server: Server) -> None:
    """A chinese collection: the page finds 英雄联盟 inside Chinese sentences and marks the analyser's words
    (jieba's, not spaces), and CJK text renders (the screenshot is looked at)."""
    auth = {"authorization": f"Bearer {WRITE_KEY}"}
    r = httpx.put(f"{server.url}/collections/zh", json={"analyser": "chinese"}, headers=auth, timeout=30)
    assert r.status_code == 201, r.text
    docs = [
        {"id": "q1", "title": "游戏", "text": "英雄联盟怎么玩，新手入门攻略有哪些？"},
        {"id": "q2", "text": "请问英雄联盟的高清图在哪里下载"},
        {"id": "q3", "text": "明天北京会下雨吗"},
    ]
    r = httpx.put(f"{server.url}/collections/zh/documents", json={"documents": docs}, headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    visit.open("/?collection=zh")
    visit.page.wait_for_selector("body[data-collection=zh][data-ready=true]")
    visit.search("英雄联盟高清图", "lexical")
    assert set(_ids(visit.page)[:2]) == {"q1", "q2"}
    marks = visit.page.eval_on_selector_all("#results .hit mark", "ms => ms.map(m => m.textContent)")
    assert {"英雄", "联盟"} <= set(marks) or "英雄联盟" in marks
    assert "高清" in marks or "高清图" in marks
    visit.shoot("chinese.png")
