"""Scalar ``njit`` helpers the CPU adder kernels share: HardTanh, sign, and the tap index."""
from numba import njit


@njit(cache=True)
def _ht(d, one):
    """HardTanh as two selects (Python's min/max keep NaN rules that stop vectorisation)."""
    d = one if d > one else d
    return -one if d < -one else d


@njit(cache=True)
def _sgn(d, one):
    """sign(d) in d's dtype (float literals would widen float32 arithmetic to float64)."""
    return one if d > 0 else (-one if d < 0 else one - one)


@njit(cache=True)
def _tap(t, s, size):
    """Output index reached by padded input index ``t`` through a tap at stride ``s``, or -1 if
    none (``size`` output rows or columns)."""
    if t < 0 or t % s != 0 or t // s >= size:
        return -1
    return t // s
