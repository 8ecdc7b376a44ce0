"""``mnf.transforms.fwht`` against a dense product and a plain copy, measured side by side.

Rows: batched float32 ``(B, n)`` with ``B * n = 4M`` (quick: 256K) for ``n = 2**5 .. 2**16``
(quick: ``2**5 .. 2**11``, every other power): time per call of ``fwht``, of ``x @ H``
(``n <= 4096``) and of ``x.clone()`` (the memory-traffic floor), medians of several repeats,
2 torch threads and 2 numba threads. ``fwht`` and the copy run back to back in each repeat and
their ratio is the median of the per-repeat ratios, so a burst of load from elsewhere on a shared
machine hits both sides of a ratio alike. Then forward+backward of the torch wrapper on
``(64, C, 16, 16)`` (quick: batch 16) along ``dim=1``. On CUDA every timed call is synchronised.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from mnf.timing import seconds, synchronizer, threads
from mnf.transforms import fwht, hadamard


def _median_ms(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> float:
    fn()  # warm-up (compilation, caches)
    return 1e3 * float(np.median([seconds(fn, sync) for _ in range(repeats)]))


def _paired_ms(fn: Callable[[], Any], ref: Callable[[], Any], repeats: int,
               sync: Callable[[], None]) -> tuple[float, float, float]:
    """Median ms of ``fn``, of ``ref``, and the median of their per-repeat ratio (run back to back)."""
    fn(), ref()  # warm-up
    a, b = [], []
    for _ in range(repeats):
        a.append(seconds(fn, sync))
        b.append(seconds(ref, sync))
    ratio = float(np.median(np.array(a) / np.array(b)))
    return 1e3 * float(np.median(a)), 1e3 * float(np.median(b)), ratio


def run(quick: bool = False, device: torch.device | str = "cpu") -> list[dict]:
    """Measure and return one dict per row. ``kind="rows"``: ``n, batch, fwht_ms, copy_ms,
    fwht_over_copy`` and, for ``n <= 4096``, ``dense_ms, dense_over_fwht``;
    ``kind="nchw_fwd_bwd"``: ``C, shape, fwht_ms``. ``quick``: small sizes, a few seconds."""
    sync = synchronizer(device)
    total = 1 << (18 if quick else 22)
    repeats = 3 if quick else 15
    rows = []
    with threads(2, 2):
        for k in range(5, 13 if quick else 17, 2 if quick else 1):
            n = 1 << k
            x = torch.randn(total // n, n, device=device)
            fwht_ms, copy_ms, over_copy = _paired_ms(lambda: fwht(x), lambda: x.clone(), repeats, sync)
            row = {"kind": "rows", "n": n, "batch": total // n, "fwht_ms": fwht_ms, "copy_ms": copy_ms,
                   "fwht_over_copy": over_copy}
            if n <= 4096:
                h = torch.from_numpy(hadamard(n, dtype=np.float32)).to(device)
                row["dense_ms"] = _median_ms(lambda: x @ h, 3 if quick else 5, sync)
                row["dense_over_fwht"] = row["dense_ms"] / row["fwht_ms"]
            rows.append(row)
        for c in ((64, 256) if quick else (64, 256, 1024)):
            x = torch.randn(16 if quick else 64, c, 16, 16, device=device, requires_grad=True)

            def step() -> None:
                fwht(x, dim=1, normalized=True).sum().backward()

            rows.append({"kind": "nchw_fwd_bwd", "C": c, "shape": list(x.shape),
                         "fwht_ms": _median_ms(step, repeats, sync)})
    return rows


def check_bars(rows: list[dict]) -> list[tuple[str, bool]]:
    """The speed targets: (description, passed)."""
    r = [row for row in rows if row["kind"] == "rows"]
    dense = [row for row in r if "dense_ms" in row]
    at4096 = [row["dense_over_fwht"] for row in dense if row["n"] == 4096]
    return [
        ("faster than dense x @ H for every n >= 256",
         all(row["dense_over_fwht"] > 1 for row in dense if row["n"] >= 256)),
        ("at least 20x faster than dense at n = 4096", bool(at4096) and at4096[0] >= 20),
        ("within 4x of x.clone() for every n <= 4096",
         all(row["fwht_over_copy"] <= 4 for row in r if row["n"] <= 4096)),
    ]


def verdicts(rows: list[dict]) -> list[str]:
    """``PASS``/``FAIL`` lines of :func:`check_bars`."""
    return [f"{'PASS' if ok else 'FAIL'}  {text}" for text, ok in check_bars(rows)]


def table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table (times in ms)."""
    lines = [f"{'n':>7} {'batch':>7} {'fwht ms':>9} {'copy ms':>9} {'dense ms':>9} "
             f"{'fwht/copy':>10} {'dense/fwht':>11}"]
    for row in rows:
        if row["kind"] == "rows":
            lines.append(f"{row['n']:>7} {row['batch']:>7} {row['fwht_ms']:>9.3f} {row['copy_ms']:>9.3f} "
                         f"{row.get('dense_ms', float('nan')):>9.3f} {row['fwht_over_copy']:>10.2f} "
                         f"{row.get('dense_over_fwht', float('nan')):>11.1f}")
        else:
            lines.append(f"fwd+bwd {tuple(row['shape'])} dim=1: {row['fwht_ms']:.3f} ms")
    return "\n".join(lines)
