"""One switch for how much work a chapter (or a script) does, and one for a smoke run.

``MNF_BUDGET`` is ``ci`` (well under two minutes a chapter on two CPU cores: the book build in
CI), ``cpu`` (what a reader gets on a laptop) or ``gpu`` (the full experiment, e.g. in Colab).
Unset, it is ``gpu`` when CUDA is available and ``cpu`` otherwise.  Chapters read it only
through :func:`budget` and :func:`pick`::

    epochs = mnf.pick(ci=1, cpu=10, gpu=60)

``MNF_SMOKE=1`` keeps the branch a budget selects but makes its work tiny, so that e.g. the
``gpu`` branch of every chapter runs top to bottom on a CPU in seconds (``make test`` does this).
The caps live here, in :data:`SMOKE_CAPS`, and are applied by the package functions that do
the work (:func:`mnf.data.load_cifar10`, :func:`mnf.data.stratified_subset`,
:func:`mnf.train.fit`, ...) through :func:`cap`; a loop a chapter writes itself runs
``range(mnf.iterations(n))``.  Chapters never test for smoke mode themselves.

A smoke run also records, through :func:`record_work`, how much work each capped call *would*
have done and what a capped step cost, so that ``tools/notebook.py smoke`` can estimate a full
run's time (see :data:`T4_SPEEDUP`).
"""
from __future__ import annotations

import json
import os
import time
from typing import TypeVar

BUDGETS = ("ci", "cpu", "gpu")
T = TypeVar("T")

#: What a smoke run keeps of each kind of work (upper bounds; smaller requests are kept as they are).
SMOKE_CAPS = {
    "epochs": 2,            # fit: epochs of this call
    "steps_per_epoch": 1,   # fit: optimisation steps per epoch (the second epoch's step is timed)
    "train_per_class": 30,  # load_cifar10 / stratified_subset: training images per class
    "test_per_class": 10,   # load_cifar10 / stratified_subset: test images per class
    "batch_size": 32,       # fit: images per step
    "iterations": 3,        # loops a chapter writes itself: mnf.iterations(n)
    "steps": 3,             # other training loops (autoencoders, probes)
    "repeats": 2,           # timing repeats
}
#: How much faster than the two CPU cores of the smoke run a Colab T4 is assumed to train the
#: chapters' networks, for the *estimated* ``gpu`` times.  An assumption, not a measurement:
#: no line of mnf has run on a GPU yet; ``make gpu-check`` measures the real rates.
T4_SPEEDUP = 15.0


def budget() -> str:
    """The current budget name: ``"ci"``, ``"cpu"`` or ``"gpu"``."""
    value = os.environ.get("MNF_BUDGET", "").strip().lower()
    if not value:
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    if value not in BUDGETS:
        raise ValueError(f"MNF_BUDGET={value!r} is not a budget; expected one of {', '.join(BUDGETS)}")
    return value


def pick(*, ci: T, cpu: T, gpu: T) -> T:
    """Return the value that belongs to the current :func:`budget`."""
    return {"ci": ci, "cpu": cpu, "gpu": gpu}[budget()]


