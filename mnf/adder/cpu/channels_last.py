"""Dense (and grouped) adder kernels on a zero-padded channels-last copy of the input.

For layers with few pixels or stride > 1: the input is packed once into ``x_nhwc``
(N, H+2p, W+2p, C) and the innermost loops run over channels. Filters are repacked to match:
``w_gijck`` for the forward pass (innermost loop over output channels), ``w_gijkc`` for both
gradients (innermost loop over input channels). Long reductions take the ``_regs`` kernels
instead: four output (or input) channels at a time with their sums in registers, from filters
``w_gkijc`` (forward) or ``w_gcijk`` (input gradient). Which kernel runs is decided in
:mod:`.dispatch`; axis letters as in :mod:`mnf.adder.cpu`.
"""
from numba import njit, prange

from mnf.adder.cpu.layout import _empty, _zeros
from mnf.adder.cpu.scalar import _ht, _sgn, _tap


@njit(parallel=True, cache=True)
def _fwd_dense(x_nhwc, w_gijck, s, oh, ow, y_nkhw):
    """y_nkhw[n, g*Og+k, y, x] = -sum_{i,j,c} |x_nhwc[n, ys+i, xs+j, g*Cg+c] - w_gijck[g, i, j, c, k]|."""
    n = x_nhwc.shape[0]
    ng, kh, kw, cg, og = w_gijck.shape
    for r in prange(n * oh):
        b, y = r // oh, r % oh
        acc = _empty((ow, og), x_nhwc)
        for g in range(ng):
            acc[:] = 0
            for q in range(ow):
                for i in range(kh):
                    for j in range(kw):
                        for c in range(cg):
                            v = x_nhwc[b, y * s + i, q * s + j, g * cg + c]
                            for k in range(og):
                                acc[q, k] += abs(v - w_gijck[g, i, j, c, k])
            for k in range(og):
                for q in range(ow):
                    y_nkhw[b, g * og + k, y, q] = -acc[q, k]


@njit(parallel=True, cache=True, fastmath={"reassoc", "nsz"})
def _fwd_dense_regs(x_nhwc, w_gkijc, s, oh, ow, zero, y_nkhw):
    """The same ``y_nkhw`` as ``_fwd_dense`` from filters ``w_gkijc`` (G, O/G, kh, kw, C/G).

    Each output is a reduction over the contiguous input channels of its window; four output
    channels share every input load and keep their sums in registers (``reassoc`` lets LLVM
    vectorise the reduction, so the order of the additions differs from ``_fwd_dense``).
    """
    n = x_nhwc.shape[0]
    ng, og, kh, kw, cg = w_gkijc.shape
    for r in prange(n * oh):
        b, y = r // oh, r % oh
        for g in range(ng):
            c0 = g * cg
            for k0 in range(0, og, 4):
                m = min(4, og - k0)  # past the last filter, lanes repeat it (same value, same store)
                k1, k2, k3 = k0 + min(1, m - 1), k0 + min(2, m - 1), k0 + min(3, m - 1)
                for q in range(ow):
                    s0 = s1 = s2 = s3 = zero
                    for i in range(kh):
                        for j in range(kw):
                            xr = x_nhwc[b, y * s + i, q * s + j, c0:c0 + cg]
                            w0, w1 = w_gkijc[g, k0, i, j], w_gkijc[g, k1, i, j]
                            w2, w3 = w_gkijc[g, k2, i, j], w_gkijc[g, k3, i, j]
                            for c in range(cg):
                                v = xr[c]
                                s0 += abs(v - w0[c])
                                s1 += abs(v - w1[c])
                                s2 += abs(v - w2[c])
                                s3 += abs(v - w3[c])
                    y_nkhw[b, g * og + k0, y, q] = -s0
                    y_nkhw[b, g * og + k1, y, q] = -s1
                    y_nkhw[b, g * og + k2, y, q] = -s2
                    y_nkhw[b, g * og + k3, y, q] = -s3


@njit(parallel=True, cache=True)
def _gin_dense(x_nhwc, w_gijkc, g_nkhw, s, p, one, dx_nchw):
    """dx_nchw[n, g*Cg+c, y', x'] = sum over taps and k of g_nkhw * HardTanh(w_gijkc[g,i,j,k,c] - x)."""
    n, h, w = dx_nchw.shape[0], dx_nchw.shape[2], dx_nchw.shape[3]
    ng, kh, kw, og, cg = w_gijkc.shape
    oh, ow = g_nkhw.shape[2], g_nkhw.shape[3]
    for r in prange(n * h):
        b, yy = r // h, r % h
        acc = _zeros((w, ng * cg), x_nhwc)
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
                            gv = g_nkhw[b, g * og + k, y, x]
                            if gv == 0:
                                continue
                            for c in range(cg):
                                d = w_gijkc[g, i, j, k, c] - x_nhwc[b, yy + p, q + p, g * cg + c]
                                acc[q, g * cg + c] += gv * _ht(d, one)
        for ch in range(ng * cg):
            for q in range(w):
                dx_nchw[b, ch, yy, q] = acc[q, ch]


