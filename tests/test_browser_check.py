"""Tests of tools/browser_check.py on small synthetic sites: a good page, and one page per defect.

The browser tests share one headless Chromium (module-scoped) and skip when chromium, chromedriver or
selenium is missing. MathJax cannot come from a CDN here, so "rendered" math is a fake <mjx-container>.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import browser_check  # noqa: E402

HEAD = '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>t</title>'

GOOD = r"""
<script src="https://cdn.invalid/unreachable.js"></script>
<h1 id="top">A good page</h1>
<p>Links: <a href="#top">up</a>, <a href="other.html#section">elsewhere</a>, <a href="other.html">there</a>,
<a href="./">home</a>, <a href="https://example.invalid/x.html#y">outside</a>.
It costs $5 and $10; a pipe | alone | is fine.</p>
<p>Math: <span class="math notranslate nohighlight"><mjx-container class="MathJax">x</mjx-container></span>.</p>
<pre>| a | b |
|---|---|
$x$ \(y\) $$ \begin{align} HBox(children=</pre>
<p><code>$HOME$</code> and <code>\[</code> in code.</p>
<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>–</td></tr></table>
<img src="small.png"> <img src="wide.png" style="width: 200px">
<details><summary>more</summary><img src="small.png"></details>
<div class="cell_output"><div class="output stream"><pre>epoch 1: loss 0.5</pre></div>
<div class="output stderr"><pre>100%|##########| 10/10 [00:01&lt;00:00]</pre></div></div>
"""

# name: (body, the defect kinds it must produce, text the first defect line must contain)
DEFECTS = {
    "inline-redeclared": ("<script>const THEBE_JS_URL = 1;</script><script>const THEBE_JS_URL = 2;</script>",
                          ["console"], "THEBE_JS_URL"),
    "missing-local-script": ('<script src="missing.js"></script>', ["console"], "missing.js"),
    "console-error-call": ("<script>console.error('boom')</script>", ["console"], "boom"),
    "missing-page": ('<a href="nowhere.html">x</a>', ["link"], "nowhere.html"),
    "missing-anchor": ('<a href="#nowhere">x</a>', ["anchor"], "#nowhere"),
    "missing-anchor-elsewhere": ('<a href="other.html#nope">x</a>', ["anchor"], "other.html#nope"),
    "redirect-to-nowhere": ('<meta http-equiv="refresh" content="0; url=nowhere.html">', ["link"], "nowhere.html"),
    "undecodable-image": ('<img src="broken.png">', ["image"], "broken.png"),
    "shrunk-figure": ('<img src="wide.png" style="width: 100px">', ["shrunk-figure"], "300 px wide"),
    "raw-table": ("<p>| a | b |\n|---|---|\n| 1 | 2 |</p>", ["raw-table"], "| a | b |"),
    "raw-table-smartquotes": ("<p>Here: | a | b |\n|—|—|\n| 1 | – |</p>", ["raw-table"], "|—|—|"),
    "raw-dollar-math": ("<p>the $L^1$ distance</p>", ["raw-math"], "$L^1$"),
    "raw-display-math": ("<p>so $$ and</p>", ["raw-math"], "$$"),
    "raw-begin": (r"<p>\begin{split} a \end{split}</p>", ["raw-math"], r"\\begin{"),
    "raw-paren-math": (r"<p>unparsed \(x\) here</p>", ["raw-math", "math"], r"\\(x"),
    "math-not-rendered": (r'<span class="math">\(x\)</span>', ["math"], "no mjx-container"),
    "math-partly-rendered": (r'<span class="math"><mjx-container>x</mjx-container></span>'
                             r'<div class="math">\[y\]</div>', ["math"], "1 of 2"),
    "tex-error": ("<span class='math'><mjx-container><mjx-merror>Undefined control sequence \\foo"
                  "</mjx-merror></mjx-container></span>", ["math"], "TeX error"),
    "widget-repr": ('<div class="cell_output"><div class="output text_plain">'
                    "<pre>HBox(children=(IntSlider(value=1),))</pre></div></div>", ["output"], "widget repr"),
    "output-widget": ('<div class="cell_output"><div class="output text_plain"><pre>Output()</pre></div></div>',
                      ["output"], "Output()"),
    "traceback-output": ('<div class="cell_output"><div class="output traceback"><pre>'
                         "Traceback (most recent call last):\n  x\nValueError: bad</pre></div></div>",
                         ["output"], "ValueError: bad"),
    "traceback-in-stream": ('<div class="cell_output"><div class="output stream"><pre>'
                            "Traceback (most recent call last):\nKeyError</pre></div></div>", ["output"], "traceback"),
    "stderr-warning": ('<div class="cell_output"><div class="output stderr"><pre>'
                       "x.py:3: UserWarning: careful</pre></div></div>", ["output"], "UserWarning"),
    "ansi-remnant": ('<div class="cell_output"><div class="output stream"><pre>'
                     "[0;31mred[0m</pre></div></div>", ["output"], "ANSI"),
}


def write_site(directory: Path, body: str) -> Path:
    """index.html with `body`, a clean other.html, and the images the pages use."""
    from PIL import Image

    Image.new("RGB", (100, 20), "white").save(directory / "small.png")
    Image.new("RGB", (300, 20), "white").save(directory / "wide.png")
    (directory / "broken.png").write_bytes(b"this is not a png")
    (directory / "index.html").write_text(f"{HEAD}</head><body>{body}</body></html>", encoding="utf-8")
    (directory / "other.html").write_text(f'{HEAD}</head><body><h2 id="section">S</h2></body></html>')
    return directory


def kinds(defects: list[str]) -> list[str]:
    return sorted(line.split(": ", 2)[1] for line in defects)


@pytest.fixture(scope="module")
def driver():
    if importlib.util.find_spec("selenium") is None or browser_check.find_browser() is None:
        pytest.skip(browser_check.INSTALL_HINT)
    driver = browser_check.make_driver()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def jshtml() -> str:
    """A two-frame matplotlib to_jshtml player (it links font-awesome from a CDN: external, ignored)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    (line,) = ax.plot([0, 1], [0, 0])
    player = FuncAnimation(fig, lambda k: line.set_ydata([0, k]), frames=2).to_jshtml()
    plt.close(fig)
    return player


def test_good_page_has_no_defect(driver, jshtml, tmp_path):
    assert browser_check.check_site(write_site(tmp_path, GOOD + jshtml), driver=driver) == []


@pytest.mark.parametrize("name", DEFECTS)
def test_each_defect_is_flagged(driver, tmp_path, name):
    body, expected, detail = DEFECTS[name]
    defects = browser_check.check_site(write_site(tmp_path, body), driver=driver)
    assert kinds(defects) == sorted(expected), defects
    assert all(line.startswith("index.html: ") for line in defects)
    assert any(detail in line for line in defects), defects


def test_redirect_stub_is_not_checked_itself(driver, tmp_path):
    write_site(tmp_path, '<meta http-equiv="Refresh" content="0; url=other.html" /><p>$x$</p>')
    assert browser_check.check_site(tmp_path, driver=driver) == []


FAKE_MATHJAX = """<script>window.MathJax = {startup: {promise: new Promise(resolve => setTimeout(() => {
  %s resolve(); }, 300))}};</script><span class="math">\\(x\\)</span>"""
RENDER = "document.querySelector('.math').innerHTML = '<mjx-container>x</mjx-container>';"


def test_math_rendered_late_is_waited_for(driver, tmp_path):
    assert browser_check.check_site(write_site(tmp_path, FAKE_MATHJAX % RENDER), driver=driver) == []


def test_mathjax_that_never_finishes_is_flagged(driver, tmp_path, monkeypatch):
    monkeypatch.setattr(browser_check, "MATHJAX_TIMEOUT_S", 1)
    never = FAKE_MATHJAX.replace("resolve(); }, 300)", "}, 300)") % ""
    defects = browser_check.check_site(write_site(tmp_path, never), driver=driver)
    assert defects[0] == "index.html: math: MathJax startup: timeout" and kinds(defects) == ["math", "math"]


def test_stuck_animation_is_flagged(driver, jshtml, tmp_path):
    stuck = jshtml.replace(".next_frame()", ".pause_animation()")
    assert stuck != jshtml
    defects = browser_check.check_site(write_site(tmp_path, stuck), driver=driver)
    assert defects == ['index.html: animation: player 1: "Next frame" does not change the image']


def test_console_errors_ignores_external_urls_and_warnings():
    site = browser_check.Site(Path("/site"), "http://127.0.0.1:8000/")

    class Log:
        def get_log(self, kind: str) -> list[dict]:
            assert kind == "browser"
            return [
                {"level": "SEVERE", "message": "https://cdn.example/x.js - Failed to load resource"},
                {"level": "SEVERE", "message": "http://127.0.0.1:9/y.js - net::ERR_CONNECTION_REFUSED"},
                {"level": "SEVERE", "message": "http://127.0.0.1:8000/favicon.ico - Failed to load resource: 404"},
                {"level": "WARNING", "message": "http://127.0.0.1:8000/a.html 3:1 deprecated"},
                {"level": "SEVERE", "message": "http://127.0.0.1:8000/a.html 62:12 Uncaught SyntaxError: x"},
                {"level": "SEVERE", "message": "Uncaught Error: from nowhere"},
            ]

    assert browser_check.console_errors(Log(), site) == [
        ("console", "a.html 62:12 Uncaught SyntaxError: x"), ("console", "Uncaught Error: from nowhere")]


@pytest.mark.parametrize("text, found", [
    ("| a | b |\n|---|---|", True), ("| a |\n| :---: |", True), ("x | a | b | |—|—| | 1 | 2 |", True),
    ("| 92.5% | – | | ResNet | 1 |", False), ("|x| and |---|", False), ("a | b", False)])
def test_raw_table_pattern(text, found):
    assert bool(browser_check.RAW_TABLE.search(text)) is found


@pytest.mark.parametrize("text, found", [
    ("$x$", True), ("the $L^1$ norm", True), ("$$", True), (r"\(x", True), (r"\[", True), (r"\begin{a}", True),
    ("$5 and $10", False), ("costs $ 5 $", False), ("US$", False)])
def test_raw_math_pattern(text, found):
    assert bool(browser_check.RAW_MATH.search(text)) is found


def test_pages_skips_index_search_and_assets(tmp_path):
    for page in ("index.html", "genindex.html", "search.html", "_static/a.html", "_sources/b.html", "book/c.html"):
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / page).write_text("<html></html>")
    assert browser_check.pages(tmp_path) == ["book/c.html", "index.html"]
