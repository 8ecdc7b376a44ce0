"""The thread pools' wait policy, set in one place: ``import mnf`` applies it.

A training step here is hundreds of short parallel regions, run by two OpenMP runtimes on the
same cores: torch's intra-op pool (the ``libgomp`` bundled with torch) and Numba's kernels (the
system ``libgomp``). By default an OpenMP worker that finishes a region spins, waiting for the
next. On an idle machine that saves a wake-up per region; when another process wants a core (a
browser tab, a second notebook), the spinning workers of one runtime hold the cores the other
runtime's workers, or the other process, need, and a step becomes many times slower than its
fair share (``benchmarks/bench_models.py`` measures both cases in one run).

So mnf asks both runtimes to sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``): on a
quiet machine steps are somewhat slower, under load they keep well above half their quiet
rate. Each runtime reads the variable once, when it is loaded (torch's at ``import torch``,
Numba's at its first parallel kernel), so ``import mnf`` before ``import torch`` (the chapters
do). To keep spinning workers, set ``OMP_WAIT_POLICY=ACTIVE`` (or any value) in the
environment before Python starts or before ``import mnf``; mnf never overrides a value that is
set. Thread counts are left to torch and Numba (both default to the cores available);
``mnf.timing.threads`` changes them for a block.
"""
from __future__ import annotations

import os
import sys

DEFAULT_WAIT_POLICY = "PASSIVE"
TORCH_FIRST = False   # torch was imported before mnf: its pool kept the policy it started with


def apply_wait_policy() -> None:
    """Set ``OMP_WAIT_POLICY`` to :data:`DEFAULT_WAIT_POLICY` unless it is already set."""
    os.environ.setdefault("OMP_WAIT_POLICY", DEFAULT_WAIT_POLICY)
    global TORCH_FIRST
    TORCH_FIRST = TORCH_FIRST or "torch" in sys.modules


def wait_policy() -> dict[str, str]:
    """What is in effect: ``{"OMP_WAIT_POLICY": value or "(unset)", "torch": "applied" | "torch was
    imported before mnf: its pool kept the policy it started with"}``."""
    return {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
            "torch": "torch was imported before mnf: its pool kept the policy it started with"
            if TORCH_FIRST else "applied"}
