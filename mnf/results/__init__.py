"""Recorded runs: long measurements stored as files, with their provenance, and read back by chapters.

A run too long for a book build (ten minutes of training per model, several seeds) is recorded
once, by a command, as one JSON file per run::

    mnf/results/<experiment>/<variant>-seed<k>.json

(inside the package, so ``pip install mnf`` and Colab have them too).  Each file holds

=================  ============================================================================
``experiment``     the experiment's name (the folder), e.g. ``"mobilenet_cpu10"``
``variant``        which model / recipe of the experiment
``seed``           the run's seed
``budget``         what the run was given, e.g. ``{"minutes": 10, "threads": 2}``
``command``        the exact shell command that reproduces the file
``commit``         the git commit the code was at, ``dirty``: files of ``mnf/`` and
                   ``benchmarks/`` that differed from it (an empty list for a clean tree)
``date``           when the run finished (UTC, ISO 8601)
``machine``        CPU model and instruction set, cores, torch / numba versions, GPU if any
``params``         trainable parameters of the model
``config``         the model and training settings
``history``        the per-epoch rows of :func:`mnf.train.fit` (``test_acc`` where evaluated)
``final``          ``test_acc``, ``train_time_s``, ``images_per_s``, ``epochs``
=================  ============================================================================

:func:`write` stores a record atomically, :func:`load` reads an experiment's records,
:func:`summary` averages them over seeds, :func:`provenance` describes where they come from.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import re
import statistics
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

FIELDS = ("experiment", "variant", "seed", "budget", "command", "commit", "dirty", "date", "machine", "params",
          "config", "history", "final")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def root() -> Path:
    """Where records live: ``$MNF_RESULTS`` if set, else the package's ``mnf/results`` folder."""
    env = os.environ.get("MNF_RESULTS")
    return Path(env) if env else Path(str(resources.files("mnf").joinpath("results")))


def cpu() -> tuple[str, str]:
    """``(model, isa)``: the CPU's model name (``/proc/cpuinfo``, else ``platform``) and its widest
    vector instruction set, ``"AVX-512"``, ``"AVX2"`` or ``""`` where unknown."""
    model, isa = platform.processor() or platform.machine(), ""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        text = info.read_text()
        names = re.findall(r"model name\s*:\s*(.+)", text)
        flags = re.search(r"flags\s*:(.+)", text)
        model = names[0].strip() if names else model
        isa = ("AVX-512" if flags and " avx512f" in flags.group(1) else
               "AVX2" if flags and " avx2" in flags.group(1) else "")
    return model, isa


def machine() -> dict[str, Any]:
    """The machine a run is on: CPU model and widest vector ISA, cores, library versions, GPU."""
    import numba
    import torch

    model, isa = cpu()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": model, "isa": isa, "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "numba": numba.__version__, "python": platform.python_version(), "gpu": gpu}


def git_state(repo: str | os.PathLike | None = None) -> tuple[str, list[str]]:
    """``(commit, dirty)``: the checkout's HEAD and the files under ``mnf/`` or ``benchmarks/`` that
    differ from it (``("unknown", [])`` outside a git checkout)."""
    repo = Path(repo) if repo is not None else Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.check_output(["git", "-C", str(repo), "rev-parse", "HEAD"], text=True,
                                         stderr=subprocess.DEVNULL).strip()
        status = subprocess.check_output(["git", "-C", str(repo), "status", "--porcelain", "--", "mnf",
                                          "benchmarks"], text=True, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError):
        return "unknown", []
    dirty = [line[3:] for line in status.splitlines() if line[3:] and not line[3:].startswith("mnf/results/")]
    return commit, dirty


def path(experiment: str, variant: str, seed: int, base: str | os.PathLike | None = None) -> Path:
    """``<base>/<experiment>/<variant>-seed<seed>.json`` (base: :func:`root`)."""
    for name, value in (("experiment", experiment), ("variant", variant)):
        if not isinstance(value, str) or not _NAME.match(value):
            raise ValueError(f"{name} must be a name of letters, digits, '_', '-' or '.', got {value!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return Path(base if base is not None else root()) / experiment / f"{variant}-seed{seed}.json"


def write(record: dict[str, Any], base: str | os.PathLike | None = None) -> Path:
    """Store ``record`` (every key of :data:`FIELDS`) at :func:`path`, atomically; returns the path."""
    if not isinstance(record, dict):
        raise TypeError(f"record must be a dict, got {type(record).__name__}")
    missing = [k for k in FIELDS if k not in record]
    if missing:
        raise ValueError(f"record lacks {missing}; a record needs {list(FIELDS)}")
    final = record["final"]
    if not isinstance(final, dict) or not {"test_acc", "train_time_s", "images_per_s"} <= set(final):
        raise ValueError(f"record['final'] needs test_acc, train_time_s and images_per_s, got {final!r}")
    target = path(record["experiment"], record["variant"], record["seed"], base)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, allow_nan=True) + "\n")
    os.replace(tmp, target)
    return target


