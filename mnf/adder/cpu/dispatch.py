"""The CPU kernel choice: NumPy in, NumPy out, and every threshold that picks a kernel.

Each threshold sits where the times of two candidate kernels cross; the reasons are in
``book/notes/adder_kernels.md``, the measurements that placed them in the commit history, and
the cases of ``benchmarks/bench_adder.py`` (:mod:`mnf.bench.adder`) measure the layers. Arguments: NumPy arrays of one float dtype (float32 or
float64), any strides, already validated by :func:`mnf.adder.adder2d`; results are new
C-contiguous arrays. Axis letters as in :mod:`mnf.adder.cpu`.
"""
from __future__ import annotations

import numpy as np
import torch

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
            _fwd_dw(x_nchw, _dw_filters(w_kcij), stride, padding, nt, False, y_nkhw)
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
            _gin_dw(x_nchw, _dw_filters(w_kcij), g_nkhw, stride, padding, one, nt, False, dx_nchw)
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
            _gw_dw(x_nchw, w_ijc, g_nkhw, stride, padding, sign, x_nchw.dtype.type(1), False, dw_tijc)
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
        _bwd_dw(x_nchw, w_ijc, g_nkhw, stride, padding, sign, x_nchw.dtype.type(1), False, dx_nchw, dw_tijc, gsum_tc)
    dw_ijc = dw_tijc.sum(0) - w_ijc * gsum_tc.sum(0)  # gsum is 0 for the sign gradient
    return dx_nchw, np.ascontiguousarray(dw_ijc.transpose(2, 0, 1)[:, None])


# Channels last: ``x_nhwc`` (N, H, W, C) in, ``y_nhwk`` (N, OH, OW, O) out, no NCHW round trip.
# Depthwise layers run the band kernels on rows that are already channels last; dense layers the
# kernels of :mod:`.channels_last` on the (padded) input as it is, writing through transposed
# views of channels-last results; the full filter gradient of a 1x1 layer is a matrix product.


def _nhwc_dims(x_nhwc: np.ndarray, w_kcij: np.ndarray, stride: int, padding: int) -> tuple[int, int]:
    return (output_size(x_nhwc.shape[1], w_kcij.shape[2], stride, padding),
            output_size(x_nhwc.shape[2], w_kcij.shape[3], stride, padding))


def _padded(x_nhwc: np.ndarray, p: int) -> np.ndarray:
    return x_nhwc if p == 0 else np.pad(x_nhwc, ((0, 0), (p, p), (p, p), (0, 0)))


def _as_nchw(a_nhwc: np.ndarray) -> np.ndarray:
    return a_nhwc.transpose(0, 3, 1, 2)


def forward_nhwc(x_nhwc: np.ndarray, w_kcij: np.ndarray, stride: int = 1, padding: int = 0,
                 groups: int = 1) -> np.ndarray:
    """:func:`forward` for channels-last images: ``y_nhwk`` (N, OH, OW, O) from ``x_nhwc`` (N, H, W, C)."""
    x_nhwc = np.ascontiguousarray(x_nhwc)
    oh, ow = _nhwc_dims(x_nhwc, w_kcij, stride, padding)
    y_nhwk = _empty((x_nhwc.shape[0], oh, ow, w_kcij.shape[0]), x_nhwc)
    x_nchw = _as_nchw(x_nhwc)
    with _threads(_work(x_nchw, w_kcij, oh, ow) < SERIAL_WORK) as nt:
        if _depthwise(x_nchw, w_kcij, groups):
            _fwd_dw(x_nhwc, _dw_filters(w_kcij), stride, padding, nt, True, y_nhwk)
        elif w_kcij[0].size >= REDUCE_MIN:
            _fwd_dense_regs(_padded(x_nhwc, padding), _grouped(w_kcij, groups, "gkijc"), stride, oh, ow,
                            x_nhwc.dtype.type(0), _as_nchw(y_nhwk))
        else:
            _fwd_dense(_padded(x_nhwc, padding), _grouped(w_kcij, groups, "gijck"), stride, oh, ow, _as_nchw(y_nhwk))
    return y_nhwk


def grad_input_nhwc(x_nhwc: np.ndarray, w_kcij: np.ndarray, g_nhwk: np.ndarray, stride: int = 1, padding: int = 0,
                    groups: int = 1) -> np.ndarray:
    """:func:`grad_input` for channels-last images: ``dx_nhwc`` (N, H, W, C)."""
    x_nhwc, g_nhwk = np.ascontiguousarray(x_nhwc), np.ascontiguousarray(g_nhwk)
    dx_nhwc = _empty(x_nhwc.shape, x_nhwc)
    x_nchw, g_nkhw, one = _as_nchw(x_nhwc), _as_nchw(g_nhwk), x_nhwc.dtype.type(1)
    with _threads(_work(x_nchw, w_kcij, g_nhwk.shape[1], g_nhwk.shape[2]) < SERIAL_WORK) as nt:
        if _depthwise(x_nchw, w_kcij, groups):
            _gin_dw(x_nhwc, _dw_filters(w_kcij), g_nhwk, stride, padding, one, nt, True, dx_nhwc)
        elif w_kcij.shape[0] // groups * w_kcij.shape[2] * w_kcij.shape[3] >= GIN_REDUCE_MIN:
            _gin_dense_regs(_padded(x_nhwc, padding), _grouped(w_kcij, groups, "gcijk"), g_nhwk, stride, padding,
                            one, x_nhwc.dtype.type(0), _as_nchw(dx_nhwc))
        else:
            _gin_dense(_padded(x_nhwc, padding), _grouped(w_kcij, groups, "gijkc"), g_nkhw, stride, padding, one,
                       _as_nchw(dx_nhwc))
    return dx_nhwc


