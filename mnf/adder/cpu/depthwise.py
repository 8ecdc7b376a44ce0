"""Depthwise adder kernels (``groups == C == O``, so output channel ``k`` is input channel ``c``).

No full-size copy at all: each unit of work (an image and a band of ``BAND`` rows) packs just
the input (and output-gradient) rows it needs, channels last and zero padding included, into a
per-thread scratch buffer that stays in cache (``x_hwc``, ``g_hwk``), and writes its results
straight into the output, a band at a time. The images (``x_any``, ``y_any``, ``g_any``,
``dx_any``) are (N, C, H, W), or (N, H, W, C) when ``cl`` (channels last: the rows are then
copied, not transposed). Filters are ``w_ijc`` (kh, kw, C).
Both gradients come from one sweep (``_bwd_dw``); the full-precision filter gradient as
``sum g * X - F * sum g``, whose first sum reuses the input gradient's loads. Axis letters as in
:mod:`mnf.adder.cpu`.
"""
import numpy as np
from numba import njit, prange

from mnf.adder.cpu.layout import _empty, _nchw, _rows, _store, _zeros
from mnf.adder.cpu.scalar import _ht, _sgn, _tap

BAND = 8  # rows per unit of work: the packed rows of a band stay in L1/L2


@njit(cache=True)
def _units(t, nt, n, size):
    """Thread ``t``'s share ``[u0, u1)`` of the ``n * nb`` units (image, band of rows of ``size``)."""
    nb = (size + BAND - 1) // BAND
    return t * n * nb // nt, (t + 1) * n * nb // nt, nb


@njit(cache=True)
def _band(u, nb, size):
    """Image and row range ``[r0, r1)`` of unit ``u`` when each image is cut into ``nb`` bands."""
    b, r0 = u // nb, (u % nb) * BAND
    return b, r0, min(r0 + BAND, size)


@njit(cache=True)
def _fwd_dw_band(x_hwc, w_ijc, s, y0, y1, acc_hwc, cl, b, y_any):
    """Output rows ``[y0, y1)`` of image ``b`` from its packed input rows ``x_hwc``."""
    kh, kw, c = w_ijc.shape
    if kh == 3 and kw == 3:  # MobileNet's 3x3: all nine taps in one sweep over the channels,
        # a[] stored once (mbv2 dw cases of benchmarks/bench_adder.py)
        w0, w1, w2, w3, w4, w5, w6, w7, w8 = (w_ijc[0, 0], w_ijc[0, 1], w_ijc[0, 2], w_ijc[1, 0], w_ijc[1, 1],
                                              w_ijc[1, 2], w_ijc[2, 0], w_ijc[2, 1], w_ijc[2, 2])
        for y in range(y0, y1):
            r0, r1, r2 = x_hwc[(y - y0) * s], x_hwc[(y - y0) * s + 1], x_hwc[(y - y0) * s + 2]
            for q in range(acc_hwc.shape[1]):
                a, j = acc_hwc[y - y0, q], q * s
                x0, x1, x2, x3, x4 = r0[j], r0[j + 1], r0[j + 2], r1[j], r1[j + 1]
                x5, x6, x7, x8 = r1[j + 2], r2[j], r2[j + 1], r2[j + 2]
                for ch in range(c):
                    a[ch] = -(abs(x0[ch] - w0[ch]) + abs(x1[ch] - w1[ch]) + abs(x2[ch] - w2[ch])
                              + abs(x3[ch] - w3[ch]) + abs(x4[ch] - w4[ch]) + abs(x5[ch] - w5[ch])
                              + abs(x6[ch] - w6[ch]) + abs(x7[ch] - w7[ch]) + abs(x8[ch] - w8[ch]))
        _store(acc_hwc[:y1 - y0], cl, b, y0, y_any)
        return
    acc_hwc[:] = 0
    for y in range(y0, y1):
        for q in range(acc_hwc.shape[1]):
            a = acc_hwc[y - y0, q]
            for i in range(kh):
                xrow, wrow = x_hwc[(y - y0) * s + i], w_ijc[i]
                j = 0
                while j + 2 < kw:  # three taps per sweep over the channels: a[] is loaded and
                    # stored once for three terms (the loop was bound by loads and stores)
                    x0, x1, x2 = xrow[q * s + j], xrow[q * s + j + 1], xrow[q * s + j + 2]
                    w0, w1, w2 = wrow[j], wrow[j + 1], wrow[j + 2]
                    for ch in range(c):
                        a[ch] -= abs(x0[ch] - w0[ch]) + abs(x1[ch] - w1[ch]) + abs(x2[ch] - w2[ch])
                    j += 3
                for jj in range(j, kw):
                    xr, wr = xrow[q * s + jj], wrow[jj]
                    for ch in range(c):
                        a[ch] -= abs(xr[ch] - wr[ch])
    _store(acc_hwc[:y1 - y0], cl, b, y0, y_any)


