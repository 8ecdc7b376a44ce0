"""Numba CPU kernels for the adder convolution (same contracts as :mod:`mnf.adder.reference`).

Layout: the input is packed once into a zero-padded channels-last copy ``xp`` (N, H+2p, W+2p, C),
so every innermost loop walks contiguous memory and LLVM vectorises it. Nothing of size
(C*kh*kw, N*L) is ever built; the only scratch is one output row per thread and, for the filter
gradient, one partial filter gradient per thread. Two kernel families:

- *dense* (any ``groups`` with more than one channel per group): filters are repacked
  ``(G, kh, kw, C/G, O/G)`` for the forward pass (innermost loop over output channels) and
  ``(G, kh, kw, O/G, C/G)`` for both gradients (innermost loop over input channels).
- *depthwise* (``groups == C == O``): filters ``(kh, kw, C)``; innermost loop over channels.

Rows ``(n, y)`` of the output (forward, filter gradient) or of the input (input gradient, a
gather so no two threads write the same element) are spread over threads with ``prange``.
All functions take NumPy arrays of one float dtype (float32 or float64), any strides, already
validated by :func:`mnf.adder.adder2d`; they return new C-contiguous arrays.
"""
import numba
import numpy as np
from numba import njit, prange


@njit(cache=True)
def _pack(x, p):
    """(N, C, H, W) any strides -> zero-padded channels-last (N, H+2p, W+2p, C). Serial: it is
    memory bound, and a parallel region costs more than it saves on a busy machine."""
    n, c, h, w = x.shape
    out = np.zeros((n, h + 2 * p, w + 2 * p, c), x.dtype)
    for r in range(n * h):
        b, y = r // h, r % h
        for q in range(w):
            for ch in range(c):
                out[b, y + p, q + p, ch] = x[b, ch, y, q]
    return out


@njit(parallel=True, cache=True)
def _fwd_dense(xp, wt, s, oh, ow, out):
    """out[n, g*Og+k, y, x] = -sum_{i,j,c} |xp[n, ys+i, xs+j, g*Cg+c] - wt[g, i, j, c, k]|."""
    n = xp.shape[0]
    ng, kh, kw, cg, og = wt.shape
    for r in prange(n * oh):
        b, y = r // oh, r % oh
        acc = np.empty((ow, og), xp.dtype)
        for g in range(ng):
            acc[:] = 0
            for q in range(ow):
                for i in range(kh):
                    for j in range(kw):
                        for c in range(cg):
                            v = xp[b, y * s + i, q * s + j, g * cg + c]
                            for k in range(og):
                                acc[q, k] += abs(v - wt[g, i, j, c, k])
            for k in range(og):
                for q in range(ow):
                    out[b, g * og + k, y, q] = -acc[q, k]


@njit(parallel=True, cache=True)
def _fwd_dw(xp, wd, s, oh, ow, out):
    """Depthwise: out[n, c, y, x] = -sum_{i,j} |xp[n, ys+i, xs+j, c] - wd[i, j, c]|."""
    n, c = xp.shape[0], xp.shape[3]
    kh, kw = wd.shape[0], wd.shape[1]
    for r in prange(n * oh):
        b, y = r // oh, r % oh
        acc = np.zeros((ow, c), xp.dtype)
        for q in range(ow):
            for i in range(kh):
                for j in range(kw):
                    for ch in range(c):
                        acc[q, ch] += abs(xp[b, y * s + i, q * s + j, ch] - wd[i, j, ch])
        for ch in range(c):
            for q in range(ow):
                out[b, ch, y, q] = -acc[q, ch]


@njit(cache=True)
def _tap(t, s, size):
    """Output index reached by padded input index ``t`` through a tap, or -1 if none."""
    if t < 0 or t % s != 0 or t // s >= size:
        return -1
    return t // s


