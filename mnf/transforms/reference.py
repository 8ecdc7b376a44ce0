"""The fast Walsh-Hadamard transform in plain NumPy: the algorithm the kernels implement.

``H_2n = [[H_n, H_n], [H_n, -H_n]]`` means a length-``2n`` transform is two length-``n``
transforms followed by one *butterfly* ``(a, b) -> (a + b, a - b)`` between the halves. Unrolled,
that is ``log2(n)`` stages; stage ``h = 1, 2, 4, ...`` pairs element ``j`` with ``j + h`` inside
every block of ``2h``. Cost: ``n log2(n)`` additions/subtractions and no multiplications (the
optional normalization is one scale at the end), against ``n**2`` multiply-adds for ``x @ H``.
"""
from __future__ import annotations

import numpy as np

from mnf.transforms.orderings import check_order, check_size, permutation


def fwht_reference(x: np.ndarray, order: str = "hadamard", normalized: bool = False) -> np.ndarray:
    """Transform the last axis of ``x`` (shape ``(..., n)``, ``n`` a power of two).

    Equals ``x @ transform_matrix(n, order, normalized).T``; returns float64 of the same shape.
    """
    if not isinstance(normalized, (bool, np.bool_)):
        raise TypeError(f"normalized must be True or False, got {normalized!r}")
    y = np.array(x, dtype=np.float64)  # a copy: the butterflies work in place
    n = check_size(y.shape[-1], "length of the last axis")
    rows = y.reshape(-1, n)
    h = 1
    while h < n:
        blocks = rows.reshape(len(rows), n // (2 * h), 2, h)  # [..., 0, :] = a, [..., 1, :] = b
        a, b = blocks[:, :, 0, :].copy(), blocks[:, :, 1, :]
        blocks[:, :, 0, :] += b                                # a + b
        blocks[:, :, 1, :] = a - b                             # a - b
        h *= 2
    y = y[..., permutation(n, check_order(order))]           # natural -> requested ordering
    return y / np.sqrt(n) if normalized else y
