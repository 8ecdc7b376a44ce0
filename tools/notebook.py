"""Keep the book's notebooks in shape.

    python tools/notebook.py sync                 # stamp the setup cell, strip outputs (all chapters)
    python tools/notebook.py check                # report problems, exit 1 if any (the tests call check())
    python tools/notebook.py new SRC.py OUT.ipynb # build a notebook from a percent-format script
    python tools/notebook.py build                # jupyter-book build at MNF_BUDGET, one execution cache per budget
    python tools/notebook.py check-build          # after a build: every chapter executed at the requested
                                                  # budget, no warnings or errors in any output
    python tools/notebook.py smoke [CHAPTER ...]  # execute chapters with MNF_SMOKE=1 (make test: MNF_BUDGET=gpu)
    python tools/notebook.py record-times         # store the last build's per-chapter times (mnf/chapter_times.json)
    python tools/notebook.py forget CHAPTER ...   # drop the chapters' cached outputs (all budgets): rebuilt next time

Every chapter opens with a markdown cell (title and what the reader will learn) followed by
the setup cell rendered by :func:`setup_cell` from ``_config.yml``'s ``repository`` section --
the only place that names the repository URL and git ref Colab installs ``mnf`` from.
Notebooks are committed without outputs; the book build executes them.

Percent format (for ``new``): ``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell
whose lines lose their leading ``# ``; ``# %% tags=["remove-output"]`` sets cell tags.
"""
from __future__ import annotations

import json
import os
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


def chapter_name(path: Path) -> str:
    """``book/wht/hadamard.ipynb`` -> ``"wht/hadamard"``: the key of ``mnf/chapter_times.json``."""
    path = path.resolve()
    book = ROOT / "book"
    return path.relative_to(book).with_suffix("").as_posix() if path.is_relative_to(book) else path.stem