@njit(parallel=True, cache=True)
def _gin_dense(xp, wb, grad, s, p, one, dx):
    """dx[n, g*Cg+c, y', x'] = sum over taps and k of grad * HardTanh(wb[g,i,j,k,c] - x)."""
    n, h, w, _ = dx.shape[0], dx.shape[2], dx.shape[3], 0
    ng, kh, kw, og, cg = wb.shape
    oh, ow = grad.shape[2], grad.shape[3]
    for r in prange(n * h):
        b, yy = r // h, r % h
        acc = np.zeros((w, ng * cg), xp.dtype)
        for q in range(w):
            for i in range(kh):
                y = _tap(yy + p - i, s, oh)
                if y < 0:
                    continue
                for j in range(kw):
                    x = _tap(q + p - j, s, ow)
                    if x < 0:
                        continue
                    for g in range(ng):
                        for k in range(og):
                            gv = grad[b, g * og + k, y, x]
                            if gv == 0:
                                continue
                            for c in range(cg):
                                d = wb[g, i, j, k, c] - xp[b, yy + p, q + p, g * cg + c]
                                acc[q, g * cg + c] += gv * _ht(d, one)
        for ch in range(ng * cg):
            for q in range(w):
                dx[b, ch, yy, q] = acc[q, ch]


@njit(parallel=True, cache=True)
def _gin_dw(xp, wd, gt, s, p, one, dx):
    """Depthwise input gradient; ``gt`` is the output gradient channels-last (N, OH, OW, C)."""
    n, c, h, w = dx.shape
    kh, kw = wd.shape[0], wd.shape[1]
    oh, ow = gt.shape[1], gt.shape[2]
    for r in prange(n * h):
        b, yy = r // h, r % h
        acc = np.zeros((w, c), xp.dtype)
        for q in range(w):
            for i in range(kh):
                y = _tap(yy + p - i, s, oh)
                if y < 0:
                    continue
                for j in range(kw):
                    x = _tap(q + p - j, s, ow)
                    if x < 0:
                        continue
                    for ch in range(c):
                        d = wd[i, j, ch] - xp[b, yy + p, q + p, ch]
                        acc[q, ch] += gt[b, y, x, ch] * _ht(d, one)
        for ch in range(c):
            for q in range(w):
                dx[b, ch, yy, q] = acc[q, ch]


@njit(cache=True)
def _ht(d, one):
    """HardTanh as two selects (Python's min/max keep NaN rules that stop vectorisation)."""
    d = one if d > one else d
    return -one if d < -one else d


@njit(cache=True)
def _sgn(d, one):
    return 1.0 if d > 0 else (-1.0 if d < 0 else 0.0)


