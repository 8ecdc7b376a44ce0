"""Stride-1 dense adder kernels on flat planes.

With the input zero-padded and each channel's plane flattened row by row with one row width
``pitch``, every tap ``(i, j)`` is the constant offset ``i * pitch + j`` into the flat plane, so
a sum over the pixels of a tap is one long contiguous loop (LLVM vectorises such loops; the
channels-last kernels' innermost loops over 16-64 channels are short). The columns past the
output's width are computed too and dropped, or carry zeros. The full-precision filter gradient
uses ``sum g * (x - w) = sum g * x - w * sum g`` (eq. 3.4).

Names: ``x_cf`` / ``g_kf`` are flat planes, (C, N * image + tail) / (O, ...) with image ``b``
from ``b * image`` (``layout._flat``); ``*_raveled`` the same raveled; an underscore inside the
axis letters joins flattened axes (``w_k_cij`` is (O, C/G * kh * kw)). Which kernel runs is
decided in :mod:`.dispatch`; axis letters as in :mod:`mnf.adder.cpu`.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from mnf.adder.cpu.layout import _empty, _flat_planes, _zeros
from mnf.adder.cpu.scalar import _ht

FLAT_CHUNK = 1024  # elements of a flat plane per inner sweep: four gradient rows of 4 KB stay in L1


@njit(parallel=True, cache=True, fastmath={"reassoc", "contract", "nsz"})
def _gw_flat(x_cf, g_kf, pitch, kh, kw, zero, dw_tkcij):
    """dw_tkcij[t, k, c, i, j] = sum over thread t's share of ``q`` of g_kf[k, q] * x_cf[g*Cg + c, q + i*pitch + j].

    ``x_cf``: the input padded and flattened with row width ``pitch``; ``g_kf``: the output
    gradient flattened the same way, (O, N * image), zeros past the output's width and height in
    each image. That is ``sum g * x`` of the full-precision filter gradient: one multiply-add per
    term, four filters sharing every input load, their sums in registers; each thread sweeps its
    share of the positions of all images in chunks of ``FLAT_CHUNK``.
    """
    o, m = g_kf.shape
    nt, cg = dw_tkcij.shape[0], dw_tkcij.shape[2]
    og = o // (x_cf.shape[0] // cg)
    for t in prange(nt):
        acc = _zeros(dw_tkcij.shape[1:], x_cf)  # thread-local: no aliasing with inputs
        for q0 in range(t * m // nt, (t + 1) * m // nt, FLAT_CHUNK):  # gradient rows stay in L1
            q1 = min(q0 + FLAT_CHUNK, (t + 1) * m // nt)
            _gw_flat_chunk(x_cf, g_kf, pitch, kh, kw, zero, q0, q1, og, acc)
        dw_tkcij[t] = acc


@njit(inline="always", cache=True, fastmath={"reassoc", "contract", "nsz"})
def _gw_flat_chunk(x_cf, g_kf, pitch, kh, kw, zero, q0, q1, og, acc_kcij):
    """acc_kcij[k, c, i, j] += sum over q in [q0, q1) of g_kf[k, q] * x_cf[g*Cg + c, q + i*pitch + j]."""
    cg = acc_kcij.shape[1]
    for u in range(g_kf.shape[0] // og * ((og + 3) // 4)):  # blocks of four filters of one group
        g, k0 = u // ((og + 3) // 4), u % ((og + 3) // 4) * 4
        mk = min(4, og - k0)  # past the group's last filter, lanes repeat it
        k0 += g * og
        k1, k2, k3 = k0 + min(1, mk - 1), k0 + min(2, mk - 1), k0 + min(3, mk - 1)
        g0, g1, g2, g3 = g_kf[k0, q0:q1], g_kf[k1, q0:q1], g_kf[k2, q0:q1], g_kf[k3, q0:q1]
        cbase = g * cg
        for c in range(cg):
            for i in range(kh):
                for j in range(kw):
                    xr = x_cf[cbase + c, q0 + i * pitch + j:q1 + i * pitch + j]
                    s0 = s1 = s2 = s3 = zero
                    for q in range(q1 - q0):
                        v = xr[q]
                        s0 += g0[q] * v
                        s1 += g1[q] * v
                        s2 += g2[q] * v
                        s3 += g3[q] * v
                    acc_kcij[k0, c, i, j] += s0
                    if mk > 1:  # repeated lanes (past the group's last filter) add nothing
                        acc_kcij[k1, c, i, j] += s1
                    if mk > 2:
                        acc_kcij[k2, c, i, j] += s2
                    if mk > 3:
                        acc_kcij[k3, c, i, j] += s3


@njit(inline="always", cache=True)
def _four_taps(a, base, off, t, m):
    """The runs ``a[base + off[t + k]:base + off[t + k] + m]``, k < 4: what the four taps of one
    sweep of the flat-plane kernels read."""
    return (a[base + off[t]:base + off[t] + m], a[base + off[t + 1]:base + off[t + 1] + m],
            a[base + off[t + 2]:base + off[t + 2] + m], a[base + off[t + 3]:base + off[t + 3] + m])


@njit(parallel=True, cache=True, fastmath={"reassoc", "nsz"})
def _fwd_flat(x_cf_raveled, off_g_cij, w_k_cij, og, image, pitch, oh, ow, zero, y_nkhw):
    """y_nkhw[b, k, y, x] = -sum_t |x_cf_raveled[q + off_g_cij[k // og, t]] - w_k_cij[k, t]| at
    q = b*image + y*pitch + x.

    ``x_cf_raveled``: the input padded and flattened with row width ``pitch``, raveled; tap
    ``t`` (an input channel of the group and a position ``i, j``) of every output sits at the
    constant offset ``off_g_cij[g, t]``; ``w_k_cij[k, t]`` is filter ``k``'s value there. Work
    units: a filter and a chunk of ``FLAT_CHUNK`` output positions, four taps sharing every load
    and store of the accumulator; columns past ``ow`` and rows past ``oh`` are computed too and
    dropped.
    """
    o, ntap = w_k_cij.shape
    total = y_nkhw.shape[0] * image
    nch = (total + FLAT_CHUNK - 1) // FLAT_CHUNK
    for u in prange(o * nch):
        k, q0 = u // nch, u % nch * FLAT_CHUNK
        m = min(FLAT_CHUNK, total - q0)
        off, f = off_g_cij[k // og], w_k_cij[k]
        acc = _zeros((m,), x_cf_raveled)
        for t in range(0, ntap - 3, 4):
            f0, f1, f2, f3 = f[t], f[t + 1], f[t + 2], f[t + 3]
            x0, x1, x2, x3 = _four_taps(x_cf_raveled, q0, off, t, m)
            for q in range(m):
                acc[q] -= abs(x0[q] - f0) + abs(x1[q] - f1) + abs(x2[q] - f2) + abs(x3[q] - f3)
        for t in range(ntap - ntap % 4, ntap):
            ft, xt = f[t], x_cf_raveled[q0 + off[t]:q0 + off[t] + m]
            for q in range(m):
                acc[q] -= abs(xt[q] - ft)
        b, r = q0 // image, q0 % image  # back to (N, O, OH, OW), one run of a row at a time
        y, x = r // pitch, r % pitch
        start = q0 - x
        while start < q0 + m:
            if y < oh:
                dst = y_nkhw[b, k, y]
                for q in range(max(start, q0), min(start + ow, q0 + m)):
                    dst[q - start] = acc[q - q0]
            start += pitch
            y += 1
            if y * pitch == image:
                y, b = 0, b + 1


@njit(parallel=True, cache=True, fastmath={"reassoc", "contract", "nsz"})
def _gin_flat(x_cf, g_kf_raveled, w_gc_kij, off_g_kij, pitch, one, dx_nchw):
    """dx_nchw[b, c, y', x'] = sum over taps of grad * HardTanh(F - x), on flat planes (stride 1).

    ``x_cf`` (C, N * image): the input flattened with row width ``pitch``, image ``b`` from
    ``b * image``. ``g_kf_raveled``: the output gradient padded by kh-1 rows and kw-1 columns
    and flattened the same way, (O, N * image + tail) raveled, so that tap ``t`` of group ``g``
    (a filter ``k`` and a position ``i, j``) of every pixel sits at the constant offset
    ``off_g_kij[g, t]`` from it; ``w_gc_kij`` (G, C/G, O/G * kh * kw) holds the filter value of
    each tap. Each element sums over the taps of its group, four taps sharing every load and
    store of the accumulator. Work units: chunks of ``FLAT_CHUNK`` elements of the first ``h``
    rows of one image's flat plane (the columns past ``w`` are computed too, and dropped).
    """
    ng, cg, ntap = w_gc_kij.shape
    n, h, w = dx_nchw.shape[0], dx_nchw.shape[2], dx_nchw.shape[3]
    image, plane = x_cf.shape[1] // n, h * pitch
    per_image = (plane + FLAT_CHUNK - 1) // FLAT_CHUNK
    for u in prange(n * per_image):
        b, r0 = u // per_image, u % per_image * FLAT_CHUNK
        m = min(FLAT_CHUNK, plane - r0)
        base = b * image + r0
        acc = _empty((m,), x_cf)
        for c in range(ng * cg):
            g = c // cg
            xr, f, off = x_cf[c, base:base + m], w_gc_kij[g, c - g * cg], off_g_kij[g]
            acc[:] = 0
            for t in range(0, ntap - 3, 4):
                f0, f1, f2, f3 = f[t], f[t + 1], f[t + 2], f[t + 3]
                g0, g1, g2, g3 = _four_taps(g_kf_raveled, base, off, t, m)
                for q in range(m):
                    v = xr[q]
                    acc[q] += (g0[q] * _ht(f0 - v, one) + g1[q] * _ht(f1 - v, one)
                               + g2[q] * _ht(f2 - v, one) + g3[q] * _ht(f3 - v, one))
            for t in range(ntap - ntap % 4, ntap):
                ft, gt = f[t], g_kf_raveled[base + off[t]:base + off[t] + m]
                for q in range(m):
                    acc[q] += gt[q] * _ht(ft - xr[q], one)
            y, x = r0 // pitch, r0 % pitch  # back to (N, C, H, W): only the real pixels
            for q in range(m):
                if x < w:
                    dx_nchw[b, c, y, x] = acc[q]
                x += 1
                if x == pitch:
                    x, y = 0, y + 1


def _flat_input(x_nchw: np.ndarray, kh: int, kw: int, padding: int, nt: int) -> tuple[np.ndarray, int, int]:
    """The zero-padded input as flat planes ``x_cf`` of row width ``pitch = W + 2p``, one image
    every ``image = (H + 2p) * pitch`` elements, with a zero tail for the last taps:
    ``(x_cf, pitch, image)``."""
    pitch = x_nchw.shape[3] + 2 * padding
    image = (x_nchw.shape[2] + 2 * padding) * pitch
    return _flat_planes(x_nchw, padding, padding, pitch, image, (kh - 1) * pitch + kw - 1, nt, "x"), pitch, image


def _fwd_flat_call(x_nchw: np.ndarray, w_kcij: np.ndarray, padding: int, groups: int, nt: int,
                   y_nkhw: np.ndarray) -> None:
    """``y_nkhw`` (N, O, OH, OW) by ``_fwd_flat``: lays out the flat input planes and the tap offsets."""
    o, cg, kh, kw = w_kcij.shape
    x_cf, pitch, image = _flat_input(x_nchw, kh, kw, padding, nt)
    i, j = np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij")
    taps = (np.arange(cg)[:, None] * x_cf.shape[1] + (i * pitch + j).ravel()[None, :]).ravel()
    off_g_cij = np.ascontiguousarray(taps[None, :] + (np.arange(groups) * cg * x_cf.shape[1])[:, None])
    w_k_cij = np.ascontiguousarray(w_kcij.reshape(o, -1))  # the same tap order
    _fwd_flat(x_cf.ravel(), off_g_cij, w_k_cij, o // groups, image, pitch, y_nkhw.shape[2], y_nkhw.shape[3],
              x_nchw.dtype.type(0), y_nkhw)


def _gin_flat_call(x_nchw: np.ndarray, w_kcij: np.ndarray, g_nkhw: np.ndarray, padding: int, groups: int,
                   nt: int, dx_nchw: np.ndarray) -> None:
    """``dx_nchw`` (N, C, H, W) by ``_gin_flat``: lays out the flat planes and the tap offsets."""
    o, cg, kh, kw = w_kcij.shape
    oh, ow = g_nkhw.shape[2], g_nkhw.shape[3]
    pitch = ow + 2 * (kw - 1)                 # >= W + padding + kw - 1: every tap of a pixel fits
    image = (oh + 2 * (kh - 1)) * pitch       # per-image stretch, >= H * pitch
    tail = (padding + kh) * pitch + padding + kw
    x_cf = _flat_planes(x_nchw, 0, 0, pitch, image, 0, nt, "x")
    g_kf = _flat_planes(g_nkhw, kh - 1, kw - 1, pitch, image, tail, nt, "grad")
    og = o // groups
    k, i, j = np.meshgrid(np.arange(og), np.arange(kh), np.arange(kw), indexing="ij")
    # grad[y' + p - i, x' + p - j] sits at (y' + p - i + kh - 1) * pitch + (x' + p - j + kw - 1)
    rel = (k * g_kf.shape[1] + (padding + kh - 1 - i) * pitch + padding + kw - 1 - j).ravel()
    off_g_kij = np.ascontiguousarray(rel[None, :] + (np.arange(groups) * og * g_kf.shape[1])[:, None])
    w_gc_kij = np.ascontiguousarray(w_kcij.reshape(groups, og, cg, kh * kw).transpose(0, 2, 1, 3)
                                    .reshape(groups, cg, -1))
    _gin_flat(x_cf, g_kf.ravel(), w_gc_kij, off_g_kij, pitch, x_nchw.dtype.type(1), dx_nchw)


def _gw_flat_call(x_nchw: np.ndarray, w_kcij: np.ndarray, g_nkhw: np.ndarray, padding: int, nt: int) -> np.ndarray:
    """The full-precision filter gradient (O, C/G, kh, kw) of a stride-1 layer by ``_gw_flat``:
    ``sum g * x - w * sum g`` (eq. 3.4)."""
    kh, kw = w_kcij.shape[2], w_kcij.shape[3]
    x_cf, pitch, image = _flat_input(x_nchw, kh, kw, padding, nt)
    g_kf = _flat_planes(g_nkhw, 0, 0, pitch, image, 0, nt, "grad")  # same layout, zeros past OH x OW
    dw_tkcij = _empty((nt,) + w_kcij.shape, x_nchw)
    _gw_flat(x_cf, g_kf, pitch, kh, kw, x_nchw.dtype.type(0), dw_tkcij)
    # per-image sums along contiguous rows (NumPy sums those pairwise: accurate in float32), then
    # over images: faster than one axis=(0, 2, 3) sum (resnet20 cases of benchmarks/bench_adder.py)
    gsum_k = g_nkhw.reshape(g_nkhw.shape[0], g_nkhw.shape[1], -1).sum(axis=2).sum(axis=0)
    return np.ascontiguousarray(dw_tkcij.sum(0) - w_kcij * gsum_k[:, None, None, None])
