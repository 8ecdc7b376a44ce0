"""Walsh-Hadamard matrices and the permutations between their row orderings (NumPy).

Three orderings of the same set of ``n = 2**k`` rows (entries are +1/-1):

- ``"hadamard"`` natural (Sylvester / Kronecker) order: ``H_1 = [1]``,
  ``H_2n = [[H_n, H_n], [H_n, -H_n]]``, so ``H[i, j] = (-1) ** popcount(i & j)``.
- ``"walsh"`` sequency order: row ``k`` changes sign exactly ``k`` times.
- ``"dyadic"`` Paley order: row ``k`` is natural row ``bit_reverse(k)``.

A permutation ``p`` here always means *rows of the ordered matrix are gathered from the natural
matrix*: ``walsh(n) == hadamard(n)[walsh_permutation(n)]`` and
``dyadic(n) == hadamard(n)[dyadic_permutation(n)]``. All three matrices are symmetric and satisfy
``M @ M == n * I`` (so the normalized ``M / sqrt(n)`` is its own inverse).
"""
from __future__ import annotations

import numbers

import numpy as np

ORDERS = ("hadamard", "walsh", "dyadic")


def check_size(n: object, name: str = "n") -> int:
    """Return ``n`` as an int if it is a power of two ``>= 1``, else raise ``ValueError``."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ValueError(f"{name} must be an int power of two >= 1, got {n!r} of type {type(n).__name__}")
    n = int(n)
    if n < 1 or n & (n - 1):
        hint = f" (pad to {next_power_of_two(n)})" if n > 1 else ""
        raise ValueError(f"{name} must be a power of two >= 1, got {n}{hint}")
    return n


def check_order(order: str) -> str:
    """Return ``order`` if it is one of ``ORDERS``, else raise ``ValueError``."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    return order


def next_power_of_two(n: int) -> int:
    """Smallest power of two ``>= n`` (``1`` for ``n <= 1``)."""
    n = int(n)
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def log2(n: int) -> int:
    """``k`` with ``2**k == n`` for a power of two ``n`` (raises ``ValueError`` otherwise)."""
    return check_size(n).bit_length() - 1


def gray_code(n: int) -> np.ndarray:
    """The first ``n`` binary-reflected Gray codes ``i ^ (i >> 1)``, shape ``(n,)``, int64."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    i = np.arange(int(n), dtype=np.int64)
    return i ^ (i >> 1)


def bit_reverse(indices: np.ndarray | int, bits: int) -> np.ndarray:
    """Reverse the lowest ``bits`` bits of each index (``bits`` passes, no Python loop over n).

    ``indices`` must lie in ``[0, 2**bits)``; returns int64 of the same shape.
    """
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not 0 <= bits <= 62:
        raise ValueError(f"bits must be an int in [0, 62], got {bits!r}")
    x = np.asarray(indices, dtype=np.int64)
    if x.size and (x.min() < 0 or x.max() >= 1 << bits):
        raise ValueError(f"indices must lie in [0, {1 << bits}) for bits={bits}, "
                         f"got values in [{x.min()}, {x.max()}]")
    out = np.zeros_like(x)
    for b in range(bits):
        out |= ((x >> b) & 1) << (bits - 1 - b)
    return out


def walsh_permutation(n: int) -> np.ndarray:
    """Natural -> sequency permutation ``p`` with ``walsh(n) == hadamard(n)[p]``, int64 ``(n,)``.

    Algorithm 1 of the MobileNetV2-WHT thesis: the sequency-``k`` row is natural row
    ``bit_reverse(gray_code(k))`` — O(n log n), no sorting.
    """
    n = check_size(n)
    return bit_reverse(gray_code(n), n.bit_length() - 1)


def dyadic_permutation(n: int) -> np.ndarray:
    """Natural -> Paley permutation ``p`` with ``dyadic(n) == hadamard(n)[p]``, int64 ``(n,)``."""
    n = check_size(n)
    return bit_reverse(np.arange(n), n.bit_length() - 1)


def permutation(n: int, order: str = "hadamard") -> np.ndarray:
    """Rows of the ``order`` matrix as indices into the natural matrix (identity for hadamard)."""
    order = check_order(order)
    if order == "walsh":
        return walsh_permutation(n)
    if order == "dyadic":
        return dyadic_permutation(n)
    return np.arange(check_size(n), dtype=np.int64)


def hadamard(n: int, normalized: bool = False, dtype=np.float64) -> np.ndarray:
    """Natural-order (Sylvester) Hadamard matrix ``H[i, j] = (-1)**popcount(i & j)``, ``(n, n)``.

    Scaled by ``1/sqrt(n)`` when ``normalized`` (then orthogonal and its own inverse).
    """
    n = check_size(n)
    h = np.ones((1, 1), dtype=dtype)
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(n).astype(dtype) if normalized else h


def walsh(n: int, normalized: bool = False, dtype=np.float64) -> np.ndarray:
    """Sequency-ordered Walsh matrix (row ``k`` has ``k`` sign changes), ``(n, n)``."""
    return hadamard(n, normalized, dtype)[walsh_permutation(n)]


def dyadic(n: int, normalized: bool = False, dtype=np.float64) -> np.ndarray:
    """Paley (dyadic) ordered Walsh matrix, row ``k`` = natural row ``bit_reverse(k)``, ``(n, n)``."""
    return hadamard(n, normalized, dtype)[dyadic_permutation(n)]


def transform_matrix(n: int, order: str = "hadamard", normalized: bool = False,
                     dtype=np.float64) -> np.ndarray:
    """The dense ``(n, n)`` matrix ``M`` of ``fwht(x, order=order, normalized=normalized)``."""
    return hadamard(n, normalized, dtype)[permutation(n, order)]


def sequency(m: np.ndarray) -> np.ndarray:
    """Number of sign changes along each row of a 2-D array, int64 ``(rows,)``."""
    m = np.asarray(m)
    if m.ndim != 2:
        raise ValueError(f"sequency expects a 2-D matrix, got shape {m.shape}")
    s = np.sign(m)
    return np.count_nonzero(s[:, 1:] != s[:, :-1], axis=1).astype(np.int64)