@njit(parallel=True, cache=True)
def _gw_dense(xp, wb, grad, s, sign, one, part):
    """part[t, g, i, j, k, c] = sum over thread t's output rows of grad * (x - w) (or its sign)."""
    n = xp.shape[0]
    ng, kh, kw, og, cg = wb.shape
    oh, ow = grad.shape[2], grad.shape[3]
    nt = part.shape[0]
    for t in prange(nt):
        acc = np.zeros((ng, kh, kw, og, cg), xp.dtype)  # thread-local: no aliasing with inputs
        for r in range(t * n * oh // nt, (t + 1) * n * oh // nt):
            b, y = r // oh, r % oh
            for q in range(ow):
                for g in range(ng):
                    for i in range(kh):
                        for j in range(kw):
                            for k in range(og):
                                gv = grad[b, g * og + k, y, q]
                                if gv == 0:
                                    continue
                                if sign:
                                    for c in range(cg):
                                        d = xp[b, y * s + i, q * s + j, g * cg + c] - wb[g, i, j, k, c]
                                        acc[g, i, j, k, c] += gv * _sgn(d, one)
                                else:
                                    for c in range(cg):
                                        d = xp[b, y * s + i, q * s + j, g * cg + c] - wb[g, i, j, k, c]
                                        acc[g, i, j, k, c] += gv * d
        part[t] = acc


@njit(parallel=True, cache=True)
def _gw_dw(xp, wd, gt, s, sign, one, part):
    """Depthwise filter gradient partials part[t, i, j, c]; ``gt`` channels-last (N, OH, OW, C)."""
    n, c = xp.shape[0], xp.shape[3]
    kh, kw = wd.shape[0], wd.shape[1]
    oh, ow = gt.shape[1], gt.shape[2]
    nt = part.shape[0]
    for t in prange(nt):
        acc = np.zeros((kh, kw, c), xp.dtype)  # thread-local: no aliasing with inputs
        for r in range(t * n * oh // nt, (t + 1) * n * oh // nt):
            b, y = r // oh, r % oh
            for q in range(ow):
                for i in range(kh):
                    for j in range(kw):
                        if sign:
                            for ch in range(c):
                                d = xp[b, y * s + i, q * s + j, ch] - wd[i, j, ch]
                                acc[i, j, ch] += gt[b, y, q, ch] * _sgn(d, one)
                        else:
                            for ch in range(c):
                                d = xp[b, y * s + i, q * s + j, ch] - wd[i, j, ch]
                                acc[i, j, ch] += gt[b, y, q, ch] * d
        part[t] = acc


def _sizes(x, w, stride, padding):
    oh = (x.shape[2] + 2 * padding - w.shape[2]) // stride + 1
    ow = (x.shape[3] + 2 * padding - w.shape[3]) // stride + 1
    return oh, ow


def _depthwise(x, w, groups):
    return groups == x.shape[1] == w.shape[0]


def _grouped(w, groups, order):
    """Filters (O, Cg, kh, kw) -> (G, kh, kw, *) with the last two axes in ``order``."""
    o, cg, kh, kw = w.shape
    wg = w.reshape(groups, o // groups, cg, kh, kw)  # axes g, k, c, i, j
    axes = (0, 3, 4, 2, 1) if order == "ck" else (0, 3, 4, 1, 2)
    return np.ascontiguousarray(wg.transpose(axes))


def forward(x, w, stride=1, padding=0, groups=1):
    """Adder output ``Y`` (N, O, OH, OW) = -sum |X - F| over each window (eq. 3.1)."""
    oh, ow = _sizes(x, w, stride, padding)
    xp = _pack(x, padding)
    out = np.empty((x.shape[0], w.shape[0], oh, ow), x.dtype)
    if _depthwise(x, w, groups):
        _fwd_dw(xp, np.ascontiguousarray(w[:, 0].transpose(1, 2, 0)), stride, oh, ow, out)
    else:
        _fwd_dense(xp, _grouped(w, groups, "ck"), stride, oh, ow, out)
    return out


def grad_input(x, w, grad, stride=1, padding=0, groups=1):
    """Surrogate input gradient (N, C, H, W): sum of ``grad * HardTanh(F - X)`` (eq. 3.5-3.6)."""
    xp = _pack(x, padding)
    dx = np.empty(x.shape, x.dtype)
    if _depthwise(x, w, groups):
        gt = _pack(grad, 0)
        _gin_dw(xp, np.ascontiguousarray(w[:, 0].transpose(1, 2, 0)), gt, stride, padding, x.dtype.type(1), dx)
    else:
        _gin_dense(xp, _grouped(w, groups, "kc"), grad, stride, padding, x.dtype.type(1), dx)
    return dx


def grad_weight(x, w, grad, stride=1, padding=0, groups=1, sign=False):
    """Filter gradient (O, C/groups, kh, kw): sum of ``grad * (X - F)`` (eq. 3.4), or of
    ``grad * sign(X - F)`` (eq. 3.3) when ``sign``."""
    xp = _pack(x, padding)
    nt = max(1, min(numba.get_num_threads(), x.shape[0] * grad.shape[2]))
    if _depthwise(x, w, groups):
        wd = np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))
        part = np.empty((nt,) + wd.shape, x.dtype)
        _gw_dw(xp, wd, _pack(grad, 0), stride, sign, x.dtype.type(1), part)
        return np.ascontiguousarray(part.sum(0).transpose(2, 0, 1)[:, None])
    wb = _grouped(w, groups, "kc")
    part = np.empty((nt,) + wb.shape, x.dtype)
    _gw_dense(xp, wb, grad, stride, sign, x.dtype.type(1), part)
    g, kh, kw, og, cg = wb.shape  # axes g, i, j, k, c -> (g, k, c, i, j)
    return np.ascontiguousarray(part.sum(0).transpose(0, 3, 4, 1, 2).reshape(w.shape))
