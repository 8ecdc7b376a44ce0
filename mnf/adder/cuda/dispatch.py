"""Launching the CUDA adder kernels on Numba device arrays: grid sizes, dtype, stream.

Arguments are Numba CUDA arrays (``numba.cuda.to_device``, or ``numba.cuda.as_cuda_array``
views of torch tensors) of one dtype, float32 or float64, validated by
:func:`mnf.adder.adder2d`. Each function writes into ``out`` if given (else a new device array)
and launches on ``stream`` (0: the default stream); :mod:`mnf.adder.cuda` calls them with torch
tensors' views and torch's current stream, the simulator tests with device arrays.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from mnf.adder.cuda.kernels import (MAX_BLOCKS, THREADS, WARP, forward_kernel, grad_input_kernel,
                                    grad_weight_kernel_f32, grad_weight_kernel_f64)
from mnf.adder.shape import output_size


def _grid(total: int) -> int:
    """Blocks of ``THREADS`` covering ``total`` elements once, at most ``MAX_BLOCKS`` (grid-stride beyond)."""
    return max(1, min(MAX_BLOCKS, math.ceil(total / THREADS)))


def _out(out, shape: tuple[int, ...], like, stream):
    return cuda.device_array(shape, dtype=like.dtype, stream=stream) if out is None else out


def forward(x_nchw, w_kcij, stride: int = 1, padding: int = 0, groups: int = 1, out=None, stream=0):
    """Adder output ``y_nkhw`` (N, O, OH, OW) on the GPU (eq. 3.1)."""
    shape = (x_nchw.shape[0], w_kcij.shape[0], output_size(x_nchw.shape[2], w_kcij.shape[2], stride, padding),
             output_size(x_nchw.shape[3], w_kcij.shape[3], stride, padding))
    y_nkhw = _out(out, shape, x_nchw, stream)
    forward_kernel[_grid(math.prod(shape)), THREADS, stream](x_nchw, w_kcij, stride, padding, groups,
                                                             x_nchw.dtype.type(1), y_nkhw)
    return y_nkhw


def grad_input(x_nchw, w_kcij, g_nkhw, stride: int = 1, padding: int = 0, groups: int = 1, out=None, stream=0):
    """Surrogate input gradient ``dx_nchw`` (N, C, H, W) on the GPU (eq. 3.5-3.6)."""
    dx_nchw = _out(out, tuple(x_nchw.shape), x_nchw, stream)
    grad_input_kernel[_grid(math.prod(x_nchw.shape)), THREADS, stream](x_nchw, w_kcij, g_nkhw, stride, padding,
                                                                       groups, x_nchw.dtype.type(1), dx_nchw)
    return dx_nchw


def grad_weight(x_nchw, w_kcij, g_nkhw, stride: int = 1, padding: int = 0, groups: int = 1, sign: bool = False,
                out=None, stream=0):
    """Filter gradient ``dw_kcij`` (O, C/groups, kh, kw) on the GPU (eq. 3.4, or eq. 3.3 when ``sign``)."""
    kernel = grad_weight_kernel_f32 if x_nchw.dtype == np.float32 else grad_weight_kernel_f64
    # one warp per image, rounded up to a power of two for the tree reduction
    threads = min(THREADS, WARP * 2 ** math.ceil(math.log2(max(1, x_nchw.shape[0]))))
    blocks = max(1, min(MAX_BLOCKS, math.prod(w_kcij.shape)))
    dw_kcij = _out(out, tuple(w_kcij.shape), x_nchw, stream)
    kernel[blocks, threads, stream](x_nchw, w_kcij, g_nkhw, stride, padding, groups, int(sign),
                                    x_nchw.dtype.type(1), dw_kcij)
    return dw_kcij


def backward(x_nchw, w_kcij, g_nkhw, stride: int = 1, padding: int = 0, groups: int = 1, sign: bool = False):
    """``(grad_input(...), grad_weight(...))``: two launches, the two kernels share no work."""
    return (grad_input(x_nchw, w_kcij, g_nkhw, stride, padding, groups),
            grad_weight(x_nchw, w_kcij, g_nkhw, stride, padding, groups, sign))
