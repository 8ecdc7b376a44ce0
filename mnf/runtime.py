"""How long the thread pools' idle workers spin, set in one place: ``import mnf`` applies it.

A training step here is hundreds of short parallel regions run by two OpenMP runtimes on the
same cores: torch's intra-op pool (the ``libgomp`` bundled with torch) and Numba's kernels (the
system ``libgomp``). An OpenMP worker that finishes a region spins for a while, waiting for the
next. libgomp's default is about 300,000 spins: on an idle machine that saves a wake-up per
region, but when another process wants a core (a browser tab, a second notebook), the spinning
workers hold the cores the other runtime's workers, or the other process, need, and a step ran
at a third of its quiet rate, below a fair share of one half. Sleeping at once
(``OMP_WAIT_POLICY=PASSIVE``) keeps most of the quiet rate under load but costs every region a
wake-up, which on these virtual machines made quiet steps 30-45 % slower. A short spin does
both: ``GOMP_SPINCOUNT=1000`` kept the quiet rate within about 10 % and more than half of it
under load (``benchmarks/bench_models.py`` measures both in one run; the comparison of
policies is in ``book/notes/training.md``).

Each runtime reads its variables once, when it is loaded (torch's at ``import torch``, Numba's
at its first parallel kernel), so ``import mnf`` before ``import torch`` (the chapters,
benchmarks and the command line do). mnf sets:

- ``GOMP_SPINCOUNT=1000`` (libgomp: Linux builds of torch and Numba), unless
  ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` is set;
- ``KMP_BLOCKTIME=1`` (milliseconds; the LLVM/Intel runtime of torch on macOS and of Intel
  builds: the same idea, not measured here), unless ``KMP_BLOCKTIME`` or ``OMP_WAIT_POLICY`` is set.

To keep a runtime's own default, set any of these in the environment before ``import mnf``
(e.g. ``OMP_WAIT_POLICY=ACTIVE`` to spin, ``PASSIVE`` to sleep at once). Thread counts are
left to torch and Numba (both default to the cores available); ``mnf.timing.threads`` changes
them for a block.
"""
from __future__ import annotations

import os
import sys

# variable -> (value mnf sets, variables whose presence means the user chose)
SPIN = {"GOMP_SPINCOUNT": ("1000", ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")),
        "KMP_BLOCKTIME": ("1", ("KMP_BLOCKTIME", "OMP_WAIT_POLICY"))}
TORCH_FIRST = False   # torch was imported before mnf: its pool kept the settings it started with


def apply_spin_policy() -> None:
    """Set each variable of :data:`SPIN` unless the user set it or ``OMP_WAIT_POLICY``."""
    global TORCH_FIRST
    TORCH_FIRST = TORCH_FIRST or "torch" in sys.modules
    for name, (value, chosen) in SPIN.items():
        if not any(v in os.environ for v in chosen):
            os.environ[name] = value


def spin_policy() -> dict[str, str]:
    """What is in effect: the variables of :data:`SPIN` and ``OMP_WAIT_POLICY`` (``"(unset)"`` if
    not set), and ``"torch"``: ``"applied"`` or why torch's pool did not take them."""
    out = {v: os.environ.get(v, "(unset)") for v in ("OMP_WAIT_POLICY", *SPIN)}
    out["torch"] = ("torch was imported before mnf: its pool kept the settings it started with"
                    if TORCH_FIRST else "applied")
    return out