def now() -> str:
    """The current UTC time as ISO 8601 (seconds)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def load(experiment: str, base: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every record of ``experiment``, sorted by variant and seed (``[]`` if none were recorded)."""
    folder = path(experiment, "x", 0, base).parent
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*-seed*.json"))]
    return sorted(records, key=lambda r: (r["variant"], r["seed"]))


def summary(records: list[dict[str, Any]], key: str = "test_acc") -> dict[str, dict[str, Any]]:
    """Per variant (in first-seen order): ``mean``, ``seeds`` (``{seed: value}``) of ``final[key]``,
    the mean epochs, training time and images/s, and the parameters."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        out.setdefault(r["variant"], {"runs": []})["runs"].append(r)
    for variant, entry in out.items():
        runs = entry.pop("runs")
        values = {r["seed"]: r["final"][key] for r in runs}
        entry.update(mean=statistics.fmean(values.values()), seeds=values, params=runs[0]["params"],
                     epochs=statistics.fmean(r["final"]["epochs"] for r in runs),
                     train_time_s=statistics.fmean(r["final"]["train_time_s"] for r in runs),
                     images_per_s=statistics.fmean(r["final"]["images_per_s"] for r in runs))
    return out


def provenance(records: list[dict[str, Any]]) -> str:
    """One line: the machines, dates and commits the records come from."""
    if not records:
        return "no recorded runs"
    machines = sorted({f"{r['machine']['cpu']} ({r['machine']['isa'] or 'ISA unknown'}, {r['machine']['cores']} "
                       f"cores{', ' + r['machine']['gpu'] if r['machine'].get('gpu') else ''}), torch "
                       f"{r['machine']['torch']}, numba {r['machine']['numba']}" for r in records})
    dates = sorted(r["date"][:10] for r in records)
    commits = sorted({r["commit"][:7] + ("+" if r.get("dirty") else "") for r in records})
    span = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    return (f"recorded runs: {len(records)} on {'; '.join(machines)}; {span}; commit{'s' if len(commits) > 1 else ''} "
            f"{', '.join(commits)}")


def curve(record: dict[str, Any], key: str = "test_acc") -> tuple[list[float], list[float]]:
    """``(epochs, values)`` of the history rows where ``key`` was measured (not NaN)."""
    rows = [row for row in record["history"] if row.get(key) is not None and not math.isnan(row[key])]
    return [row["epoch"] for row in rows], [row[key] for row in rows]


def table(records: list[dict[str, Any]], *, baseline: str | None = None, labels: dict[str, str] | None = None,
          caption: str | None = None):
    """The records as a :class:`mnf.tables.Table`: per variant the parameters, mean epochs and training
    time, the test accuracy of every seed, their mean and (with ``baseline``) the mean's difference
    to that variant's in points (images/s: :func:`summary`).  ``labels`` renames variants; the caption defaults
    to :func:`provenance`."""
    from mnf.tables import table as make

    rows = summary(records)
    if baseline is not None and baseline not in rows:
        raise ValueError(f"baseline {baseline!r} is not among the recorded variants {list(rows)}")
    labels = labels or {}
    header = ["variant", "parameters", "epochs (training time)", "test accuracy per seed", "mean"]
    header += [f"vs {labels.get(baseline, baseline)}"] if baseline else []
    body = []
    for variant, r in rows.items():
        seeds = ", ".join(f"{100 * v:.2f}\u202f%" for _, v in sorted(r["seeds"].items()))
        row = [labels.get(variant, variant), f"{r['params']:,}", f"{r['epochs']:g} ({r['train_time_s'] / 60:.1f} min)",
               seeds, f"{100 * r['mean']:.2f}\u202f%"]
        if baseline:
            row.append(f"{100 * (r['mean'] - rows[baseline]['mean']):+.2f}")
        body.append(row)
    return make(header, body, caption=caption or provenance(records))


def plot_curves(records: list[dict[str, Any]], *, labels: dict[str, str] | None = None, key: str = "test_acc",
                ax=None):
    """Test accuracy (``key``) against epochs: one line per record, a colour per variant; returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.8, 3.4))
    labels = labels or {}
    colors = {}
    for r in records:
        color = colors.setdefault(r["variant"], plt.get_cmap("tab10").colors[len(colors) % 10])
        x, y = curve(r, key)
        ax.plot(x, [100 * v for v in y], marker="o", ms=3, lw=1.4, color=color,
                label=f"{labels.get(r['variant'], r['variant'])}" if r["seed"] == min(
                    q["seed"] for q in records if q["variant"] == r["variant"]) else None,
                ls="-" if r["seed"] % 2 == 0 else "--")
    names = {"test_acc": "test accuracy", "train_acc": "training accuracy"}
    ax.set(xlabel="epoch", ylabel=f"{names.get(key, key.replace('_', ' '))} (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return ax


__all__ = ["FIELDS", "cpu", "curve", "git_state", "load", "machine", "now", "path", "plot_curves", "provenance", "root",
           "summary", "table", "write"]
