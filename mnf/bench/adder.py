"""Adder2d on CPU: forward+backward time and peak memory vs the unfold reference and nn.Conv2d.

Shapes: ResNet-20 adder layers (16/32/64 channels, 3x3, batch 64 at 32/16/8 pixels) and
MobileNetV2 block layers (depthwise 3x3 on 96-576 channels, pointwise 1x1; batch 32 to keep the
unfold baselines within memory); ``quick``: three of them at batch 8. The implementations run
side by side in one process with ``torch.set_num_threads(2)`` (Numba uses its own pool of as
many threads as cores):

- ``mnf``:        :func:`mnf.adder.adder2d` (Numba kernels, AdderNet's surrogate gradients)
- ``unfold``:     the unfold reference the tests check every kernel against
  (:func:`mnf.adder.unfold.oracle`): unfold, broadcast ``X - F``, ``-abs().sum()``, and a custom
  backward with the same surrogate gradients as ``mnf`` (full-precision filter gradient, clamped
  input gradient), as AdderNet's published ``adder.py`` computes them. The bars are judged
  against this one: same outputs, same gradients.
- ``unfold-abs``: the same forward with plain autograd through ``abs``
  (:func:`mnf.adder.unfold.unfold_abs`: sign gradients, not the ones ``mnf`` computes);
  cheaper, printed for comparison only
- ``conv``:       ``torch.nn.functional.conv2d`` of the same shape (oneDNN), the multiply baseline

Two phases, times first. Times: median of 7 steps (quick: 2), or of as many as fit in half a
second but at least 2 (the unfold steps of the large layers), after a warm-up of at least one
step and 0.1 s (Numba compilation excluded; the first steps after switching cases ran up to 2x
slower for all implementations alike, measured: caches and allocator still held the previous
case), with glibc's allocator as every program gets it. Then peak memory, measured honestly for
all of them (torch tensors and Numba/NumPy scratch alike): ``mallopt`` fixes glibc's mmap
threshold at 64 KiB so every large buffer is mmapped and returned to the OS when freed (for the
rest of the process); the kernel's peak-RSS counter is reset through ``/proc/self/clear_refs``
before a forward+backward step (after ``malloc_trim`` has returned the free heap pages), and the
step's peak memory is ``VmHWM - VmRSS(before)``: the largest resident memory the step added,
inputs excluded. Timing in that mode would charge every step the page faults of its fresh
mappings, which a normal process does not pay (glibc raises its mmap threshold after the first
large free and reuses the memory): it made ``nn.Conv2d`` look about twice as slow. Peak memory
needs Linux (glibc, ``/proc``); elsewhere ``peak_mb`` is NaN. The machine may be shared: times
are noisy.
"""
from __future__ import annotations

import ctypes
import functools
import gc
import statistics
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as tf

from mnf.adder import adder2d
from mnf.adder.cpu import release_scratch
from mnf.adder.unfold import oracle, unfold_abs
from mnf.timing import seconds, synchronizer, threads

# (name, N, C, H, O, k, stride, padding, groups)
FULL = [
    ("resnet20 16ch 32px", 64, 16, 32, 16, 3, 1, 1, 1),
    ("resnet20 32ch 16px", 64, 32, 16, 32, 3, 1, 1, 1),
    ("resnet20 64ch 8px", 64, 64, 8, 64, 3, 1, 1, 1),
    ("mbv2 dw 96ch 16px s2", 32, 96, 16, 96, 3, 2, 1, 96),
    ("mbv2 dw 144ch 16px", 32, 144, 16, 144, 3, 1, 1, 144),
    ("mbv2 dw 576ch 4px", 32, 576, 4, 576, 3, 1, 1, 576),
    ("mbv2 pw 32->192 16px", 32, 32, 16, 192, 1, 1, 0, 1),
    ("mbv2 pw 576->96 4px", 32, 576, 4, 96, 1, 1, 0, 1),
]
QUICK = [
    ("resnet20 16ch 32px b8", 8, 16, 32, 16, 3, 1, 1, 1),
    ("mbv2 dw 144ch 16px b8", 8, 144, 16, 144, 3, 1, 1, 144),
    ("mbv2 pw 32->192 16px b8", 8, 32, 16, 192, 1, 1, 0, 1),
]

IMPLS: dict[str, Callable[..., torch.Tensor]] = {
    "mnf": adder2d,
    "unfold": oracle,
    "unfold-abs": unfold_abs,
    "conv": lambda x, w, s, p, g: tf.conv2d(x, w, None, s, p, 1, g),
}
BASELINE = "unfold"  # the bars' reference


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL("libc.so.6")


def _mmap_large_buffers() -> None:
    """From now on every buffer over 64 KiB is mmapped and unmapped on free (for peak memory)."""
    _libc().mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
    _libc().mallopt(-1, 64 * 1024)  # M_TRIM_THRESHOLD


