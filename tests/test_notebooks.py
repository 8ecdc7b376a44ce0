"""The book's chapters: committed without outputs, opening with the setup cell rendered from
_config.yml (the one place naming the repository), with learning goals and exercises."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import notebook  # noqa: E402

ALL_NOTEBOOKS = sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def test_every_notebook_is_in_the_toc():
    assert set(notebook.chapters()) == set(ALL_NOTEBOOKS)
    assert len(ALL_NOTEBOOKS) >= 1


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_chapter_is_clean_and_complete(path):
    assert notebook.problems(path) == []


def test_problems_are_detected(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# A chapter\nNothing here."),
        nbformat.v4.new_code_cell("import mnf", execution_count=3,
                                  outputs=[nbformat.v4.new_output("stream", text="hi")]),
    ])
    path = tmp_path / "bad.ipynb"
    nbformat.write(nb, path)
    found = " | ".join(notebook.problems(path))
    for expected in ("outputs", "setup cell", "learn", "exercises"):
        assert expected in found


def test_setup_cell_names_the_configured_repository():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    cell = notebook.setup_cell()
    assert f"git+{config['url']}@{config['branch']}" in cell
    assert '"google.colab" in sys.modules' in cell
    # every other mention of a git URL to install from (README, intro, chapters, package) agrees
    texts = [ROOT / "README.md", *ROOT.joinpath("book").rglob("*.md"), *ROOT.joinpath("mnf").rglob("*.py")]
    texts += ALL_NOTEBOOKS
    mentions = [m for p in texts if p.exists() for m in re.findall(r"git\+(https?://[^\s\"'@`]+)", p.read_text())]
    assert mentions and all(m.rstrip("/") == config["url"] for m in mentions), mentions


def test_exercise_labels_are_unique():
    labels = []
    for path in ALL_NOTEBOOKS:
        text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
        labels += re.findall(r":label:\s*(\S+)", text)
    labels += re.findall(r":label:\s*(\S+)", (ROOT / "book" / "intro.md").read_text())
    assert len(labels) == len(set(labels)), sorted(l for l in labels if labels.count(l) > 1)
