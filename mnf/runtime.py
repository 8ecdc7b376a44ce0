"""How long torch's idle OpenMP workers spin: the runtimes' defaults, or a short spin on request.

A training step here is hundreds of short parallel regions run by two OpenMP runtimes on the
same cores: torch's intra-op pool (the ``libgomp`` bundled with torch) and Numba's kernels (the
system ``libgomp``). An OpenMP worker that finishes a region spins for a while (libgomp: about
300,000 spins), waiting for the next. On an idle machine that saves a wake-up per region; when
another process wants a core (a browser tab, a second notebook), the spinning workers hold the
cores the other process and Numba's workers need, and a step can fall to a third of its quiet
rate. A short spin in torch's pool keeps more of the rate under load, but every region then pays
a wake-up: how much that costs depends on the machine's (virtual) scheduler. On one of these
two-core virtual machines a short spin cost quiet steps little; on another of the same kind it
made the quiet training step of the reduced MobileNetV2 more than twice as slow
(``benchmarks/bench_models.py`` measures quiet and loaded step rates side by side). So the
default is the runtimes' own behaviour, and the short spin is a choice for machines that are
busy most of the time.

``MNF_SPIN=short`` in the environment makes ``import mnf`` set ``GOMP_SPINCOUNT=1000`` (libgomp,
Linux) and ``KMP_BLOCKTIME=1`` (milliseconds; the LLVM/Intel runtime of torch on macOS and Intel
builds: the same idea, not measured here), import torch, and remove both again, so that Numba's
runtime, loaded at its first parallel kernel, keeps its defaults (a short spin there made the
adder benchmark's small layers slower). Nothing is changed if torch was imported before mnf
(``spin_policy()`` says so) or if any of ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``,
``KMP_BLOCKTIME`` is set (then both runtimes read that choice, e.g. ``OMP_WAIT_POLICY=PASSIVE``).
Thread counts are left to torch and Numba (both default to the cores available);
``mnf.timing.threads`` changes them for a block.
"""
from __future__ import annotations

import os
import sys

TORCH_SPIN = {"GOMP_SPINCOUNT": "1000", "KMP_BLOCKTIME": "1"}
CHOICES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
_state = "not applied"


def apply_spin_policy() -> None:
    """With ``MNF_SPIN=short``: load torch with :data:`TORCH_SPIN` in the environment, then remove
    it (see the module doc); otherwise leave the runtimes' defaults."""
    global _state
    spin = os.environ.get("MNF_SPIN", "default")
    if spin not in ("default", "short"):
        raise ValueError(f"MNF_SPIN must be 'default' or 'short', got {spin!r}")
    if spin == "default":
        _state = "the OpenMP runtimes' defaults (MNF_SPIN=short: a short spin for torch's pool)"
    elif "torch" in sys.modules:
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
