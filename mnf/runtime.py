"""How long torch's idle OpenMP workers spin, set in one place: ``import mnf`` applies it.

A training step here is hundreds of short parallel regions run by two OpenMP runtimes on the
same cores: torch's intra-op pool (the ``libgomp`` bundled with torch) and Numba's kernels (the
system ``libgomp``). An OpenMP worker that finishes a region spins for a while (libgomp: about
300,000 spins), waiting for the next. On an idle machine that saves a wake-up per region; when
another process wants a core (a browser tab, a second notebook), torch's spinning workers hold
the cores the other process and Numba's workers need, and a step ran at a third of its quiet
rate, below a fair share of one half. Sleeping at once (``OMP_WAIT_POLICY=PASSIVE``) keeps most
of the quiet rate under load but costs every region a wake-up, which on these virtual machines
made quiet steps 30-45 % slower. A short spin in torch's pool does both; Numba's pool keeps its
default, because its kernels are few and long, and a short spin there made the adder benchmark's
small layers about 20 % slower (``benchmarks/bench_models.py`` measures quiet and loaded step
rates in one run; the comparison of settings is in ``book/notes/training.md``).

Each runtime reads its variables once, when it is loaded. So ``import mnf`` sets
``GOMP_SPINCOUNT=1000`` (libgomp, Linux) and ``KMP_BLOCKTIME=1`` (milliseconds; the LLVM/Intel
runtime of torch on macOS and Intel builds: the same idea, not measured here), imports torch,
and removes both again, so that Numba's runtime, loaded at its first parallel kernel, starts
with its defaults. Nothing is changed if torch was imported before mnf (``spin_policy()`` says
so: import mnf first, as the chapters, benchmarks and the command line do) or if any of
``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``, ``KMP_BLOCKTIME`` is set in the environment (then both
runtimes read the reader's choice, e.g. ``OMP_WAIT_POLICY=PASSIVE`` on a machine that is always
busy). Thread counts are left to torch and Numba (both default to the cores available);
``mnf.timing.threads`` changes them for a block.
"""
from __future__ import annotations

import os
import sys

TORCH_SPIN = {"GOMP_SPINCOUNT": "1000", "KMP_BLOCKTIME": "1"}
CHOICES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
_state = "not applied"


def apply_spin_policy() -> None:
    """Load torch with :data:`TORCH_SPIN` in the environment, then remove it (see module doc)."""
    global _state
    if "torch" in sys.modules:
        _state = "torch was imported before mnf: its pool kept its defaults"
    elif any(v in os.environ for v in CHOICES):
        _state = "the environment's choice: " + ", ".join(f"{v}={os.environ[v]}" for v in CHOICES if v in os.environ)
    else:
        os.environ.update(TORCH_SPIN)
        try:
            import torch  # noqa: F401  (its OpenMP runtime reads the variables now)
        finally:
            for v in TORCH_SPIN:
                os.environ.pop(v, None)
        _state = "torch: " + ", ".join(f"{k}={v}" for k, v in TORCH_SPIN.items()) + "; Numba: its runtime's defaults"


def spin_policy() -> str:
    """What :func:`apply_spin_policy` did in this process."""
    return _state
