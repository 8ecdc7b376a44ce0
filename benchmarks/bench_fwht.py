"""Benchmark mnf's fwht against a dense product and a plain copy, measured side by side.

    python benchmarks/bench_fwht.py [--quick] [--json PATH]

Rows: batched float32 ``(B, n)`` with ``B * n = 4M`` for ``n = 2**5 .. 2**16``: time per call of
``mnf.transforms.fwht``, of ``x @ H`` (``n <= 4096``) and of ``x.clone()`` (the memory-traffic
floor), medians of several repeats, 2 torch threads and 2 numba threads. ``fwht`` and the copy
run back to back in each repeat and their ratio is the median of the per-repeat ratios, so a
burst of load from elsewhere on a shared machine hits both sides of a ratio alike. Then
forward+backward of the torch wrapper on ``(64, C, 16, 16)`` along ``dim=1``. ``run(quick)`` returns the rows (the
chapter plots them); bars are checked and printed as PASS/FAIL.
"""
from __future__ import annotations

import argparse
import json
import time

import numba
import numpy as np
import torch

from mnf.transforms import fwht, hadamard


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up (compilation, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def _paired_ms(fn, ref, repeats: int) -> tuple[float, float, float]:
    """Median ms of ``fn``, of ``ref``, and the median of their per-repeat ratio (run back to back)."""
    fn(), ref()  # warm-up
    a, b = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        ref()
        a.append(t1 - t0)
        b.append(time.perf_counter() - t1)
    ratio = float(np.median(np.array(a) / np.array(b)))
    return 1e3 * float(np.median(a)), 1e3 * float(np.median(b)), ratio


def run(quick: bool = False) -> list[dict]:
    """Measure and return one dict per row: ``kind``, ``n``/``C``, times in ms and ratios."""
    torch.set_num_threads(2)
    numba.set_num_threads(2)
    total = 1 << (18 if quick else 22)
    repeats = 3 if quick else 15
    ks = range(5, 13 if quick else 17, 1 if not quick else 2)
    rows = []
    for k in ks:
        n = 1 << k
        x = torch.randn(total // n, n)
        fwht_ms, copy_ms, over_copy = _paired_ms(lambda: fwht(x), lambda: x.clone(), repeats)
        row = {"kind": "rows", "n": n, "batch": total // n, "fwht_ms": fwht_ms, "copy_ms": copy_ms,
               "fwht_over_copy": over_copy}
        if n <= 4096:
            h = torch.from_numpy(hadamard(n, dtype=np.float32))
            row["dense_ms"] = _median_ms(lambda: x @ h, 3 if quick else 5)
            row["dense_over_fwht"] = row["dense_ms"] / row["fwht_ms"]
        rows.append(row)
    for c in ((64, 256) if quick else (64, 256, 1024)):
        x = torch.randn(16 if quick else 64, c, 16, 16, requires_grad=True)
        def step():
            fwht(x, dim=1, normalized=True).sum().backward()
        rows.append({"kind": "nchw_fwd_bwd", "C": c, "shape": list(x.shape),
                     "fwht_ms": _median_ms(step, repeats)})
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--json", metavar="PATH", help="save the rows as JSON")
    args = parser.parse_args()
    rows = run(args.quick)
    print(f"{'n':>7} {'batch':>7} {'fwht ms':>9} {'copy ms':>9} {'dense ms':>9} "
          f"{'fwht/copy':>10} {'dense/fwht':>11}")
    for row in rows:
        if row["kind"] == "rows":
            print(f"{row['n']:>7} {row['batch']:>7} {row['fwht_ms']:>9.3f} {row['copy_ms']:>9.3f} "
                  f"{row.get('dense_ms', float('nan')):>9.3f} {row['fwht_over_copy']:>10.2f} "
                  f"{row.get('dense_over_fwht', float('nan')):>11.1f}")
        else:
            print(f"fwd+bwd {tuple(row['shape'])} dim=1: {row['fwht_ms']:.3f} ms")
    for text, ok in check_bars(rows):
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
