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

from functools import lru_cache

import numpy as np

from mnf import _check

ORDERS = ("hadamard", "walsh", "dyadic")


def check_size(n: object, name: str = "n") -> int:
    """Return ``n`` as an int if it is a power of two ``>= 1``, else raise ``ValueError``
    (:class:`mnf._check.ArgumentTypeError`, also a ``TypeError``, when ``n`` is not an integer)."""
    if not _check.is_int(n):
        raise _check.ArgumentTypeError(f"{name} must be an int power of two >= 1, got {n!r} of type "
                                       f"{type(n).__name__}")
    n = int(n)
    if n < 1 or n & (n - 1):
        hint = f" (pad to {next_power_of_two(n)})" if n > 1 else ""
        raise ValueError(f"{name} must be a power of two >= 1, got {n}{hint}")
    return n


def check_order(order: str) -> str:
    """Return ``order`` if it is one of ``ORDERS``, else raise ``ValueError``."""
    if not isinstance(order, str):
        raise _check.ArgumentTypeError(f"order must be one of {ORDERS}, got {order!r} of type {type(order).__name__}")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    return order


def next_power_of_two(n: int) -> int:
    """Smallest power of two ``>= n`` (``1`` for ``n <= 1``); ``n`` an int (``TypeError`` otherwise)."""
    n = _check.integer("n", n, owner="next_power_of_two")
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def gray_code(n: int) -> np.ndarray:
    """The first ``n`` binary-reflected Gray codes ``i ^ (i >> 1)``, shape ``(n,)``, int64."""
    n = _check.integer("n", n, 0, owner="gray_code")
    _check.size(f"gray_code(n={n})", n, 8)
    i = np.arange(n, dtype=np.int64)
    return i ^ (i >> 1)


def bit_reverse(indices: np.ndarray | int, bits: int) -> np.ndarray:
    """Reverse the lowest ``bits`` bits of each index (``bits`` passes, no Python loop over n).

    ``indices``: an int or array-like of ints (not floats: ``TypeError``) in ``[0, 2**bits)``;
    returns int64 of the same shape.
    """
    bits = _check.integer("bits", bits, 0, 62, owner="bit_reverse")
    x = _check.array("indices", indices, owner="bit_reverse")
    if x.dtype.kind not in "iu" and x.size:
        raise _check.ArgumentTypeError(f"bit_reverse: indices must be integers, got {_check._shown(indices)} "
                                       f"of dtype {x.dtype}")
    if x.size and x.dtype.kind == "u" and x.max() >= 1 << bits:
        raise ValueError(f"bit_reverse: indices must lie in [0, {1 << bits}) for bits={bits}, got values up to {x.max()}")
    x = x.astype(np.int64)
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


@lru_cache(maxsize=64)
def gather_indices(n: int, order: str) -> np.ndarray:
    """The kernels' int64 gather indices for ``order`` (:func:`permutation`), empty for the natural
    order (the kernels' identity): the one source of the orderings for every backend (the CUDA
    backend copies them to the device once per ``(n, order, device)``). Cached: do not modify."""
    return np.empty(0, np.int64) if order == "hadamard" else permutation(n, order)


def check_dtype(dtype, normalized: bool, owner: str = "hadamard") -> np.dtype:
    """``dtype`` as a NumPy dtype that can hold the matrix: signed integer or float (entries -1
    and +1), float or complex when ``normalized`` (entries +-1/sqrt(n))."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise _check.ArgumentTypeError(f"{owner}: dtype must be a NumPy dtype, got {dtype!r}") from None
    kinds = "fc" if normalized else "ifc"
    if dt.kind not in kinds:
        need = ("a float dtype (entries are +-1/sqrt(n))" if normalized
                else "a signed integer or float dtype (entries are -1 and +1)")
        raise ValueError(f"{owner}: dtype must be {need}, got {dt}")
    return dt


def hadamard(n: int, normalized: bool = False, dtype=np.float64) -> np.ndarray:
    """Natural-order (Sylvester) Hadamard matrix ``H[i, j] = (-1)**popcount(i & j)``, ``(n, n)``.

    Scaled by ``1/sqrt(n)`` when ``normalized`` (then orthogonal and its own inverse).
    ``dtype``: a signed integer or float dtype; a float (or complex) one when ``normalized``
    (an integer dtype cannot hold ``1/sqrt(n)``: ``ValueError``).
    """
    n = check_size(n)
    normalized = _check.flag("normalized", normalized, owner="hadamard")
    dtype = check_dtype(dtype, normalized)
    _check.size(f"hadamard(n={n})", n * n, dtype.itemsize)
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
    m = _check.array("m", m, owner="sequency")
    if m.dtype.kind not in "biuf":
        raise _check.ArgumentTypeError(f"sequency expects a real matrix, got dtype {m.dtype}")
    if m.ndim != 2:
        raise ValueError(f"sequency expects a 2-D matrix, got shape {m.shape}")
    s = np.sign(m)
    return np.count_nonzero(s[:, 1:] != s[:, :-1], axis=1).astype(np.int64)
