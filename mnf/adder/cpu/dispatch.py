"""The CPU kernel choice: NumPy in, NumPy out, and every threshold that picks a kernel.

Each threshold sits where the times of two candidate kernels cross; the measurements behind
them are in ``book/notes/adder_kernels.md`` and the cases of ``benchmarks/bench_adder.py``
(:mod:`mnf.bench.adder`) measure them. Arguments: NumPy arrays of one float dtype (float32 or
float64), any strides, already validated by :func:`mnf.adder.adder2d`; results are new
C-contiguous arrays. Axis letters as in :mod:`mnf.adder.cpu`.
"""
from __future__ import annotations

import numpy as np

from mnf.adder.cpu.channels_last import _fwd_dense, _fwd_dense_regs, _gin_dense, _gin_dense_regs, _gw_dense
from mnf.adder.cpu.depthwise import _bwd_dw, _fwd_dw, _gin_dw, _gw_dw
from mnf.adder.cpu.flat import _fwd_flat_call, _gin_flat_call, _gw_flat_call
from mnf.adder.cpu.layout import _dw_filters, _empty, _grouped, _pack, _threads
from mnf.adder.shape import output_size

# |x - f| terms below which one thread runs a pass: waking the pool costs more than it saves (no
# case of benchmarks/bench_adder.py is that small; mbv2 dw 96ch 16px s2 at batch 8 would measure it).
SERIAL_WORK = 1 << 19
# Reduction length kh * kw * C/G from which the forward pass keeps four sums in registers
# (_fwd_dense_regs) rather than looping over output channels (resnet20 64ch 8px, mbv2 pw 576->96 4px).
REDUCE_MIN = 256
# Reduction length kh * kw * O/G from which the input gradient keeps four sums in registers
# (_gin_dense_regs) rather than looping over input channels (resnet20 64ch 8px, mbv2 pw 576->96 4px).
GIN_REDUCE_MIN = 64
# Output-plane elements OH * (W + 2p) from which a stride-1 forward pass with kernels larger
# than 1x1 runs on flat planes: shorter planes make short loops (resnet20 cases).
FLAT_MIN = 256
# Input-gradient plane elements H * (OW + 2kw - 2) from which a stride-1 input gradient runs on
# flat planes (resnet20 cases, mbv2 pw 32->192 16px, mbv2 pw 576->96 4px).
GIN_FLAT_MIN = 256


def _work(x_nchw: np.ndarray, w_kcij: np.ndarray, oh: int, ow: int) -> int:
    """Number of |x - f| terms of one pass: N * O * OH * OW * (C/groups) * kh * kw."""
    return x_nchw.shape[0] * oh * ow * w_kcij.size


def _depthwise(x_nchw: np.ndarray, w_kcij: np.ndarray, groups: int) -> bool:
    return groups == x_nchw.shape[1] == w_kcij.shape[0]


def forward(x_nchw: np.ndarray, w_kcij: np.ndarray, stride: int = 1, padding: int = 0,
            groups: int = 1) -> np.ndarray:
    """Adder output ``y_nkhw`` (N, O, OH, OW) = -sum |X - F| over each window (eq. 3.1), from
    ``x_nchw`` (N, C, H, W) and ``w_kcij`` (O, C/groups, kh, kw)."""
    x_nchw = np.ascontiguousarray(x_nchw)  # the packing reads x as one flat array
    oh = output_size(x_nchw.shape[2], w_kcij.shape[2], stride, padding)
    ow = output_size(x_nchw.shape[3], w_kcij.shape[3], stride, padding)
    y_nkhw = _empty((x_nchw.shape[0], w_kcij.shape[0], oh, ow), x_nchw)
    with _threads(_work(x_nchw, w_kcij, oh, ow) < SERIAL_WORK) as nt:
        if _depthwise(x_nchw, w_kcij, groups):
            _fwd_dw(x_nchw, _dw_filters(w_kcij), stride, padding, nt, y_nkhw)
        elif (stride == 1 and w_kcij.shape[2] * w_kcij.shape[3] > 1
              and oh * (x_nchw.shape[3] + 2 * padding) >= FLAT_MIN):
            _fwd_flat_call(x_nchw, w_kcij, padding, groups, nt, y_nkhw)
        elif w_kcij[0].size >= REDUCE_MIN:
            _fwd_dense_regs(_pack(x_nchw, padding), _grouped(w_kcij, groups, "gkijc"), stride, oh, ow,
                            x_nchw.dtype.type(0), y_nkhw)
        else:
            _fwd_dense(_pack(x_nchw, padding), _grouped(w_kcij, groups, "gijck"), stride, oh, ow, y_nkhw)
    return y_nkhw