@njit(parallel=True, cache=True)
def _fwd_dw(x_any, w_ijc, s, p, nt, cl, y_any):
    """y_any[n, c, y, x] = -sum_{i,j} |Xp[n, c, ys+i, xs+j] - w_ijc[i, j, c]| (Xp zero padded by p)."""
    n, c, _, w = _nchw(x_any, cl)
    kh = w_ijc.shape[0]
    _, _, oh, ow = _nchw(y_any, cl)
    for t in prange(nt):  # nt from the caller: numba.get_num_threads() here defeats caching
        u0, u1, nb = _units(t, nt, n, oh)
        x_hwc = _empty(((min(BAND, oh) - 1) * s + kh, w + 2 * p, c), x_any)
        acc_hwc = _empty((min(BAND, oh), ow, c), x_any)
        for u in range(u0, u1):
            b, y0, y1 = _band(u, nb, oh)
            rows = x_hwc[:(y1 - y0 - 1) * s + kh]
            _rows(x_any, cl, b, y0 * s - p, p, rows)
            _fwd_dw_band(rows, w_ijc, s, y0, y1, acc_hwc, cl, b, y_any)


@njit(cache=True)
def _gin_dw_band(x_hwc, xrow0, xpad, w_ijc, g_hwk, g0, s, p, oh, ow, r0, r1, one, acc_hwc, dw_ijc, fuse, cl,
                 b, dx_any):
    """Input-gradient rows ``[r0, r1)`` of image ``b``: a gather over the taps that read them,
    from the packed input rows ``x_hwc`` (input pixel ``(y', x')`` at
    ``x_hwc[y' - xrow0, x' + xpad]``) and output-gradient rows ``g_hwk`` (from row ``g0``) of an
    output of ``oh`` x ``ow``. If ``fuse``, also ``dw_ijc[i, j, c] += grad * X`` over the same
    (pixel, tap) pairs: over all bands these are all pairs of an output pixel and a tap that
    reads a real (not padding) pixel, exactly once, so ``sum grad * X`` of the filter gradient
    comes from the loads the input gradient makes anyway (padding adds 0 to it)."""
    kh, kw, c = w_ijc.shape
    w = acc_hwc.shape[1]
    # output column reached from column q through tap column j, or -1: a table, so the loops
    # below visit only the taps that reach an output (mbv2 dw 96ch 16px s2 of benchmarks/bench_adder.py)
    cols = np.full((w, kw), -1, np.int64)
    for q in range(w):
        for j in range(kw):
            cols[q, j] = _tap(q + p - j, s, ow)
    acc_hwc[:] = 0
    for yy in range(r0, r1):
        for i in range((yy + p) % s, kh, s):
            y = (yy + p - i) // s
            if y < 0 or y >= oh:
                continue
            grow, wrow, garow = g_hwk[y - g0], w_ijc[i], dw_ijc[i] if fuse else w_ijc[i]  # garow: if fuse
            for q in range(w):
                a, xr = acc_hwc[yy - r0, q], x_hwc[yy - xrow0, q + xpad]
                for j in range(kw):
                    if cols[q, j] < 0:
                        continue
                    gr, wr = grow[cols[q, j]], wrow[j]
                    if fuse:  # one tap per sweep: with two, LLVM does not vectorise the loop
                        ga = garow[j]
                        for ch in range(c):
                            gv, xv = gr[ch], xr[ch]
                            a[ch] += gv * _ht(wr[ch] - xv, one)
                            ga[ch] += gv * xv
                    else:
                        for ch in range(c):
                            a[ch] += gr[ch] * _ht(wr[ch] - xr[ch], one)
    _store(acc_hwc[:r1 - r0], cl, b, r0, dx_any)


