"""Keep the book's notebooks in shape.

    python tools/notebook.py sync                 # stamp the setup cell, strip outputs (all chapters)
    python tools/notebook.py check                # report problems, exit 1 if any (the tests call check())
    python tools/notebook.py new SRC.py OUT.ipynb # build a notebook from a percent-format script
    python tools/notebook.py check-build          # after `jupyter-book build .`: every chapter executed,
                                                  # no warnings or errors in any output

Every chapter opens with a markdown cell (title and what the reader will learn) followed by
the setup cell rendered by :func:`setup_cell` from ``_config.yml``'s ``repository`` section --
the only place that names the repository URL and git ref Colab installs ``mnf`` from.
Notebooks are committed without outputs; the book build executes them.

Percent format (for ``new``): ``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell
whose lines lose their leading ``# ``; ``# %% tags=["remove-output"]`` sets cell tags.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
SETUP_MARKER = "# Setup: in Colab, install mnf"


def repository(config: Path = ROOT / "_config.yml") -> tuple[str, str]:
    """(url, ref) of the repository that Colab installs mnf from."""
    repo = yaml.safe_load(config.read_text())["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def setup_cell() -> str:
    url, ref = repository()
    return (
        f"{SETUP_MARKER} from the book's repository; elsewhere use the installed package.\n"
        "import sys\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install --quiet "mnf[cu12] @ git+{url}@{ref}"\n'
        "import mnf\n"
        'print(f"mnf {mnf.__version__}, budget {mnf.budget()!r}")'
    )


def chapters() -> list[Path]:
    """Every notebook listed in _toc.yml, in order."""
    toc = (ROOT / "_toc.yml").read_text()
    files = re.findall(r"file:\s*(\S+)", toc)
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


def problems(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    found = []
    code = [c for c in nb.cells if c.cell_type == "code"]
    if any(c.outputs or c.execution_count for c in code):
        found.append("has outputs or execution counts (run `python tools/notebook.py sync`)")
    if not nb.cells or nb.cells[0].cell_type != "markdown" or not nb.cells[0].source.startswith("# "):
        found.append("does not open with a markdown cell holding the chapter title")
    if not code or code[0].source != setup_cell():
        found.append("first code cell is not the setup cell rendered from _config.yml")
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    if not nb.cells or "learn" not in nb.cells[0].source.lower():
        found.append("first cell does not say what the reader will learn")
    if "{exercise}" not in text or "{solution}" not in text:
        found.append("has no exercises with folded solutions")
    return found


def build_problems(build: Path = ROOT / "_build" / "jupyter_execute") -> list[str]:
    """Problems in the executed copies of the chapters that Sphinx's -W cannot see."""
    found = []
    for chapter in chapters():
        executed = build / chapter.relative_to(ROOT)
        if not executed.exists():
            found.append(f"{chapter.relative_to(ROOT)}: not executed by the build")
            continue
        for i, cell in enumerate(nbformat.read(executed, as_version=4).cells):
            for out in cell.get("outputs", []):
                text = out.get("text", "") if out.output_type == "stream" else ""
                if out.output_type == "error":
                    found.append(f"{chapter.relative_to(ROOT)} cell {i}: {out.ename}: {out.evalue}")
                elif out.get("name") == "stderr" and re.search(r"warn", text, re.I):
                    found.append(f"{chapter.relative_to(ROOT)} cell {i}: warning in output: {text.strip()[:300]}")
    return found


def sync(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if code and code[0].source.startswith(SETUP_MARKER):
        code[0].source = setup_cell()
    else:
        nb.cells.insert(1, nbformat.v4.new_code_cell(setup_cell()))
    write(nb, path)


def write(nb, path: Path) -> None:
    for cell in nb.cells:
        cell.pop("id", None)  # ids churn diffs; nbformat 4.4 does not need them
    nb.nbformat_minor = 4
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "accelerator": "GPU",  # Colab opens the chapter on a GPU runtime
        "colab": {"provenance": []},
    }
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def from_percent(src: str) -> nbformat.NotebookNode:
    cells = []
    for block in re.split(r"^(# %%.*)$", src, flags=re.M)[1:]:
        if block.startswith("# %%"):
            header = block
            continue
        body = block.strip("\n")
        tags = re.search(r"tags=(\[.*?\])", header)
        meta = {"tags": json.loads(tags.group(1))} if tags else {}
        if "[markdown]" in header:
            lines = [re.sub(r"^# ?", "", line) for line in body.splitlines()]
            cells.append(nbformat.v4.new_markdown_cell("\n".join(lines), metadata=meta))
        else:
            cells.append(nbformat.v4.new_code_cell(body, metadata=meta))
    nb = nbformat.v4.new_notebook(cells=cells)
    code = [c for c in cells if c.cell_type == "code"]
    if not code or not code[0].source.startswith(SETUP_MARKER):
        nb.cells.insert(1, nbformat.v4.new_code_cell(setup_cell()))
    return nb


def main(argv: list[str]) -> int:
    if argv[:1] == ["sync"]:
        for path in chapters():
            sync(path)
        return 0
    if argv[:1] == ["check"]:
        bad = {p: problems(p) for p in chapters()}
        for p, found in bad.items():
            for f in found:
                print(f"{p.relative_to(ROOT)}: {f}")
        return 1 if any(bad.values()) else 0
    if argv[:1] == ["check-build"]:
        found = build_problems()
        print("\n".join(found) or f"{len(chapters())} chapters executed without warnings")
        return 1 if found else 0
    if argv[:1] == ["new"] and len(argv) == 3:
        write(from_percent(Path(argv[1]).read_text()), Path(argv[2]))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
