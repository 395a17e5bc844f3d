"""Open every page of the built site in headless Chromium and check that it renders and that its
internal links, anchors and images resolve; that Chinese text renders with real glyphs; that the
question index's filters and answer reveal work; and that the search finds a notebook. Exits
non-zero listing every problem.

With ``--cache FILE``, a page whose HTML and whose site-wide scripts and styles (``_static``) are
byte for byte those of its last clean check is not rendered again: its stored DOM summary (links,
anchors, images, text length) is checked against today's files. The CJK, question-index and search
checks always run."""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SKIP_DIRS = {"_static", "_sources", "_images"}
VOID_TAGS = {"br", "img", "input", "hr", "meta", "link"}  # HTML elements without an end tag


class PageParser(HTMLParser):
    """Collects link targets, image sources, element ids and visible text of the main article."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []
        self.ids: set[str] = set()
        self.text_chars = 0
        self._in_main = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "id" in attributes:
            self.ids.add(attributes["id"])
        if tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"])
        if tag == "img" and attributes.get("src"):
            self.images.append(attributes["src"])
        if tag == "main" or (tag == "article" and "bd-article" in (attributes.get("class") or "")):
            self._in_main += 1
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        if tag in ("main", "article") and self._in_main:
            self._in_main -= 1
        self._in_title = False

    def handle_data(self, data):
        if self._in_main:
            self.text_chars += len(data.strip())
        if self._in_title:
            self.title += data


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("headless Chromium not found: install Debian's 'chromium' package (apt-get install chromium)")


def _chromium_command(chromium: str, profile: str) -> list[str]:
    return [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000"]


def take_screenshot(chromium: str, url: str, profile: str, path: Path, window: str = "1280,1600") -> None:
    """Save a PNG of ``url`` after Chromium ran its scripts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([*_chromium_command(chromium, profile), f"--window-size={window}", f"--screenshot={path}", url],
                   capture_output=True, timeout=120, check=False)


def render(chromium: str, url: str, profile: str, screenshot: Path | None = None) -> str:
    """The DOM of ``url`` after Chromium ran its scripts (and a PNG of it in ``screenshot``, if given)."""
    if screenshot is not None:
        take_screenshot(chromium, url, profile, screenshot)
    result = subprocess.run([*_chromium_command(chromium, profile), "--dump-dom", url], capture_output=True,
                            text=True, timeout=120, check=False)
    return result.stdout


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


@dataclass
class RenderedPage:
    """What the page checks need from a rendered page; stored in the cache."""

    links: list[str]
    images: list[str]
    ids: list[str]
    text_chars: int

    @classmethod
    def of(cls, dom: PageParser) -> RenderedPage:
        return cls(dom.links, dom.images, sorted(dom.ids), dom.text_chars)


CACHE_VERSION = 1


def static_fingerprint(site: Path) -> str:
    """A hash of every file under ``_static`` (the scripts and styles that shape every page's DOM)."""
    digest = hashlib.sha256()
    for path in sorted((site / "_static").rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(site).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def page_key(page: Path, fingerprint: str) -> str:
    return hashlib.sha256(fingerprint.encode() + page.read_bytes()).hexdigest()


def load_cache(path: Path | None) -> dict[str, dict]:
    """The cached pages ``{relative path: {"key", "page"}}``; empty if absent, unreadable or of another version."""
    if path is None or not path.is_file():
        return {}
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        return stored["pages"] if stored.get("version") == CACHE_VERSION else {}
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}


def check(site: Path, screenshot_dir: Path | None = None, workers: int = 4, cache: Path | None = None) -> list[str]:
    """Every problem found on the site (an empty list when it is fine). ``workers`` Chromium
    processes render pages at once, each with its own profile. Pages unchanged since their last clean
    check in ``cache`` are not rendered again (unless screenshots are asked for)."""
    pages = sorted(p for p in site.rglob("*.html") if not SKIP_DIRS & set(p.relative_to(site).parts))
    if not pages:
        return [f"no HTML pages under {site}"]
    fingerprint = static_fingerprint(site)
    keys = {page: page_key(page, fingerprint) for page in pages}
    cached = {} if screenshot_dir else load_cache(cache)
    known = {page: RenderedPage(**cached[rel]["page"]) for page in pages
             if (rel := page.relative_to(site).as_posix()) in cached and cached[rel].get("key") == keys[page]}
    to_render = [page for page in pages if page not in known]
    chromium = find_chromium()
    server, base = serve(site)
    problems: list[str] = []
    static_ids: dict[Path, set[str]] = {}
    clean: dict[str, dict] = {}
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            rendered = dict(zip(to_render, pool.map(
                lambda page: RenderedPage.of(_render_page(chromium, base, site, page, screenshot_dir)), to_render),
                strict=True))
        for page in pages:
            result = known.get(page) or rendered[page]
            found = _page_problems(site, page, result, static_ids)
            problems += found
            if not found:
                clean[page.relative_to(site).as_posix()] = {"key": keys[page], "page": asdict(result)}
        with tempfile.TemporaryDirectory() as profile:
            problems += check_cjk_glyphs(chromium, profile)
            if (site / "questions.html").is_file():
                problems += check_question_index(chromium, base, profile)
            if (site / "search.html").is_file():
                problems += check_search(chromium, base, profile)
    finally:
        server.shutdown()
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"version": CACHE_VERSION, "pages": clean}), encoding="utf-8")
    print(f"checked {len(pages)} pages in headless Chromium ({len(known)} unchanged since their last check)")
    return sorted(set(problems))