@njit(parallel=True, cache=True)
def _gin_dw(x_any, w_ijc, g_any, s, p, one, nt, cl, dx_any):
    """dx_any[n, c, y', x'] = sum over the taps (i, j) that read (y', x') of grad * HardTanh(w_ijc - x).
    A gather over input rows, so no two threads write the same element."""
    n, c, h, w = _nchw(x_any, cl)
    kh = w_ijc.shape[0]
    _, _, oh, ow = _nchw(g_any, cl)
    for t in prange(nt):
        u0, u1, nb = _units(t, nt, n, h)
        g_hwk = _empty((min(BAND, h) // s + kh, ow, c), x_any)
        x_hwc = _empty((min(BAND, h), w, c), x_any)
        acc_hwc = _empty((min(BAND, h), w, c), x_any)
        for u in range(u0, u1):
            b, r0, r1 = _band(u, nb, h)
            g0 = max(0, -((kh - 1 - r0 - p) // s))  # first output row whose window reaches r0
            g1 = max(g0, min(oh, (r1 - 1 + p) // s + 1))  # one past the last reaching r1 - 1
            _rows(g_any, cl, b, g0, 0, g_hwk[:g1 - g0])
            _rows(x_any, cl, b, r0, 0, x_hwc[:r1 - r0])
            _gin_dw_band(x_hwc, r0, 0, w_ijc, g_hwk, g0, s, p, oh, ow, r0, r1, one, acc_hwc,
                         _empty((0, 0, c), x_any), False, cl, b, dx_any)


@njit(cache=True)
def _gw_dw_band(x_hwc, w_ijc, g_hwk, s, sign, one, dw_ijc):
    """dw_ijc[i, j, c] += grad * (Xp - w_ijc) (or its sign) over packed rows ``x_hwc`` / ``g_hwk``."""
    kh, kw, c = w_ijc.shape
    for y in range(g_hwk.shape[0]):
        for q in range(g_hwk.shape[1]):
            gr = g_hwk[y, q]
            for i in range(kh):
                for j in range(kw):
                    xr, wr, a = x_hwc[y * s + i, q * s + j], w_ijc[i, j], dw_ijc[i, j]
                    if sign:
                        for ch in range(c):
                            a[ch] += gr[ch] * _sgn(xr[ch] - wr[ch], one)
                    else:
                        for ch in range(c):
                            a[ch] += gr[ch] * (xr[ch] - wr[ch])


@njit(parallel=True, cache=True)
def _gw_dw(x_any, w_ijc, g_any, s, p, sign, one, cl, dw_tijc):
    """dw_tijc[t, i, j, c] = sum over thread t's bands of grad * (Xp - w_ijc) (or its sign)."""
    n, c, _, w = _nchw(x_any, cl)
    kh, kw = w_ijc.shape[0], w_ijc.shape[1]
    _, _, oh, ow = _nchw(g_any, cl)
    nt = dw_tijc.shape[0]
    for t in prange(nt):
        u0, u1, nb = _units(t, nt, n, oh)
        x_hwc = _empty(((min(BAND, oh) - 1) * s + kh, w + 2 * p, c), x_any)
        g_hwk = _empty((min(BAND, oh), ow, c), x_any)
        acc_ijc = _zeros((kh, kw, c), x_any)  # private to the thread: no atomics, no false sharing
        for u in range(u0, u1):
            b, y0, y1 = _band(u, nb, oh)
            rows = x_hwc[:(y1 - y0 - 1) * s + kh]
            _rows(x_any, cl, b, y0 * s - p, p, rows)
            _rows(g_any, cl, b, y0, 0, g_hwk[:y1 - y0])
            _gw_dw_band(rows, w_ijc, g_hwk[:y1 - y0], s, sign, one, acc_ijc)
        dw_tijc[t] = acc_ijc


@njit(parallel=True, cache=True)
def _bwd_dw(x_any, w_ijc, g_any, s, p, sign, one, cl, dx_any, dw_tijc, gsum_tc):
    """Both depthwise gradients in one sweep: ``dx_any`` as ``_gin_dw``; ``dw_tijc[t]`` and
    ``gsum_tc[t]`` thread ``t``'s share of the filter gradient.

    Each unit (an image and a band of input rows, as in ``_gin_dw``) packs its input rows and
    output-gradient rows once and computes the input gradient of its rows. Full-precision filter
    gradient (eq. 3.4) as ``sum grad * X - F * sum grad``: ``dw_tijc`` gets ``sum grad * X``
    within the input-gradient sweep (``fuse``), ``gsum_tc`` the sum of the output rows ``y``
    whose row ``min(y * s, H - 1)`` lies in the unit's band (so every output row is counted
    exactly once). Sign filter gradient (eq. 3.3): ``dw_tijc`` gets ``_gw_dw_band`` of those
    rows (the input rows then include the padding and the rows those output rows read),
    ``gsum_tc`` stays 0.
    """
    n, c, h, w = _nchw(x_any, cl)
    kh, kw = w_ijc.shape[0], w_ijc.shape[1]
    _, _, oh, ow = _nchw(g_any, cl)
    nt = dw_tijc.shape[0]
    for t in prange(nt):
        u0, u1, nb = _units(t, nt, n, h)
        acc_hwc = _empty((min(BAND, h), w, c), x_any)
        dw_ijc = _zeros((kh, kw, c), x_any)  # private to the thread: no atomics
        gsum_c = _zeros((c,), x_any)
        for u in range(u0, u1):
            b, r0, r1 = _band(u, nb, h)
            g0 = max(0, -((kh - 1 - r0 - p) // s))  # output rows reaching rows r0 .. r1 - 1
            g1 = max(g0, min(oh, (r1 - 1 + p) // s + 1))
            ya = min(oh, (r0 + s - 1) // s)  # output rows whose filter gradient this unit adds
            yb = oh if r1 == h else min(oh, (r1 + s - 1) // s)
            glo, ghi = (min(g0, ya), max(g1, yb)) if yb > ya else (g0, g1)
            xlo, xhi, xpad = r0, r1, 0
            if sign and yb > ya:
                xlo, xhi, xpad = min(r0, ya * s - p), max(r1, (yb - 1) * s - p + kh), p
            g_hwk = _empty((ghi - glo, ow, c), x_any)
            x_hwc = _empty((xhi - xlo, w + 2 * xpad, c), x_any)
            _rows(g_any, cl, b, glo, 0, g_hwk)
            _rows(x_any, cl, b, xlo, xpad, x_hwc)
            _gin_dw_band(x_hwc, xlo, xpad, w_ijc, g_hwk, glo, s, p, oh, ow, r0, r1, one, acc_hwc, dw_ijc,
                         not sign, cl, b, dx_any)
            if sign and yb > ya:
                _gw_dw_band(x_hwc[ya * s - p - xlo:], w_ijc, g_hwk[ya - glo:yb - glo], s, sign, one, dw_ijc)
            elif yb > ya:
                for y in range(ya - glo, yb - glo):
                    for q in range(ow):
                        gr = g_hwk[y, q]
                        for ch in range(c):
                            gsum_c[ch] += gr[ch]
        dw_tijc[t] = dw_ijc
        gsum_tc[t] = gsum_c
