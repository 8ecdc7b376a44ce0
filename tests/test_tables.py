"""mnf.tables.table: HTML for the book, Markdown for plain front ends, escaping, alignment, errors."""
import pytest

from mnf.tables import table


def test_html_and_markdown_hold_the_same_cells():
    t = table(["model", "accuracy", "params"], [["a|b", 0.91234, 1200], ["<x>", "88.5 %", 7]])
    html = t._repr_html_()
    assert html.count("<tr>") == 3 and "<th" in html and "<table" in html
    assert "&lt;x&gt;" in html and "<x>" not in html          # escaped, not markup
    assert "0.91" in html and "0.91234" not in html            # floats at `digits` decimals
    md = t._repr_markdown_().splitlines()
    assert md[0] == "| model | accuracy | params |"
    assert md[1] == "|:---|---:|---:|"                         # text left, numbers right
    assert md[2].startswith("| a\\|b |")                       # a pipe in a cell stays a cell
    assert str(t) == t._repr_markdown_()


def test_caption_and_digits():
    t = table(["x"], [[1 / 3]], digits=4, caption="one third")
    assert "0.3333" in t._repr_html_() and "<caption>one third</caption>" in t._repr_html_()
    assert t._repr_markdown_().startswith("*one third*")


@pytest.mark.parametrize("header, rows, kwargs, match", [
    ([], [], {}, "header"),
    (["a", "b"], [[1]], {}, "row 0 has 1 cells, expected 2"),
    (["a"], [[1]], {"digits": -1}, "digits"),
    (["a"], [[1]], {"digits": 1.5}, "digits"),
])
def test_bad_input_is_refused(header, rows, kwargs, match):
    with pytest.raises(ValueError, match=match):
        table(header, rows, **kwargs)


def test_style_keeps_figures_one_column_wide():
    import matplotlib.pyplot as plt

    import mnf.plots

    mnf.plots.style()
    assert plt.rcParams["figure.figsize"][0] <= mnf.plots.COLUMN_WIDTH
    assert plt.rcParams["xtick.labelsize"] >= 9