def smoke() -> bool:
    """True when ``MNF_SMOKE`` is set to ``1``/``true``/``yes`` (see the module doc)."""
    value = os.environ.get("MNF_SMOKE", "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ValueError(f"MNF_SMOKE={value!r}: expected 1/true/yes or 0/false/no")


def cap(value: int, what: str) -> int:
    """``value``, or at most ``SMOKE_CAPS[what]`` in smoke mode."""
    if what not in SMOKE_CAPS:
        raise ValueError(f"cap: got what={what!r}, expected one of {', '.join(SMOKE_CAPS)}")
    return min(value, SMOKE_CAPS[what]) if smoke() else value


def iterations(n: int) -> int:
    """Number of iterations for a loop a chapter writes itself: ``n``, capped in smoke mode."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"iterations: got n={n!r}, expected an int >= 0")
    return cap(n, "iterations")


_FULL_SIZE: dict[tuple[int, int], int] = {}


def note_full_size(tensor, full: int) -> None:
    """In smoke mode, remember that ``tensor`` stands for ``full`` items of a full run (so that
    :func:`full_size` can size the estimate of the work a capped call skipped)."""
    if smoke():
        _FULL_SIZE[(tensor.data_ptr(), len(tensor))] = int(full)


def full_size(tensor) -> int:
    """The number of items ``tensor`` stands for in a full run: ``len(tensor)`` outside smoke mode."""
    return _FULL_SIZE.get((tensor.data_ptr(), len(tensor)), len(tensor))


def device():
    """The device chapters compute on: CUDA when PyTorch sees it, else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def record_work(kind: str, *, planned_images: float, images: float, seconds: float) -> None:
    """Append one line to the file named by ``MNF_WORK_LOG`` (nothing happens when it is unset).

    ``planned_images``: images (forward + backward passes) the uncapped call would process;
    ``images`` / ``seconds``: what the call processed and the time it took (steady-state steps).
    ``tools/notebook.py smoke`` sets the variable per chapter and turns the log into estimates.
    """
    path = os.environ.get("MNF_WORK_LOG")
    if not path:
        return
    line = json.dumps({"kind": kind, "planned_images": float(planned_images), "images": float(images),
                       "seconds": float(seconds), "time": time.time()})
    with open(path, "a") as f:
        f.write(line + "\n")


def _times_file():
    from importlib import resources

    return resources.files("mnf").joinpath("chapter_times.json")


def chapter_times() -> dict:
    """The recorded per-chapter times (``mnf/chapter_times.json``, written by ``tools/notebook.py``)."""
    path = _times_file()
    return json.loads(path.read_text()) if path.is_file() else {}


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _short(machine: str) -> str:
    return " ".join(machine.replace("(R)", "").replace("(TM)", "").replace(" Processor", "").split())


_CHAPTER_CLOCK = None   # the mnf.timing.Stopwatch that chapter() starts and chapter_done() reads


def chapter(name: str) -> None:
    """Print what a chapter runs with: the setup cell of every chapter calls this.

    Says the version, the budget and the device, how long the chapter took under each budget
    when it was last measured (``ci`` and ``cpu``: recorded book builds; ``gpu``: an estimate from
    the smoke run, marked as one), and how to choose another budget.  Lines fit the book's column.
    Also sets the book's figure style (:func:`mnf.plots.style`) and starts the clock that
    :func:`chapter_done` reads.
    """
    import textwrap

    import torch
    import mnf.plots
    from mnf import __version__
    from mnf.timing import Stopwatch

    global _CHAPTER_CLOCK
    _CHAPTER_CLOCK = Stopwatch().start()
    mnf.plots.style()

    dev = device()
    where = torch.cuda.get_device_name(0) if dev.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"mnf {__version__}, budget {budget()!r}{' (smoke run)' if smoke() else ''}, device {dev} ({where})")
    times = chapter_times()
    parts = []
    for key in ("ci", "cpu"):
        rec = times.get(key, {})
        if name in rec.get("chapters", {}):
            parts.append(f"{key} {_duration(rec['chapters'][name])} (measured {rec['date']} on "
                         f"{_short(rec['machine'])})")
    est = times.get("gpu_estimate", {})
    if name in est.get("chapters", {}):
        parts.append(f"gpu about {_duration(est['chapters'][name])} on a T4 (an estimate: {est['method']})")
    if parts:
        print(textwrap.fill("This chapter takes: " + "; ".join(parts) + ".", width=76, subsequent_indent="  "))
    print("Another budget: `%env MNF_BUDGET=cpu` (or ci, gpu) in a cell, then Run all.")


def chapter_done() -> None:
    """Print the last line of a chapter: how long it ran since :func:`chapter` and under which
    budget, e.g. ``chapter ran in 42 s under budget 'cpu'``."""
    if _CHAPTER_CLOCK is None:
        raise RuntimeError("chapter_done: no chapter was started; call mnf.chapter(name) first (the setup cell does)")
    print(f"chapter ran in {_CHAPTER_CLOCK.seconds:.0f} s under budget {budget()!r}")