def grad_weight_nhwc(x_nhwc: np.ndarray, w_kcij: np.ndarray, g_nhwk: np.ndarray, stride: int = 1, padding: int = 0,
                     groups: int = 1, sign: bool = False) -> np.ndarray:
    """:func:`grad_weight` for channels-last images and output gradients."""
    x_nhwc, g_nhwk = np.ascontiguousarray(x_nhwc), np.ascontiguousarray(g_nhwk)
    x_nchw, g_nkhw = _as_nchw(x_nhwc), _as_nchw(g_nhwk)
    if w_kcij.shape[2] == w_kcij.shape[3] == 1 and groups == 1 and padding == 0 and not sign:
        # sum g * (x - w) = g^T x - w * sum g over pixels (eq. 3.4): one matrix product, in
        # torch's pool (the one the rest of the step runs in; NumPy's BLAS would add a third)
        xs = np.ascontiguousarray(x_nhwc[:, ::stride, ::stride]).reshape(-1, x_nhwc.shape[3])
        g2 = g_nhwk.reshape(-1, g_nhwk.shape[3])
        gt = torch.from_numpy(g2)
        dw = (gt.T @ torch.from_numpy(xs)).numpy() - w_kcij[:, :, 0, 0] * gt.sum(0).numpy()[:, None]
        return np.ascontiguousarray(dw.reshape(w_kcij.shape))
    with _threads(_work(x_nchw, w_kcij, g_nhwk.shape[1], g_nhwk.shape[2]) < SERIAL_WORK) as nt:
        nt = max(1, min(nt, x_nhwc.shape[0] * g_nhwk.shape[1]))
        if _depthwise(x_nchw, w_kcij, groups):
            w_ijc = _dw_filters(w_kcij)
            dw_tijc = _empty((nt,) + w_ijc.shape, x_nhwc)
            _gw_dw(x_nhwc, w_ijc, g_nhwk, stride, padding, sign, x_nhwc.dtype.type(1), True, dw_tijc)
            return np.ascontiguousarray(dw_tijc.sum(0).transpose(2, 0, 1)[:, None])
        w_gijkc = _grouped(w_kcij, groups, "gijkc")
        dw_tgijkc = _empty((nt,) + w_gijkc.shape, x_nhwc)
        _gw_dense(_padded(x_nhwc, padding), w_gijkc, g_nkhw, stride, sign, x_nhwc.dtype.type(1), dw_tgijkc)
    return np.ascontiguousarray(dw_tgijkc.sum(0).transpose(0, 3, 4, 1, 2).reshape(w_kcij.shape))


def backward_nhwc(x_nhwc: np.ndarray, w_kcij: np.ndarray, g_nhwk: np.ndarray, stride: int = 1, padding: int = 0,
                  groups: int = 1, sign: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """:func:`backward` for channels-last images: ``(dx_nhwc, dw_kcij)``."""
    if not _depthwise(_as_nchw(x_nhwc), w_kcij, groups):
        return (grad_input_nhwc(x_nhwc, w_kcij, g_nhwk, stride, padding, groups),
                grad_weight_nhwc(x_nhwc, w_kcij, g_nhwk, stride, padding, groups, sign))
    x_nhwc, g_nhwk = np.ascontiguousarray(x_nhwc), np.ascontiguousarray(g_nhwk)
    dx_nhwc = _empty(x_nhwc.shape, x_nhwc)
    with _threads(2 * _work(_as_nchw(x_nhwc), w_kcij, g_nhwk.shape[1], g_nhwk.shape[2]) < SERIAL_WORK) as nt:
        w_ijc = _dw_filters(w_kcij)
        nt = max(1, min(nt, x_nhwc.shape[0] * x_nhwc.shape[1]))
        dw_tijc, gsum_tc = _empty((nt,) + w_ijc.shape, x_nhwc), _empty((nt, w_ijc.shape[2]), x_nhwc)
        _bwd_dw(x_nhwc, w_ijc, g_nhwk, stride, padding, sign, x_nhwc.dtype.type(1), True, dx_nhwc, dw_tijc, gsum_tc)
    dw_ijc = dw_tijc.sum(0) - w_ijc * gsum_tc.sum(0)
    return dx_nhwc, np.ascontiguousarray(dw_ijc.transpose(2, 0, 1)[:, None])