@njit(parallel=True, cache=True, fastmath={"reassoc", "nsz"})
def _gin_dense_regs(x_nhwc, w_gcijk, g_nhwk, s, p, one, zero, dx_nchw):
    """The same ``dx_nchw`` as ``_gin_dense`` from filters ``w_gcijk`` (G, C/G, kh, kw, O/G) and
    the output gradient packed channels last, ``g_nhwk`` (N, OH, OW, O).

    Each input-gradient element is a reduction over the output channels of the taps that read
    its pixel; four input channels share every gradient load and keep their sums in registers.
    """
    n, h, w = dx_nchw.shape[0], dx_nchw.shape[2], dx_nchw.shape[3]
    ng, cg, kh, kw, og = w_gcijk.shape
    oh, ow = g_nhwk.shape[1], g_nhwk.shape[2]
    for r in prange(n * h):
        b, yy = r // h, r % h
        for g in range(ng):
            k0 = g * og
            for c0 in range(0, cg, 4):
                m = min(4, cg - c0)  # past the last channel, lanes repeat it (same value, same store)
                ch = g * cg + c0
                c1, c2, c3 = ch + min(1, m - 1), ch + min(2, m - 1), ch + min(3, m - 1)
                for q in range(w):
                    xr = x_nhwc[b, yy + p, q + p]
                    v0, v1, v2, v3 = xr[ch], xr[c1], xr[c2], xr[c3]
                    s0 = s1 = s2 = s3 = zero
                    for i in range(kh):
                        y = _tap(yy + p - i, s, oh)
                        if y < 0:
                            continue
                        for j in range(kw):
                            x = _tap(q + p - j, s, ow)
                            if x < 0:
                                continue
                            gr = g_nhwk[b, y, x, k0:k0 + og]
                            w0, w1 = w_gcijk[g, c0, i, j], w_gcijk[g, c1 - g * cg, i, j]
                            w2, w3 = w_gcijk[g, c2 - g * cg, i, j], w_gcijk[g, c3 - g * cg, i, j]
                            for k in range(og):
                                t = gr[k]
                                s0 += t * _ht(w0[k] - v0, one)
                                s1 += t * _ht(w1[k] - v1, one)
                                s2 += t * _ht(w2[k] - v2, one)
                                s3 += t * _ht(w3[k] - v3, one)
                    dx_nchw[b, ch, yy, q] = s0
                    dx_nchw[b, c1, yy, q] = s1
                    dx_nchw[b, c2, yy, q] = s2
                    dx_nchw[b, c3, yy, q] = s3


@njit(parallel=True, cache=True)
def _gw_dense(x_nhwc, w_gijkc, g_nkhw, s, sign, one, dw_tgijkc):
    """dw_tgijkc[t] = sum over thread t's output rows of g_nkhw * (x - w_gijkc) (or its sign)."""
    n = x_nhwc.shape[0]
    ng, kh, kw, og, cg = w_gijkc.shape
    oh, ow = g_nkhw.shape[2], g_nkhw.shape[3]
    nt = dw_tgijkc.shape[0]
    for t in prange(nt):
        acc = _zeros((ng, kh, kw, og, cg), x_nhwc)  # thread-local: no aliasing with inputs
        for r in range(t * n * oh // nt, (t + 1) * n * oh // nt):
            b, y = r // oh, r % oh
            for q in range(ow):
                for g in range(ng):
                    for i in range(kh):
                        for j in range(kw):
                            for k in range(og):
                                gv = g_nkhw[b, g * og + k, y, q]
                                if gv == 0:
                                    continue
                                if sign:
                                    for c in range(cg):
                                        d = x_nhwc[b, y * s + i, q * s + j, g * cg + c] - w_gijkc[g, i, j, k, c]
                                        acc[g, i, j, k, c] += gv * _sgn(d, one)
                                else:
                                    for c in range(cg):
                                        d = x_nhwc[b, y * s + i, q * s + j, g * cg + c] - w_gijkc[g, i, j, k, c]
                                        acc[g, i, j, k, c] += gv * d
        dw_tgijkc[t] = acc
