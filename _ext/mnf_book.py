"""Small Sphinx fixes for the mnf book (loaded through ``_config.yml``'s ``local_extensions``).

- The package's docstrings list arguments as aligned ``name   description`` blocks and show code
  as indented blocks (readable in ``help()``); :func:`_docstring_fields` turns the first into
  field lists and the second into literal blocks, so the API reference renders them as intended.
- The theme gets a default light/dark mode (see :func:`_theme_mode`).
- sphinx-thebe adds its inline ``const THEBE_JS_URL = ...`` script once per read phase, and the
  book's builds read twice (the execution cache, then the pages), so every page declared the same
  ``const`` twice and the browser raised a SyntaxError.  Pages keep the first copy of each script.
"""
from __future__ import annotations

import inspect
import re
from typing import Any

# ``name   description`` (two or more spaces between), or ``a, b   description``.
_FIELD = re.compile(r"^([A-Za-z_*][\w*]*(?:, ?[A-Za-z_*][\w*]*)*)\s{2,}(\S.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _parameters(obj: Any) -> set[str]:
    try:
        return set(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
        return set()


def _docstring_fields(app, what: str, name: str, obj: Any, options, lines: list[str]) -> None:
    params, out, i = _parameters(obj), [], 0
    while i < len(lines):
        line = lines[i]
        prev = next((x for x in reversed(out) if x.strip()), "")
        ind = _indent(line)
        field = bool(_FIELD.match(line[ind:]))
        starts_block = line.strip() and (ind > 0 or field) and (i == 0 or not lines[i - 1].strip())
        if not starts_block or prev.rstrip().endswith("::") or prev.lstrip().startswith((":", "..")):
            out.append(line)
            i += 1
            continue
        j = i + 1
        if field:   # entries at this indent, continuation lines deeper, until a blank line
            while j < len(lines) and lines[j].strip() and (_indent(lines[j]) > ind or _FIELD.match(lines[j][ind:])):
                j += 1
        else:       # an indented block: everything at least this deep, blank lines included
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) >= ind):
                j += 1
        while j > i and not lines[j - 1].strip():
            j -= 1
        block = lines[i:j]
        if field:
            for entry in block:
                m = _FIELD.match(entry[ind:]) if _indent(entry) == ind else None
                if m:
                    key = m.group(1)
                    out.append(f":param {key}: {m.group(2)}" if key in params else f":{key}: {m.group(2)}")
                elif entry.strip():
                    out.append("   " + entry.strip())
        else:
            out += ["::", ""] + block
        out.append("")
        i = j
    lines[:] = out


def _dedupe_scripts(app, pagename: str, templatename: str, context: dict[str, Any], doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        # the same script registered twice at different priorities: compare what it says, not when
        # (an inline script's filename is None or "" depending on who added it)
        key = (getattr(script, "filename", script) or None, repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def _theme_mode(app, config) -> None:
    # Without a default, pydata-sphinx-theme logs "Got invalid theme mode" on a reader's first visit.
    config.html_context.setdefault("default_mode", "light")


def setup(app) -> dict[str, Any]:
    app.connect("config-inited", _theme_mode)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("autodoc-process-docstring", _docstring_fields, priority=600)  # after napoleon (500)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
