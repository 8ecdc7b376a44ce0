"""The book's Sphinx fixes (_ext/mnf_book.py): docstring blocks and duplicated scripts."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "_ext"))
import mnf_book  # noqa: E402


def f(data, threshold=0, *, fold=False):
    pass


def test_aligned_arguments_become_fields_and_indented_code_a_literal_block():
    lines = ["Prune a model.", "",
             "data        model inputs, any device",
             "            (continued here).",
             "threshold   a count.",
             "extra       not a parameter of f.", "",
             "Example:", "",
             "    y = f(x)          # (N, C)", "    z = y + 1", "",
             "Done."]
    mnf_book._docstring_fields(None, "function", "f", f, None, lines)
    assert lines[2:6] == [":param data: model inputs, any device", "   (continued here).",
                          ":param threshold: a count.", ":extra: not a parameter of f."]
    i = lines.index("::")
    assert lines[i + 2:i + 4] == ["    y = f(x)          # (N, C)", "    z = y + 1"]
    assert lines[-1] == "Done."


def test_prose_and_existing_literal_blocks_are_left_alone():
    lines = ["A sentence with  two spaces is prose", "", "Shown as::", "", "    a   b", "", "end"]
    before = list(lines)
    mnf_book._docstring_fields(None, "function", "f", f, None, lines)
    assert [x for x in lines if x] == [x for x in before if x]


class _Script:
    def __init__(self, filename, priority, **attributes):
        self.filename, self.priority, self.attributes = filename, priority, attributes


def test_each_script_appears_once_whatever_its_priority():
    a, b = _Script(None, 500, body="const X = 1"), _Script("", 200, body="const X = 1")
    c = _Script("_static/x.js", 500)
    context = {"script_files": [a, c, b, _Script("_static/x.js", 500)]}
    mnf_book._dedupe_scripts(None, "p", "page.html", context, None)
    assert context["script_files"] == [a, c]
