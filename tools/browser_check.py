"""Open every page of the built book in headless Chromium and report what a reader would see broken.

    python tools/browser_check.py [HTML_DIR] [--port N]     # HTML_DIR defaults to _build/html

Serves HTML_DIR on 127.0.0.1, loads each page (not genindex, search, _static, _sources) with selenium,
waits for MathJax, and prints one line per defect, ``page: kind: detail``; exits 1 if there is any.

    console        SEVERE console message from a local asset or inline script (external URLs, which
                   are unreachable offline, are ignored)
    link, anchor   href (or a redirect stub's target) to a missing local file; ``page.html#id`` with no such id
    image          an <img> that did not load
    shrunk-figure  natural width > SHRINK_LIMIT x displayed width: the labels become unreadable
    raw-table      Markdown table syntax (``| a | b |`` then ``|---|``) in the rendered text
    raw-math       ``$...$``, ``$$``, ``\\(``, ``\\[``, ``\\begin{`` in visible text (outside math and code)
    math           math on the page (``.math`` or ``\\(``) that MathJax did not render, TeX errors
    animation      a matplotlib jshtml player whose "Next frame" button does not change the image
    output         an error/traceback output, stderr with Error/Warning, a widget repr, ANSI remnants

Each kind is one function ``check(driver, site) -> [(kind, detail)]``; tests/test_browser_check.py
runs them on synthetic pages. Needs chromium + chromedriver (Debian/Ubuntu: ``apt-get install
chromium chromium-driver``) and ``pip install selenium``.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import http.server
import re
import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator
from urllib.parse import quote, unquote, urldefrag, urlsplit

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

INSTALL_HINT = "needs headless Chromium: apt-get install chromium chromium-driver; pip install selenium"
SHRINK_LIMIT = 1.6  # figures are saved at 100 dpi: wider than ~7 in, they are shrunk past legibility
WINDOW_SIZE = (1280, 1024)  # a laptop screen; the article column's width follows from it
MATHJAX_TIMEOUT_S = 30
IMAGE_TIMEOUT_S = 10
SKIPPED = ("genindex.html", "search.html", "_static/", "_sources/")
REDIRECT = re.compile(r"""<meta[^>]*http-equiv=["']?refresh[^>]*url=([^"'>\s]+)""", re.IGNORECASE)
TEXT_HIDDEN = "pre, code, script, style, textarea, mjx-container, .math, .MathJax"  # not prose

# a header row, then (on the next line, or the same one once innerText has collapsed a <p>) a separator
# row; smartquotes turn the separator's --- into — or –
RAW_TABLE = re.compile(r"\|(?:[^|\n]+\|)+[ \t]*\n?\s*\|(?:\s*:?(?:-{3,}|[—–]-*):?\s*\|)+")
RAW_MATH = re.compile(r"\$\$|\\\(|\\\[|\\begin\{|\$(?=\S)[^$\n]{1,200}(?<=\S)\$")
OUTPUT_PATTERNS = {
    "widget repr": re.compile(r"\b(?:[HV]Box|GridBox|Tab|Accordion|interactive)\(children=|\bOutput\(\)"
                              r"|\b(?:Int|Float|FloatLog)(?:Range)?Slider\(|\b(?:Dropdown|Checkbox|ToggleButtons"
                              r"|RadioButtons|Button|Play)\((?:value|description|options)="),
    "traceback": re.compile(r"Traceback \(most recent call last\)"),
    "ANSI escape remnant": re.compile(r"\x1b\[|\[\d{1,3}(?:;\d{1,3})*m"),
}

# -- JavaScript run in the page --------------------------------------------------------------------
WAIT_JS = """
const [mathjaxMs, imagesMs, done] = arguments, deadline = Date.now() + imagesMs;
document.querySelectorAll('details').forEach(d => { d.open = true; });  // measure what they hold too
document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; });
const images = () => new Promise(resolve => (function poll() {
  if (Array.from(document.images).every(i => i.complete) || Date.now() > deadline) resolve();
  else setTimeout(poll, 50);
})());
const promise = window.MathJax && MathJax.startup && MathJax.startup.promise;
const mathjax = !promise ? Promise.resolve('absent') : Promise.race([promise.then(() => 'ok', e => 'error: ' + e),
  new Promise(resolve => setTimeout(() => resolve('timeout'), mathjaxMs))]);
mathjax.then(status => images().then(() => done(status)));
"""
IMAGES_JS = """return Array.from(document.images, i => ({src: (i.getAttribute('src') || '').slice(0, 100),
                                              natural: i.naturalWidth, shown: i.getBoundingClientRect().width}));"""
LINKS_JS = """
return {hrefs: Array.from(document.querySelectorAll('a[href]'), a => a.href),
        ids: Array.from(document.querySelectorAll('[id], [name]'), e => [e.id, e.getAttribute('name')])
               .flat()};
"""
VISIBLE_TEXT_JS = """
const style = document.createElement('style');
style.textContent = arguments[0] + ' { display: none !important; }';
document.head.appendChild(style);
const text = document.body.innerText;
style.remove();
return text;
"""
MATH_JS = """
const math = Array.from(document.querySelectorAll('span.math, div.math'));
return {math: math.length, containers: document.querySelectorAll('mjx-container').length,
        errors: Array.from(document.querySelectorAll('mjx-merror'), e => e.textContent.slice(0, 80)),
        unrendered: math.filter(m => !m.querySelector('mjx-container'))
                        .map(m => m.textContent.trim().slice(0, 60))};
"""
OUTPUTS_JS = """
return Array.from(document.querySelectorAll('.cell_output > *, .output_area'), e => {
  const copy = e.cloneNode(true);
  copy.querySelectorAll('script, style').forEach(s => s.remove());
  return {classes: Array.from(e.classList), text: copy.textContent};
});
"""
ANIMATIONS_JS = """
return Array.from(document.querySelectorAll('.animation'), (player, k) => {
  const img = player.querySelector('img'), next = player.querySelector('button[title="Next frame"]');
  if (!img || !next) return `player ${k + 1}: no image or no "Next frame" button`;
  const before = img.src;
  next.click();
  return img.src === before ? `player ${k + 1}: "Next frame" does not change the image` : '';
}).filter(Boolean);
"""


@dataclass(frozen=True)
class Site:
    """The directory being checked and the URL it is served at (ends with '/')."""
    root: Path
    base_url: str


Found = list[tuple[str, str]]  # (kind, detail)


def snippet(text: str, match: re.Match[str], width: int = 80) -> str:
    """The match with a little context before it, whitespace collapsed, at most `width` characters."""
    return repr(" ".join(text[max(0, match.start() - 15):min(match.end() + 15, match.start() + width)].split()))


# -- the checks, in the order they run (console last: it also sees errors from clicking players) --
def image_defects(driver: WebDriver, site: Site) -> Found:
    """Images that did not load, and figures shown more than SHRINK_LIMIT times narrower than they are."""
    found: Found = []
    for img in driver.execute_script(IMAGES_JS):
        name = img["src"] or "<img> without src"
        if not img["src"] or img["natural"] == 0:
            found.append(("image", f"{name} did not load"))
        elif 0 < img["shown"] * SHRINK_LIMIT < img["natural"] and not name.endswith(".svg"):
            found.append(("shrunk-figure", f"{name} is {img['natural']} px wide, shown at {img['shown']:.0f} px "
                          f"(> {SHRINK_LIMIT}x smaller: labels unreadable)"))
    return found


@functools.lru_cache(maxsize=None)
def ids_in(path: Path) -> frozenset[str]:
    """Every id and name attribute in a static HTML file."""
    return frozenset(re.findall(r"""\s(?:id|name)=["']?([^"'\s>]+)""", path.read_text(errors="replace")))


def broken_links(driver: WebDriver, site: Site) -> Found:
    """Local hrefs to files that do not exist, and #fragments no element of the target page has."""
    page = driver.execute_script(LINKS_JS)
    here = urldefrag(driver.current_url).url
    found: Found = []
    for href in dict.fromkeys(page["hrefs"]):
        if not href.startswith(site.base_url):
            continue
        url, fragment = urldefrag(href)
        rel = unquote(urlsplit(url).path)[len(urlsplit(site.base_url).path):]
        target = site.root / rel
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            found.append(("link", f"{rel or '/'} does not exist"))
        elif fragment and target.suffix == ".html":
            ids = set(page["ids"]) if url == here else ids_in(target)
            if unquote(fragment) not in ids:
                found.append(("anchor", f"{rel}#{fragment}: no element has that id"))
    return found


def visible_text(driver: WebDriver) -> str:
    """The page's rendered text without code, scripts and math (TEXT_HIDDEN)."""
    return driver.execute_script(VISIBLE_TEXT_JS, TEXT_HIDDEN)


def raw_markup(driver: WebDriver, site: Site) -> Found:
    """Markdown tables and TeX that reached the reader as plain text."""
    text = visible_text(driver)
    return [(kind, snippet(text, match)) for kind, pattern in (("raw-table", RAW_TABLE), ("raw-math", RAW_MATH))
            for match in pattern.finditer(text)]


def unrendered_math(driver: WebDriver, site: Site) -> Found:
    """Math that MathJax left alone (no mjx-container at all, or some .math elements), and TeX errors."""
    math = driver.execute_script(MATH_JS)
    has_math = math["math"] > 0 or "\\(" in visible_text(driver)
    first = f" (first: {math['unrendered'][0]!r})" if math["unrendered"] else ""
    found: Found = [("math", f"TeX error: {error!r}") for error in math["errors"]]
    if has_math and math["containers"] == 0:
        found.append(("math", f"no mjx-container on a page with {math['math']} math elements: "
                              f"MathJax did not run{first}"))
    elif math["unrendered"]:
        found.append(("math", f"{len(math['unrendered'])} of {math['math']} math elements not rendered{first}"))
    return found


def output_defects(driver: WebDriver, site: Site) -> Found:
    """Cell outputs a reader should not see: errors, warnings on stderr, widget reprs, ANSI codes."""
    found: Found = []
    for output in driver.execute_script(OUTPUTS_JS):
        classes, text = set(output["classes"]), output["text"]
        lines = [line.strip()[:100] for line in text.splitlines() if line.strip()] or [""]
        warnings = [line for line in lines if re.search("Error|Warning", line)]
        if classes & {"error", "traceback"}:
            found.append(("output", f"error output: {lines[-1]!r}"))  # the exception's message
        elif "stderr" in classes and warnings:
            found.append(("output", f"stderr: {warnings[0]!r}"))
        else:
            for label, pattern in OUTPUT_PATTERNS.items():
                if match := pattern.search(text):
                    found.append(("output", f"{label}: {snippet(text, match)}"))
                    break
    return found


def stuck_animations(driver: WebDriver, site: Site) -> Found:
    """matplotlib to_jshtml players whose "Next frame" button does not change the frame."""
    return [("animation", detail) for detail in driver.execute_script(ANIMATIONS_JS)]


def console_errors(driver: WebDriver, site: Site) -> Found:
    """SEVERE console messages since the page was opened, except those about external URLs."""
    found: Found = []
    for entry in driver.get_log("browser"):
        source = entry["message"].split(" ", 1)[0]
        if entry["level"] != "SEVERE" or urlsplit(source).path == "/favicon.ico":
            continue  # the browser asks for /favicon.ico by itself
        if re.match(r"[a-z][a-z0-9+.-]*://", source) and not source.startswith(site.base_url):
            continue  # an external asset (a CDN): unreachable offline, not ours
        found.append(("console", entry["message"].replace(site.base_url, "")))
    return found


CHECKS: tuple[Callable[[WebDriver, Site], Found], ...] = (
    image_defects, broken_links, raw_markup, unrendered_math, output_defects, stuck_animations, console_errors)


# -- running them ---------------------------------------------------------------------------------
def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) executables, or None when either is missing."""
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    browser = next((path for name in names if (path := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def make_driver() -> WebDriver:
    """Headless Chromium that keeps console messages (goog:loggingPrefs) for console_errors."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if found is None:
        raise RuntimeError(INSTALL_HINT)
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(found[1]))  # no download by selenium-manager
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(MATHJAX_TIMEOUT_S + IMAGE_TIMEOUT_S + 10)
    return driver


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the browser dropping a connection is not a defect of the book