def setup_cell(name: str) -> str:
    url, ref = repository()
    return (
        f"{SETUP_MARKER} from the book's repository; elsewhere use the installed package.\n"
        "import sys\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install --quiet "mnf[cu12] @ git+{url}@{ref}"\n'
        "import mnf\n"
        f"mnf.chapter({name!r})  # budget, device, and how long this chapter takes"
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
    if not code or code[0].source != setup_cell(chapter_name(path)):
        found.append("first code cell is not the setup cell rendered from _config.yml")
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    if not nb.cells or "learn" not in nb.cells[0].source.lower():
        found.append("first cell does not say what the reader will learn")
    if "{exercise}" not in text or "{solution}" not in text:
        found.append("has no exercises with folded solutions")
    for i, c in enumerate(code):
        if "mnf.plots.interact(" in c.source and not set(LIVE_WIDGET_TAGS) <= set(c.metadata.get("tags", [])):
            found.append(f"code cell {i} shows live widgets but is not tagged {LIVE_WIDGET_TAGS}")
    return found


# Live ipywidgets cells: the HTML has no kernel to drive them (remove-output), and the book build does
# not run them (skip-execution: nbclient can wait forever on a widget cell); the smoke run does.
LIVE_WIDGET_TAGS = ("remove-output", "skip-execution")


BUDGET_LINE = re.compile(r"budget '(\w+)'")


def output_problems(nb: nbformat.NotebookNode, label: str, budget: str | None = None) -> list[str]:
    """Errors and warnings in an executed chapter, and a budget other than ``budget``."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.output_type == "stream" else ""
            if out.output_type == "error":
                found.append(f"{label} cell {i}: {out.ename}: {out.evalue}")
            elif out.get("name") == "stderr" and re.search(r"warn", text, re.I):
                found.append(f"{label} cell {i}: warning in output: {text.strip()[:300]}")
    if budget is not None:
        setup = next((c for c in nb.cells if c.cell_type == "code"), None)
        text = "".join(o.get("text", "") for o in (setup.get("outputs", []) if setup else []))
        seen = BUDGET_LINE.search(text)
        if seen is None:
            found.append(f"{label}: the setup cell's output names no budget")
        elif seen.group(1) != budget:
            found.append(f"{label}: executed at budget {seen.group(1)!r}, but the build asked for {budget!r}")
    return found


def executed(budget: str, build_dir: Path = ROOT / "_build") -> dict[Path, tuple[nbformat.NotebookNode, float]]:
    """Each chapter's executed copy and execution seconds, from this budget's Jupyter Book cache.

    The cache, not ``_build/jupyter_execute``: MyST-NB writes a chapter it takes from the cache
    there without its outputs.  Only records of the chapter's current code count.
    """
    from jupyter_cache import get_cache

    cache = get_cache(build_dir / f".jupyter_cache-{budget}")
    found = {}
    for chapter in chapters():
        try:
            record = cache.match_cache_notebook(nbformat.read(chapter, as_version=4))
        except KeyError:
            continue
        found[chapter] = (cache.get_cache_bundle(record.pk).nb, record.data.get("execution_seconds"))
    return found


def forget(paths: list[Path], build_dir: Path = ROOT / "_build") -> int:
    """Drop the cached outputs of the chapters ``paths`` from every budget's cache; returns how many.

    Jupyter Book's cache is keyed by a chapter's code: a chapter that renders recorded results
    (``mnf/results``) keeps its old outputs when only the files change, so ``make results`` calls
    this for the chapters that read them; the next build executes them again.
    """
    from jupyter_cache import get_cache

    dropped = 0
    for folder in sorted(build_dir.glob(".jupyter_cache-*")):
        cache = get_cache(folder)
        for path in paths:
            try:
                record = cache.match_cache_notebook(nbformat.read(path, as_version=4))
            except KeyError:
                continue
            cache.remove_cache_record(record.pk)
            dropped += 1
    return dropped


def build_problems(budget: str, build_dir: Path = ROOT / "_build") -> list[str]:
    """Problems in the executed chapters that Sphinx's -W cannot see (see :func:`output_problems`)."""
    done = executed(budget, build_dir)
    found = []
    for chapter in chapters():
        label = str(chapter.relative_to(ROOT))
        if chapter not in done:
            found.append(f"{label}: not executed at budget {budget!r} (no cached outputs for its current code)")
        else:
            found += output_problems(done[chapter][0], label, budget)
    return found


def resolved_budget() -> str:
    """``MNF_BUDGET`` as the chapters will see it (``mnf.budget()``)."""
    sys.path.insert(0, str(ROOT))
    import mnf

    return mnf.budget()


def build(budget: str, build_dir: Path = ROOT / "_build") -> int:
    """``jupyter-book build`` at ``budget``, with one execution cache per budget.

    ``_build/.jupyter_cache`` (where Jupyter Book keeps executed outputs) is made a link to
    ``_build/.jupyter_cache-<budget>``, and when the last build was of another budget, or a
    chapter has no outputs for its current code in this budget's cache, Sphinx starts afresh
    (``--all``) so that every page is rendered from this budget's outputs.
    """
    import shutil
    import subprocess

    build_dir.mkdir(exist_ok=True)
    link, target = build_dir / ".jupyter_cache", build_dir / f".jupyter_cache-{budget}"
    target.mkdir(exist_ok=True)
    if link.is_symlink():
        link.unlink()
    elif link.exists():       # a cache of unknown budget from before caches were per budget
        shutil.rmtree(link)
    link.symlink_to(target.name)
    marker = build_dir / ".budget"
    other = not marker.is_file() or marker.read_text().strip() != budget
    # Sphinx re-reads only changed sources: a chapter whose outputs are missing from this
    # budget's cache (cleared, or never built) would keep its old page without --all
    missing = len(executed(budget, build_dir)) < len(chapters())
    fresh = other or missing
    marker.unlink(missing_ok=True)
    why = ("another budget was built last" if other else "chapters without cached outputs at this budget")
    print(f"building the book at budget {budget!r}" + (f" ({why}: all pages afresh)" if fresh else ""), flush=True)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(ROOT), "-W", "--keep-going"] + (["--all"] if fresh else [])
    code = subprocess.call(cmd, env=dict(os.environ, MNF_BUDGET=budget))
    if code == 0:
        marker.write_text(budget + "\n")
    return code


def recorded_times(budget: str, build_dir: Path = ROOT / "_build") -> dict[str, float]:
    """Execution seconds per chapter (its current code) from this budget's Jupyter Book cache."""
    return {chapter_name(c): round(seconds, 1) for c, (_, seconds) in executed(budget, build_dir).items()
            if seconds is not None}


def overruns(budget: str, factor: float = 1.5) -> list[str]:
    """Chapters whose execution in the last build took over ``factor`` times their recorded time:
    reported, never a failure (a busy or slower machine is not a broken chapter)."""
    path = ROOT / "mnf" / "chapter_times.json"
    recorded = json.loads(path.read_text()).get(budget, {}) if path.is_file() else {}
    try:
        now = recorded_times(budget)
    except Exception:  # noqa: BLE001 - no cache yet: nothing to compare
        return []
    lines = []
    for name, seconds in now.items():
        expected = recorded.get("chapters", {}).get(name)
        if expected and seconds > factor * expected:
            lines.append(f"note: {name} took {seconds:.0f} s at budget {budget!r}, {seconds / expected:.1f}x the "
                         f"{expected:.0f} s recorded on {recorded['machine']} ({recorded['date']}): a slower or busier machine")
    return lines


def machine() -> str:
    """``"<CPU model>, <ISA>, <n> cores"`` (``mnf.results.cpu``)."""
    sys.path.insert(0, str(ROOT))
    from mnf.results import cpu

    model, isa = cpu()
    return f"{model}, {isa}".strip(", ") + f", {os.cpu_count()} cores"


