"""The built book in a headless browser (tools/browser_check.py): `make browser`, the end of `make test`.

Runs only when asked (MNF_BROWSER_CHECK=1): in the ordinary pytest run the book is not built yet.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import browser_check  # noqa: E402

HTML = ROOT / "_build" / "html"

pytestmark = pytest.mark.skipif(os.environ.get("MNF_BROWSER_CHECK") != "1",
                                reason="the built book's browser check runs with MNF_BROWSER_CHECK=1 (make browser)")


def test_built_book_has_no_browser_defects():
    if importlib.util.find_spec("selenium") is None or browser_check.find_browser() is None:
        pytest.skip(browser_check.INSTALL_HINT)
    assert (HTML / "index.html").is_file(), f"no book in {HTML}: build it first (make book)"
    defects = browser_check.check_site(HTML)
    if defects:
        pytest.fail(f"{len(defects)} defects in the built book:\n" + "\n".join(defects), pytrace=False)
