"""The book's chapters: committed without outputs, opening with the setup cell rendered from
_config.yml (the one place naming the repository), with learning goals and exercises."""
from __future__ import annotations

import json
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
    cell = notebook.setup_cell("wht/hadamard")
    assert "mnf.chapter('wht/hadamard')" in cell
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


def executed(budget_printed: str, stderr: str = "") -> nbformat.NotebookNode:
    setup = nbformat.v4.new_code_cell("import mnf", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text=f"mnf 0.1.0, budget {budget_printed!r}, device cpu\n")])
    cells = [nbformat.v4.new_markdown_cell("# A chapter"), setup]
    if stderr:
        cells.append(nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output("stream", name="stderr",
                                                                                    text=stderr)]))
    return nbformat.v4.new_notebook(cells=cells)


def test_build_check_refuses_a_chapter_executed_at_another_budget():
    assert notebook.output_problems(executed("ci"), "ch", budget="ci") == []
    found = notebook.output_problems(executed("ci"), "ch", budget="cpu")
    assert found and "executed at budget 'ci'" in found[0] and "'cpu'" in found[0]
    assert "warning" in " ".join(notebook.output_problems(executed("ci", "UserWarning: x"), "ch", budget="ci"))
    no_budget = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    assert "names no budget" in notebook.output_problems(no_budget, "ch", budget="ci")[0]


def test_build_keeps_one_execution_cache_per_budget(tmp_path, monkeypatch):
    """A build at another budget than the last one starts afresh on that budget's own cache."""
    calls = []
    monkeypatch.setattr("subprocess.call", lambda cmd, env: calls.append((cmd, env["MNF_BUDGET"])) or 0)
    cached = {c: None for c in notebook.chapters()}                    # every chapter cached...
    monkeypatch.setattr(notebook, "executed", lambda budget, build_dir: cached)
    for budget in ("ci", "ci", "cpu", "ci"):
        assert notebook.build(budget, build_dir=tmp_path) == 0
        assert (tmp_path / ".jupyter_cache").resolve() == (tmp_path / f".jupyter_cache-{budget}").resolve()
        assert (tmp_path / ".budget").read_text().strip() == budget
    fresh = ["--all" in cmd for cmd, _ in calls]
    assert fresh == [True, False, True, True]
    assert [b for _, b in calls] == ["ci", "ci", "cpu", "ci"]
    cached.popitem()                                                   # ...until one is missing
    assert notebook.build("ci", build_dir=tmp_path) == 0 and "--all" in calls[-1][0]
    monkeypatch.setattr("subprocess.call", lambda cmd, env: 1)  # a failed build leaves no budget marker
    assert notebook.build("ci", build_dir=tmp_path) == 1 and not (tmp_path / ".budget").exists()


def test_recorded_times_name_only_chapters_and_say_where_they_were_measured():
    """Every recorded time belongs to a chapter of the book and carries its provenance.  A chapter
    added after the last recording has no time yet (its header then prints none) until `make times`."""
    times = json.loads((ROOT / "mnf" / "chapter_times.json").read_text())
    names = {notebook.chapter_name(p) for p in ALL_NOTEBOOKS}
    for key in ("ci", "cpu", "gpu_estimate"):
        assert set(times[key]["chapters"]) <= names, key
        assert len(times[key]["chapters"]) >= len(names) - 1, f"{key}: re-record the times (make times)"
        assert times[key]["date"] and times[key]["machine"] and times[key]["commit"]


def test_build_check_reads_the_budget_cache(tmp_path, monkeypatch):
    """The check reads executed chapters from the budget's cache (MyST-NB writes chapters it takes
    from the cache to jupyter_execute without outputs), and only records of their current code."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    chapter = notebook.chapters()[0]
    cache = get_cache(tmp_path / ".jupyter_cache-ci")
    nb = nbformat.read(chapter, as_version=4)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    setup.outputs = [nbformat.v4.new_output("stream", name="stdout", text="mnf 0.1.0, budget 'ci', device cpu\n")]
    cache.cache_notebook_bundle(CacheBundleIn(nb, str(chapter), data={"execution_seconds": 4.2}),
                                check_validity=False)
    found = notebook.build_problems("ci", build_dir=tmp_path)
    label = str(chapter.relative_to(ROOT))
    assert not [f for f in found if f.startswith(label)]                  # cached with its budget: fine
    assert len(found) == len(notebook.chapters()) - 1 and "not executed at budget 'ci'" in found[0]
    assert notebook.recorded_times("ci", build_dir=tmp_path) == {notebook.chapter_name(chapter): 4.2}
    # the same outputs in the cpu cache: a chapter executed at another budget than the build's
    get_cache(tmp_path / ".jupyter_cache-cpu").cache_notebook_bundle(CacheBundleIn(nb, str(chapter)),
                                                                    check_validity=False)
    mixed = [f for f in notebook.build_problems("cpu", build_dir=tmp_path) if f.startswith(label)]
    assert mixed == [f"{label}: executed at budget 'ci', but the build asked for 'cpu'"]
    # a chapter whose code changed since it was cached does not count as executed
    setup.source += "\n# changed"
    original = nbformat.read
    monkeypatch.setattr(nbformat, "read", lambda path, as_version: nb if Path(path) == chapter
                        else original(path, as_version))
    assert any(f.startswith(label) and "not executed" in f for f in notebook.build_problems("ci", build_dir=tmp_path))


# What the package does for a chapter, a chapter does not write again (CONTRIBUTING.md): clocks come
# from mnf.timing, eval mode and hooks from mnf.metrics (undone in `finally`), nothing from the
# repository's benchmarks/ folder or sys.path.
HAND_WRITTEN = {
    r"\btime\.(perf_counter|time|monotonic)\(": "a clock: use mnf.timing (Stopwatch, best_seconds, ...)",
    r"\.register_forward_hook\(": "a forward hook: use mnf.metrics.probe or forward_hooks",
    r"\.eval\(\)": "eval mode: use mnf.metrics.probe or eval_mode",
    r"\bsys\.path\b|\bimportlib\b": "an import from outside the package: use mnf",
    r"""(open|Path)\(\s*["'](\.\./|book/|benchmarks/|mnf/|tests/)""": "a file read by repository path",
}


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_chapter_uses_the_package_helpers(path):
    nb = nbformat.read(path, as_version=4)
    found = []
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        source = cell.source if i else ""   # the setup cell (code cell 0) is stamped by tools/notebook.py
        for pattern, what in HAND_WRITTEN.items():
            if re.search(pattern, source):
                found.append(f"code cell {i}: {what}")
    ended = [c for c in nb.cells if c.cell_type == "code" and "chapter ran in" in c.source]
    assert found == [] and ended == [], found + ["prints 'chapter ran in' itself: use mnf.chapter_done()"] * len(ended)