def commit() -> str:
    import subprocess

    try:
        return subprocess.check_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def record(key: str, chapters_s: dict[str, float], **extra) -> None:
    """Store one set of per-chapter times in ``mnf/chapter_times.json`` (atomically)."""
    import datetime

    path = ROOT / "mnf" / "chapter_times.json"
    times = json.loads(path.read_text()) if path.is_file() else {}
    times[key] = {"date": datetime.date.today().isoformat(), "machine": machine(), "commit": commit(),
                  **extra, "chapters": chapters_s}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(times, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def smoke(names: list[str] | None = None, timeout: int = 600) -> tuple[list[str], dict, dict]:
    """Execute every chapter (or those named) with ``MNF_SMOKE=1`` in a scratch directory.

    The budget is ``MNF_BUDGET`` (``make test`` uses ``gpu``: the branch Colab runs).  The working
    directory is an empty temporary folder, as in Colab, so a chapter that reaches into the
    repository fails here.  Returns ``(problems, seconds per chapter, estimated full-run seconds
    on a T4 per chapter)``.  The estimate: the smoke time, plus the full work the capped training
    calls stand for (:func:`mnf.budget.record_work`) at the per-image cost they measured on this
    CPU, divided by ``mnf.budget.T4_SPEEDUP`` (an assumption, stated in every estimate).
    """
    import tempfile
    import time

    from nbclient import NotebookClient

    sys.path.insert(0, str(ROOT))
    from mnf.budget import T4_SPEEDUP

    budget = resolved_budget()
    found, seconds, estimate = [], {}, {}
    for path in chapters():
        name = chapter_name(path)
        if names and name not in names:
            continue
        nb = nbformat.read(path, as_version=4)
        with tempfile.TemporaryDirectory() as scratch:
            log = Path(scratch) / "work.jsonl"
            env = {"MNF_SMOKE": "1", "MNF_WORK_LOG": str(log), "MNF_BUDGET": budget}
            old = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            tic = time.perf_counter()
            try:
                NotebookClient(nb, timeout=timeout, kernel_name="python3", skip_cells_with_tag="",
                               resources={"metadata": {"path": scratch}}).execute()
            except Exception as error:  # noqa: BLE001 - the failing cell's error is in the outputs
                last = (re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().splitlines() or [""])[-1]
                found.append(f"{name}: {type(error).__name__}: {last[:300]}")
            finally:
                for k, v in old.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            seconds[name] = round(time.perf_counter() - tic, 1)
            work = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
        full_work = sum(w["planned_images"] * w["seconds"] / max(w["images"], 1) for w in work)
        estimate[name] = round(seconds[name] + full_work / T4_SPEEDUP, 1)
        found += output_problems(nb, name, budget)
        print(f"{name:36s} {seconds[name]:6.1f} s smoke, {len(work)} training calls, "
              f"full {budget} run on a T4 about {estimate[name] / 60:.1f} min (estimate)", flush=True)
    return found, seconds, estimate


def sync(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if code and code[0].source.startswith(SETUP_MARKER):
        code[0].source = setup_cell(chapter_name(path))
    else:
        nb.cells.insert(1, nbformat.v4.new_code_cell(setup_cell(chapter_name(path))))
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


def from_percent(src: str, name: str) -> nbformat.NotebookNode:
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
        nb.cells.insert(1, nbformat.v4.new_code_cell(setup_cell(name)))
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
        budget = resolved_budget()
        found = build_problems(budget)
        print("\n".join(found) or f"{len(chapters())} chapters executed at budget {budget!r} without warnings")
        for line in overruns(budget):
            print(line)
        return 1 if found else 0
    if argv[:1] == ["build"]:
        return build(resolved_budget())
    if argv[:1] == ["forget"] and argv[1:]:
        paths = [Path(a).resolve() for a in argv[1:]]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            print(f"no such chapter: {', '.join(missing)}")
            return 2
        print(f"dropped {forget(paths)} cached execution(s)")
        return 0
    if argv[:1] == ["record-times"]:
        budget = resolved_budget()
        record(budget, recorded_times(budget), method="execution time of the book build (jupyter-cache)")
        return 0
    if argv[:1] == ["smoke"]:
        found, seconds, estimate = smoke(argv[1:] or None)
        print("\n".join(found) or f"{len(seconds)} chapters ran in smoke mode without errors or warnings, "
              f"{sum(seconds.values()):.0f} s in all")
        if not found and not argv[1:] and os.environ.get("MNF_RECORD") == "1":
            from mnf.budget import T4_SPEEDUP
            record("smoke", seconds, method="tools/notebook.py smoke, MNF_BUDGET=gpu MNF_SMOKE=1")
            record("gpu_estimate", estimate,
                   method=f"the smoke run's cost per image x the full work / {T4_SPEEDUP:g}, an assumed T4 speed-up")
        return 1 if found else 0
    if argv[:1] == ["new"] and len(argv) == 3:
        write(from_percent(Path(argv[1]).read_text(), chapter_name(Path(argv[2]))), Path(argv[2]))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