@contextlib.contextmanager
def serve(root: Path, port: int = 0) -> Iterator[str]:
    """Serve `root` on 127.0.0.1 (port 0: a free one) in a thread; yields the base URL."""
    with _Server(("127.0.0.1", port), functools.partial(_Handler, directory=str(root))) as server:
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()


def pages(root: Path) -> list[str]:
    """Every .html page under root (as a relative posix path) except the SKIPPED ones."""
    found = (path.relative_to(root).as_posix() for path in root.rglob("*.html"))
    return sorted(page for page in found if not any(page.startswith(skip) for skip in SKIPPED))


def check_page(driver: WebDriver, site: Site, page: str) -> list[str]:
    """Load `page`, wait for MathJax and the images, run CHECKS; one 'page: kind: detail' line per defect.

    A redirect stub (Jupyter Book's index.html) is not loaded: its target must exist, and is checked itself.
    """
    if redirect := REDIRECT.search((site.root / page).read_text(errors="replace")):
        target = unquote(redirect.group(1))
        exists = ((site.root / page).parent / target).is_file()
        return [] if exists else [f"{page}: link: redirect to {target} does not exist"]
    driver.get_log("browser")  # drop what earlier pages left
    driver.get(site.base_url + quote(page))
    status = driver.execute_async_script(WAIT_JS, MATHJAX_TIMEOUT_S * 1000, IMAGE_TIMEOUT_S * 1000)
    found: Found = [] if status in ("ok", "absent") else [("math", f"MathJax startup: {status}")]
    for check in CHECKS:
        found += check(driver, site)
    return [f"{page}: {kind}: {detail}" for kind, detail in found]


