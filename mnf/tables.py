"""Result tables for the chapters: one object that renders in Jupyter, Colab and the HTML book.

``table(header, rows)`` returns a :class:`Table`.  Shown as a cell's last value (or with
``IPython.display.display``) it offers HTML -- what Jupyter, Colab and the book's HTML builder pick --
and Markdown (for front ends without HTML); ``str(t)`` is the Markdown text.  Cells are escaped, so a
``<`` or ``|`` in a label stays text; ``$...$`` math inside a cell is left for MathJax.
"""
from __future__ import annotations

import html
import numbers
import re
from typing import Any, Sequence


def _fmt(value: Any, digits: int) -> str:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or isinstance(value, numbers.Integral):
        return str(value)
    return f"{value:.{digits}f}"


# A number as chapters write it: sign, digits with , or . (or a thin space), an optional unit or %.
_NUMBER = re.compile(r"^[+\-\u2212]?[\d.,\u2009]*\d[\d.,\u2009]*\s*(%|×|x|ms|s|min|MB|M|k|K|B)?$")


def _numeric(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_NUMBER.match(value.strip()))
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class Table:
    """A header and rows of cells (already formatted as strings); see :func:`table`."""

    def __init__(self, header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str],
                 caption: str | None) -> None:
        self.header, self.rows, self.align, self.caption = list(header), [list(r) for r in rows], list(align), caption

    def _repr_html_(self) -> str:
        def cell(tag: str, text: str, a: str) -> str:
            return f'<{tag} class="text-{a}" style="text-align:{a}">{html.escape(text, quote=False)}</{tag}>'

        out = ['<table class="table mnf-table">']
        if self.caption:
            out.append(f"<caption>{html.escape(self.caption, quote=False)}</caption>")
        out.append("<thead><tr>" + "".join(cell("th", h, a) for h, a in zip(self.header, self.align)) + "</tr></thead>")
        out.append("<tbody>")
        out += ["<tr>" + "".join(cell("td", v, a) for v, a in zip(row, self.align)) + "</tr>" for row in self.rows]
        out.append("</tbody></table>")
        return "\n".join(out)

    def _repr_markdown_(self) -> str:
        def esc(text: str) -> str:
            return text.replace("|", r"\|").replace("\n", " ")

        rule = {"left": ":---", "right": "---:", "center": ":---:"}
        lines = [f"*{esc(self.caption)}*", ""] if self.caption else []
        lines.append("| " + " | ".join(esc(h) for h in self.header) + " |")
        lines.append("|" + "|".join(rule[a] for a in self.align) + "|")
        lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in self.rows]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._repr_markdown_()

    __repr__ = __str__


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, digits: int = 2,
          caption: str | None = None) -> Table:
    """A table of ``rows`` under ``header`` for display in a chapter.

    Args:
        header: the column titles, ``len(header) == k``.
        rows: each a sequence of ``k`` cells; floats are written with ``digits`` decimals, anything
            else with ``str``.  Columns whose cells are all numbers (or strings that read as
            numbers, such as ``"91.2 %"``) are right-aligned.
        digits: decimals for float cells (format a cell yourself for anything else).
        caption: an optional line shown above the table.

    Returns:
        a :class:`Table`; the last expression of a cell, or ``display(table(...))``, shows it.
    """
    header = [str(h) for h in header]
    if not header:
        raise ValueError("table: header must name at least one column, got an empty header")
    if isinstance(digits, bool) or not isinstance(digits, numbers.Integral) or digits < 0:
        raise ValueError(f"table: digits must be an integer >= 0, got {digits!r}")
    rows = [list(r) for r in rows]
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"table: row {i} has {len(row)} cells, expected {len(header)} (one per header column)")
    align = ["right" if rows and all(_numeric(r[j]) for r in rows) else "left" for j in range(len(header))]
    return Table(header, [[_fmt(v, int(digits)) for v in r] for r in rows], align, caption)