def grad_input(x_nchw: np.ndarray, w_kcij: np.ndarray, g_nkhw: np.ndarray, stride: int = 1, padding: int = 0,
               groups: int = 1) -> np.ndarray:
    """Surrogate input gradient ``dx_nchw`` (N, C, H, W): sum of ``grad * HardTanh(F - X)``
    (eq. 3.5-3.6), ``g_nkhw`` (N, O, OH, OW) the output gradient."""
    x_nchw, g_nkhw = np.ascontiguousarray(x_nchw), np.ascontiguousarray(g_nkhw)
    dx_nchw = _empty(x_nchw.shape, x_nchw)
    one = x_nchw.dtype.type(1)
    with _threads(_work(x_nchw, w_kcij, g_nkhw.shape[2], g_nkhw.shape[3]) < SERIAL_WORK) as nt:
        if _depthwise(x_nchw, w_kcij, groups):
            _gin_dw(x_nchw, _dw_filters(w_kcij), g_nkhw, stride, padding, one, nt, dx_nchw)
        elif stride == 1 and x_nchw.shape[2] * (g_nkhw.shape[3] + 2 * w_kcij.shape[3] - 2) >= GIN_FLAT_MIN:
            _gin_flat_call(x_nchw, w_kcij, g_nkhw, padding, groups, nt, dx_nchw)
        elif w_kcij.shape[0] // groups * w_kcij.shape[2] * w_kcij.shape[3] >= GIN_REDUCE_MIN:
            _gin_dense_regs(_pack(x_nchw, padding), _grouped(w_kcij, groups, "gcijk"), _pack(g_nkhw, 0), stride,
                            padding, one, x_nchw.dtype.type(0), dx_nchw)
        else:
            _gin_dense(_pack(x_nchw, padding), _grouped(w_kcij, groups, "gijkc"), g_nkhw, stride, padding, one,
                       dx_nchw)
    return dx_nchw


def grad_weight(x_nchw: np.ndarray, w_kcij: np.ndarray, g_nkhw: np.ndarray, stride: int = 1, padding: int = 0,
                groups: int = 1, sign: bool = False) -> np.ndarray:
    """Filter gradient ``dw_kcij`` (O, C/groups, kh, kw): sum of ``grad * (X - F)`` (eq. 3.4), or
    of ``grad * sign(X - F)`` (eq. 3.3) when ``sign``."""
    x_nchw, g_nkhw = np.ascontiguousarray(x_nchw), np.ascontiguousarray(g_nkhw)
    with _threads(_work(x_nchw, w_kcij, g_nkhw.shape[2], g_nkhw.shape[3]) < SERIAL_WORK) as nt:
        nt = max(1, min(nt, x_nchw.shape[0] * g_nkhw.shape[2]))  # one partial gradient per thread
        if _depthwise(x_nchw, w_kcij, groups):
            w_ijc = _dw_filters(w_kcij)
            dw_tijc = _empty((nt,) + w_ijc.shape, x_nchw)
            _gw_dw(x_nchw, w_ijc, g_nkhw, stride, padding, sign, x_nchw.dtype.type(1), dw_tijc)
            return np.ascontiguousarray(dw_tijc.sum(0).transpose(2, 0, 1)[:, None])
        if stride == 1 and not sign:  # sum g * (x - w) = sum g * x - w * sum g (eq. 3.4)
            return _gw_flat_call(x_nchw, w_kcij, g_nkhw, padding, nt)
        w_gijkc = _grouped(w_kcij, groups, "gijkc")
        dw_tgijkc = _empty((nt,) + w_gijkc.shape, x_nchw)
        _gw_dense(_pack(x_nchw, padding), w_gijkc, g_nkhw, stride, sign, x_nchw.dtype.type(1), dw_tgijkc)
    # (g, i, j, k, c) -> (g, k, c, i, j) = (O, C/G, kh, kw)
    return np.ascontiguousarray(dw_tgijkc.sum(0).transpose(0, 3, 4, 1, 2).reshape(w_kcij.shape))


def backward(x_nchw: np.ndarray, w_kcij: np.ndarray, g_nkhw: np.ndarray, stride: int = 1, padding: int = 0,
             groups: int = 1, sign: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(grad_input(...), grad_weight(...))`` in one call; depthwise layers share one sweep
    (``_bwd_dw``: the input and output-gradient rows are packed once for both)."""
    if not _depthwise(x_nchw, w_kcij, groups):
        return (grad_input(x_nchw, w_kcij, g_nkhw, stride, padding, groups),
                grad_weight(x_nchw, w_kcij, g_nkhw, stride, padding, groups, sign))
    x_nchw, g_nkhw = np.ascontiguousarray(x_nchw), np.ascontiguousarray(g_nkhw)
    dx_nchw = _empty(x_nchw.shape, x_nchw)
    with _threads(2 * _work(x_nchw, w_kcij, g_nkhw.shape[2], g_nkhw.shape[3]) < SERIAL_WORK) as nt:
        w_ijc = _dw_filters(w_kcij)
        nt = max(1, min(nt, x_nchw.shape[0] * x_nchw.shape[2]))
        dw_tijc, gsum_tc = _empty((nt,) + w_ijc.shape, x_nchw), _empty((nt, w_ijc.shape[2]), x_nchw)
        _bwd_dw(x_nchw, w_ijc, g_nkhw, stride, padding, sign, x_nchw.dtype.type(1), dx_nchw, dw_tijc, gsum_tc)
    dw_ijc = dw_tijc.sum(0) - w_ijc * gsum_tc.sum(0)  # gsum is 0 for the sign gradient
    return dx_nchw, np.ascontiguousarray(dw_ijc.transpose(2, 0, 1)[:, None])