def proc_status_bytes(key: str) -> int:
    """A memory line of ``/proc/self/status`` (``"VmRSS"``, ``"VmHWM"``, ...) in bytes (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def _peak_bytes(step: Callable[[], None]) -> int:
    release_scratch()  # mnf keeps its flat planes between calls: count them in the step
    gc.collect()
    _libc().malloc_trim(0)  # hand free heap pages back, so reusing them counts as new memory
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    base = proc_status_bytes("VmRSS")
    step()
    return proc_status_bytes("VmHWM") - base


def _step(impl: str, n: int, c: int, h: int, o: int, k: int, s: int, p: int, g: int) -> Callable[[], None]:
    """A forward+backward step of ``impl`` on fixed random inputs of the case's shape."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, h, generator=gen).requires_grad_()
    w = torch.randn(o, c // g, k, k, generator=gen).requires_grad_()
    fn = IMPLS[impl]

    def step() -> None:
        x.grad = w.grad = None
        y = fn(x, w, s, p, g)
        y.backward(torch.ones_like(y))

    step()  # compilation
    return step


def _median_s(step: Callable[[], None], reps: int, budget_s: float = 0.5) -> float:
    """Median time of ``reps`` steps, or of as many (at least 2) as fit in ``budget_s``, after
    0.1 s (at least one step) of warm-up: the first steps after a case switch are slow."""
    sync = synchronizer("cpu")  # the inputs of _step live on the CPU
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.1:
        step()
    times: list[float] = []
    while len(times) < reps and (len(times) < 2 or sum(times) < budget_s):
        times.append(seconds(step, sync))
    return statistics.median(times)


def run(quick: bool = True) -> list[dict]:
    """One row per (case, implementation): ``case, impl, ms`` (forward+backward), ``peak_mb``."""
    cases = [(name, impl, shape) for name, *shape in (QUICK if quick else FULL) for impl in IMPLS]
    rows = []
    with threads(2):
        for name, impl, shape in cases:
            reps = 2 if quick else 7  # the slow unfold steps stop at 2 (the time budget)
            rows.append(dict(case=name, impl=impl, ms=1e3 * _median_s(_step(impl, *shape), reps)))
        linux = sys.platform.startswith("linux")
        if linux:
            _mmap_large_buffers()
        for row, (_, impl, shape) in zip(rows, cases):
            row["peak_mb"] = _peak_bytes(_step(impl, *shape)) / 2**20 if linux else float("nan")
    return rows


def verdicts(rows: list[dict]) -> list[dict]:
    """Per case: speed-up and memory ratio vs the unfold reference (and the speed-up vs
    ``unfold-abs``), slowdown vs conv, and the PASS/FAIL bars (>= 10x faster than the unfold
    reference using <= 1/4 of its peak memory; within 6x of nn.Conv2d)."""
    out = []
    for case in dict.fromkeys(r["case"] for r in rows):
        r = {x["impl"]: x for x in rows if x["case"] == case}
        speedup = r[BASELINE]["ms"] / r["mnf"]["ms"]
        mem = r["mnf"]["peak_mb"] / max(r[BASELINE]["peak_mb"], 1e-9)
        vs_conv = r["mnf"]["ms"] / r["conv"]["ms"]
        out.append(dict(case=case, speedup_vs_unfold=speedup, mem_vs_unfold=mem, slowdown_vs_conv=vs_conv,
                        speedup_vs_unfold_abs=r["unfold-abs"]["ms"] / r["mnf"]["ms"],
                        unfold_bar=speedup >= 10 and mem <= 0.25, conv_bar=vs_conv <= 6))
    return out


def table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table: time (ms) and peak memory (MB) per case and impl."""
    lines = [f"{'case':26s} {'impl':10s} {'ms':>9s} {'peak MB':>9s}"]
    lines += [f"{r['case']:26s} {r['impl']:10s} {r['ms']:9.2f} {r['peak_mb']:9.1f}" for r in rows]
    return "\n".join(lines)


def verdict_table(rows: list[dict]) -> str:
    """:func:`verdicts` as a fixed-width text table, one line per case with its PASS/FAIL bars."""
    lines = [f"{'case':26s} {'x unfold':>9s} {'mem/unf':>8s} {'/conv':>6s}  bars{'':19s} {'x unfold-abs':>12s}"]
    for v in verdicts(rows):
        bars = f"unfold {'PASS' if v['unfold_bar'] else 'FAIL'}  conv {'PASS' if v['conv_bar'] else 'FAIL'}"
        lines.append(f"{v['case']:26s} {v['speedup_vs_unfold']:9.1f} {v['mem_vs_unfold']:8.3f} "
                     f"{v['slowdown_vs_conv']:6.2f}  {bars}  {v['speedup_vs_unfold_abs']:12.1f}")
    return "\n".join(lines)