def _render_page(chromium: str, base: str, site: Path, page: Path, screenshot_dir: Path | None) -> PageParser:
    relative = page.relative_to(site).as_posix()
    shot = screenshot_dir / f"{relative.replace('/', '_')}.png" if screenshot_dir else None
    with tempfile.TemporaryDirectory() as profile:
        return parse(render(chromium, urljoin(base, relative), profile, shot))


def _page_problems(site: Path, page: Path, dom: RenderedPage, static_ids: dict[Path, set[str]]) -> list[str]:
    relative = page.relative_to(site).as_posix()
    problems, ids = [], set(dom.ids)
    if relative not in ("genindex.html", "search.html") and dom.text_chars < 200:
        problems.append(f"{relative}: the page did not render (main text {dom.text_chars} chars)")
    for target in dom.links + dom.images:
        if target.startswith("#"):  # same page: check the rendered DOM (index.html redirects)
            if target[1:] and unquote(target[1:]) not in ids:
                problems.append(f"{relative}: link {target} points at a missing anchor")
            continue
        problems += _check_target(site, page, relative, target, static_ids)
    return problems


class CardParser(HTMLParser):
    """The question cards of the index page: their id, whether the filter shows them, whether open."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: dict[str, dict] = {}
        self._stack: list[str | None] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        card = attributes.get("id") if tag == "div" and "mllab-q" in classes else None
        if card:
            self.cards[card] = {"classes": classes, "shown": attributes.get("data-shown"), "open": False}
        current = card or (self._stack[-1] if self._stack else None)
        if tag == "details" and current and "open" in attributes:
            self.cards[current]["open"] = True
        if tag not in VOID_TAGS:
            self._stack.append(current)

    def handle_endtag(self, tag):
        if tag not in VOID_TAGS and self._stack:
            self._stack.pop()


def cards_of(html: str) -> dict[str, dict]:
    parser = CardParser()
    parser.feed(html)
    return parser.cards


def check_question_index(chromium: str, base: str, profile: str) -> list[str]:
    """The filters change which cards are visible; a click (``?reveal=``) opens one answer; the study
    view opens them all; the self-test view keeps them folded."""
    problems = []
    everything = cards_of(render(chromium, urljoin(base, "questions.html"), profile))
    if not everything:
        return ["questions.html: no question cards (div.mllab-q) found"]
    if any(card["open"] for card in everything.values()):
        problems.append("questions.html: the self-test view shows answers before a click")
    if any(card["shown"] != "yes" for card in everything.values()):
        problems.append("questions.html: without a filter some questions are hidden (or the script did not run)")
    some_id = next(iter(everything))

    def tag(card_id: str, prefix: str) -> str:
        return next(c for c in everything[card_id]["classes"] if c.startswith(prefix)).removeprefix(prefix)

    cluster, difficulty = tag(some_id, "q-cluster-"), tag(some_id, "q-diff-")
    for query, wanted in ((f"cluster={cluster}", {f"q-cluster-{cluster}"}),
                          (f"difficulty={difficulty.upper()}", {f"q-diff-{difficulty}"}),
                          (f"cluster={cluster}&difficulty={difficulty.upper()}",
                           {f"q-cluster-{cluster}", f"q-diff-{difficulty}"})):
        filtered = cards_of(render(chromium, urljoin(base, f"questions.html?{query}"), profile))
        shown = {card_id for card_id, card in filtered.items() if card["shown"] == "yes"}
        expected = {card_id for card_id, card in everything.items() if wanted <= set(card["classes"])}
        if shown != expected or not shown or len(shown) == len(everything):
            problems.append(f"questions.html?{query}: showed {len(shown)} cards, expected {len(expected)}")
    revealed = cards_of(render(chromium, urljoin(base, f"questions.html?reveal={some_id.removeprefix('q-')}"), profile))
    if not revealed.get(some_id, {}).get("open") or sum(card["open"] for card in revealed.values()) != 1:
        problems.append(f"questions.html: a click on {some_id} did not reveal its answer (and only its answer)")
    studied = cards_of(render(chromium, urljoin(base, "questions.html?answers=open"), profile))
    if not all(card["open"] for card in studied.values()):
        problems.append("questions.html: the study view (?answers=open) left answers folded")
    return problems


class SearchResultsParser(HTMLParser):
    """The links inside the search page's results (``#search-results``), not the navigation's."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if self._depth or attributes.get("id") == "search-results":
            if tag not in VOID_TAGS:
                self._depth += 1
            if tag == "a" and attributes.get("href"):
                self.links.append(attributes["href"])

    def handle_endtag(self, tag):
        if self._depth and tag not in VOID_TAGS:
            self._depth -= 1


