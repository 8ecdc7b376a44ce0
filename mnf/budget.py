"""One switch for how much work a chapter (or a script) does.

``MNF_BUDGET`` is ``ci`` (a few seconds to a minute on two CPU cores: the book
build in CI), ``cpu`` (what a reader gets on a laptop) or ``gpu`` (the full
experiment, e.g. in Colab).  Unset, it is ``gpu`` when CUDA is available and
``cpu`` otherwise.  Chapters read it only through :func:`budget` and
:func:`pick`::

    epochs = mnf.pick(ci=1, cpu=10, gpu=60)
"""
from __future__ import annotations

import os
from typing import TypeVar

BUDGETS = ("ci", "cpu", "gpu")
T = TypeVar("T")


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