def check_site(root: Path | str, driver: WebDriver | None = None, port: int = 0) -> list[str]:
    """Every defect of every page under `root`; starts (and quits) a browser unless `driver` is given."""
    root = Path(root).resolve()
    with contextlib.ExitStack() as stack:
        base_url = stack.enter_context(serve(root, port))
        if driver is None:
            driver = make_driver()
            stack.callback(driver.quit)
        site = Site(root, base_url)
        return [line for page in pages(root) for line in check_page(driver, site, page)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir", nargs="?", default="_build/html", type=Path)
    parser.add_argument("--port", type=int, default=0, help="port to serve HTML_DIR on (default: a free one)")
    args = parser.parse_args(argv)
    if not (args.html_dir / "index.html").is_file():
        print(f"{args.html_dir}/index.html not found: build the book first (make book)", file=sys.stderr)
        return 2
    if find_browser() is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    defects = check_site(args.html_dir, port=args.port)
    if defects:
        print("\n".join(defects))
    kinds = sorted(collections.Counter(line.split(": ", 2)[1] for line in defects).items())
    summary = ", ".join(f"{kind} {count}" for kind, count in kinds) or "none"
    print(f"{len(defects)} defects in {args.html_dir} ({summary})", file=sys.stderr)
    return 1 if defects else 0


if __name__ == "__main__":
    sys.exit(main())
