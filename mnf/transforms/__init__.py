"""Walsh-Hadamard transforms: matrices, orderings and fast kernels (NumPy and torch, CPU and CUDA).

Matrices (NumPy): ``hadamard``, ``walsh``, ``dyadic``, ``transform_matrix``; orderings:
``gray_code``, ``bit_reverse``, ``walsh_permutation``, ``dyadic_permutation``, ``sequency``.
Fast transforms (NumPy arrays and differentiable torch tensors): ``fwht``/``ifwht``,
``fwht2d``/``ifwht2d``, ``block_fwht``/``block_ifwht``; all equal ``x @ M.T`` along ``dim`` with
``M = transform_matrix(n, order, normalized)`` (symmetric). ``butterfly_`` is the in-place Numba
kernel for use inside other ``njit`` code. Importing this module compiles nothing.
"""
from mnf.transforms.cpu import butterfly_
from mnf.transforms.fwht import block_fwht, block_ifwht, fwht, fwht2d, ifwht, ifwht2d
from mnf.transforms.orderings import (ORDERS, bit_reverse, dyadic, dyadic_permutation, gray_code,
                                      hadamard, next_power_of_two, sequency, transform_matrix,
                                      walsh, walsh_permutation)

__all__ = [
    "ORDERS", "bit_reverse", "block_fwht", "block_ifwht", "butterfly_", "dyadic",
    "dyadic_permutation", "fwht", "fwht2d", "gray_code", "hadamard", "ifwht", "ifwht2d",
    "next_power_of_two", "sequency", "transform_matrix", "walsh", "walsh_permutation",
]