def search_results(html: str) -> list[str]:
    parser = SearchResultsParser()
    parser.feed(html)
    return parser.links


def check_search(chromium: str, base: str, profile: str, query: str = "AdamW",
                 expected: str = "05_overfitting_underfitting") -> list[str]:
    """The built-in search lists the notebook that answers ``query``."""
    dom = render(chromium, urljoin(base, f"search.html?q={query}"), profile)
    found = [link for link in search_results(dom) if expected in link]
    return [] if found else [f"search.html: searching {query!r} did not list {expected}"]


def check_cjk_glyphs(chromium: str, profile: str) -> list[str]:
    """Chinese renders with real glyphs: a Chinese line must not look like a line of characters that
    no font has (private-use code points, drawn as empty boxes)."""
    with tempfile.TemporaryDirectory() as folder:
        shots = []
        for name, text in (("chinese", "模型评估指标与泛化"), ("missing", "\ue000\ue001\ue002\ue003\ue004\ue005\ue006\ue007\ue008")):
            page = Path(folder) / f"{name}.html"
            page.write_text(f'<html><meta charset="utf-8"><body style="margin:0;background:#fff">'
                            f'<p style="font-size:64px;margin:0">{text}</p></body></html>', encoding="utf-8")
            shot = Path(folder) / f"{name}.png"
            take_screenshot(chromium, page.as_uri(), profile, shot, window="800,120")
            shots.append(shot.read_bytes() if shot.is_file() else b"")
    if not all(shots):
        return ["the CJK check could not take its screenshots"]
    if shots[0] == shots[1] or _same_pixels(*shots):
        return ["Chinese text renders as missing glyphs (empty boxes): install a CJK font "
                "(Debian: apt-get install fonts-noto-cjk)"]
    return []


def _same_pixels(first: bytes, second: bytes) -> bool:
    import io

    import matplotlib.image as mpimg

    a, b = (mpimg.imread(io.BytesIO(data), format="png") for data in (first, second))
    return a.shape == b.shape and bool((a == b).all())


def _check_target(site: Path, page: Path, relative: str, target: str, static_ids: dict[Path, set[str]]) -> list[str]:
    url = urlparse(target)
    if url.scheme in ("http", "https", "mailto", "data", "javascript") or url.netloc:
        return []
    path = (page.parent / unquote(url.path)).resolve() if url.path else page.resolve()
    if path.is_dir():
        path = path / "index.html"
    if not path.is_file():
        return [f"{relative}: broken link {target}"]
    if path.suffix in (".png", ".svg", ".jpg") and path.stat().st_size == 0:
        return [f"{relative}: empty image {target}"]
    if url.fragment and path.suffix == ".html":
        if path not in static_ids:
            static_ids[path] = parse(path.read_text(encoding="utf-8", errors="replace")).ids
        if unquote(url.fragment) not in static_ids[path]:
            return [f"{relative}: link {target} points at a missing anchor"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("site", type=Path, help="the built HTML folder")
    parser.add_argument("--screenshot", type=Path, default=None, help="save a PNG of every page here")
    parser.add_argument("--cache", type=Path, default=None, help="skip pages unchanged since their last clean check")
    args = parser.parse_args(argv)
    problems = check(args.site, args.screenshot, cache=args.cache)
    for problem in problems:
        print(f"  - {problem}")
    print("site OK" if not problems else f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
