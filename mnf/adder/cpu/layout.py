"""Memory layout for the CPU adder kernels: aligned buffers, NCHW <-> channels-last packing, flat
planes and their per-thread scratch, filter repacking, and the thread-count policy.

Array names spell their axis order (see :mod:`mnf.adder.cpu`). Everything here is called by the
kernels of :mod:`.channels_last`, :mod:`.flat` and :mod:`.depthwise` or by :mod:`.dispatch`.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numba
import numpy as np
from numba import njit, prange

from mnf.simd import transpose8

# Scratch and result arrays start on a cache line: Numba aligns to 32 bytes and NumPy to 16, so
# half of the 64-byte (AVX-512) accesses would straddle two lines (mbv2 dw cases of
# benchmarks/bench_adder.py).
ALIGN = 64


@njit(cache=True)
def _aligned(shape, dtype_of):
    """A 1-D buffer of ``prod(shape)`` elements of ``dtype_of.dtype`` starting on an
    ``ALIGN``-byte boundary (a view into a slightly larger buffer)."""
    n = 1
    for d in shape:
        n *= d
    k = ALIGN // dtype_of.itemsize
    buf = np.empty(n + k, dtype_of.dtype)
    s = (k - buf.ctypes.data % ALIGN // dtype_of.itemsize) % k
    return buf[s:s + n]


@njit(cache=True)
def _empty(shape, dtype_of):
    """``np.empty(shape, dtype_of.dtype)``, C-contiguous, starting on an ``ALIGN``-byte boundary."""
    return _aligned(shape, dtype_of).reshape(shape)


@njit(cache=True)
def _zeros(shape, dtype_of):
    """``np.zeros(shape, dtype_of.dtype)``, C-contiguous, starting on an ``ALIGN``-byte boundary."""
    flat = _aligned(shape, dtype_of)
    _zero(flat)
    return flat.reshape(shape)


@njit(inline="always", cache=True)
def _zero(v):
    """v[:] = 0 for a 1-D view, as a plain loop (LLVM makes it a memset): Numba's slice
    assignment costs more than packing a whole row."""
    for k in range(v.shape[0]):
        v[k] = 0


@njit(inline="always", cache=True)
def _pixels_one_by_one(a_flat, a0, hw, c, cl_flat, ch, k0, m, w, pitch, to_cl):
    """Pixels ``k0 .. m - 1`` of channel ``ch`` as in ``_pixels``, one element at a time, a row
    at a time (one division per row, not per pixel: small-C packing is division bound)."""
    k = k0
    while k < m:
        q = k % w
        n = min(w - q, m - k)
        src, dst = a0 + ch * hw + k, ((k // w) * pitch + q) * c + ch
        for i in range(n):
            if to_cl:
                cl_flat[dst + i * c] = a_flat[src + i]
            else:
                a_flat[src + i] = cl_flat[dst + i * c]
        k += n


@njit(inline="always", cache=True)
def _pixels(a_flat, a0, hw, c, cl_flat, m, w, pitch, to_cl):
    """Move ``m`` pixels of one image between channel-first and channels-last layouts:
    ``cl_flat[pos(k) * c + ch] = a_flat[a0 + ch * hw + k]`` if ``to_cl``, else the reverse
    (``k < m``, ``ch < c``; ``a_flat`` flat NCHW, ``a0`` the first pixel).
    ``pos(k) = (k // w) * pitch + k % w``: with ``pitch = w`` one run of pixels, with
    ``pitch > w`` rows of ``w`` pixels ``pitch`` apart (room for padding; ``w`` must then be a
    multiple of 8, so that no 8x8 block spans two rows). Blocks run across rows where they can,
    so narrow images (rows of 4 pixels) still fill whole blocks, and the source is read as a few
    long streams (the NCHW side is the strided one)."""
    c8, m8 = c - c % 8, m - m % 8
    if c8 == 0 or m8 == 0:  # no whole block: a loop of its own (the shared leftover loop below
        # does not vectorise for rows of 4 pixels)
        for ch in range(c):
            _pixels_one_by_one(a_flat, a0, hw, c, cl_flat, ch, 0, m, w, pitch, to_cl)
        return
    step, rows = (m8, 1) if pitch == w else (w, m // w)  # blocks per stretch of pixels that
    for c0 in range(0, c8, 8):  # stay together; channel blocks outermost: long NCHW streams
        for r in range(rows):
            for q0 in range(0, step, 8):
                k0, o0 = r * w + q0, (r * pitch + q0) * c
                if to_cl:
                    transpose8(a_flat, a0 + c0 * hw + k0, hw, cl_flat, o0 + c0, c)
                else:
                    transpose8(cl_flat, o0 + c0, c, a_flat, a0 + c0 * hw + k0, hw)
    for ch in range(c):  # the leftover pixels of the blocked channels, then the other channels
        _pixels_one_by_one(a_flat, a0, hw, c, cl_flat, ch, m8 if ch < c8 else 0, m, w, pitch, to_cl)


@njit(cache=True)
def _pack(x_nchw, p):
    """(N, C, H, W) C-contiguous -> ``x_nhwc``, zero-padded channels last (N, H+2p, W+2p, C).
    Serial: it is memory bound, and a parallel region costs more than it saves on a busy machine."""
    n, c, h, w = x_nchw.shape
    x_nhwc = _empty((n, h + 2 * p, w + 2 * p, c), x_nchw)
    for b in range(n):
        _rows_cl(x_nchw, b, -p, p, x_nhwc[b])
    return x_nhwc


@njit(cache=True)
def _rows_cl(a_nchw, b, r0, p, out_hwc):
    """Rows ``r0 ..`` of image ``b`` of ``a_nchw`` channels last into ``out_hwc`` (R, W+2p, C):
    ``out_hwc[r, p+q, c] = a_nchw[b, c, r0+r, q]``; padding columns and rows outside ``[0, H)``
    are zero."""
    c, h, w = a_nchw.shape[1], a_nchw.shape[2], a_nchw.shape[3]
    lo, hi = max(r0, 0), min(r0 + out_hwc.shape[0], h)
    of, rw = out_hwc.ravel(), out_hwc.shape[1] * c  # rw: elements per packed row
    for r in range(out_hwc.shape[0]):  # zero rows outside the image, and the padding columns
        if r0 + r < lo or r0 + r >= hi:
            _zero(of[r * rw:(r + 1) * rw])
        elif p > 0:
            _zero(of[r * rw:r * rw + p * c])
            _zero(of[r * rw + (p + w) * c:(r + 1) * rw])
    if hi <= lo:
        return
    if c < 8:  # no 8x8 block: element by element, row by row (cheaper than _pixels' general
        # loop; a 3-channel stem layer would measure it)
        for r in range(lo - r0, hi - r0):
            for ch in range(c):
                src = a_nchw[b, ch, r0 + r]
                for q in range(w):
                    out_hwc[r, p + q, ch] = src[q]
        return
    a0, start = (b * c * h + lo) * w, (lo - r0) * rw + p * c
    if p == 0 or w % 8 == 0:  # whole blocks within rows: straight into the padded rows
        _pixels(a_nchw.ravel(), a0, h * w, c, of[start:], (hi - lo) * w, w, w + 2 * p, True)
        return
    run = _empty(((hi - lo) * w * c,), a_nchw)  # else blocks across rows into a scratch run,
    _pixels(a_nchw.ravel(), a0, h * w, c, run, (hi - lo) * w, w, w, True)  # then row by row
    for r in range(hi - lo):
        src, dst = run[r * w * c:(r + 1) * w * c], of[start + r * rw:]
        for k in range(w * c):
            dst[k] = src[k]


@njit(cache=True)
def _store_rows(acc_hwc, b, y0, out_nchw):
    """out_nchw[b, c, y0 + r, q] = acc_hwc[r, q, c]: channels-last rows (R, W, C), C-contiguous,
    back to (N, C, H, W); the rows are one run of pixels in both layouts."""
    c, h, w = out_nchw.shape[1], out_nchw.shape[2], out_nchw.shape[3]
    if c < 8:  # as in _rows_cl
        for r in range(acc_hwc.shape[0]):
            for ch in range(c):
                dst = out_nchw[b, ch, y0 + r]
                for q in range(w):
                    dst[q] = acc_hwc[r, q, ch]
        return
    _pixels(out_nchw.ravel(), (b * c * h + y0) * w, h * w, c, acc_hwc.ravel(), acc_hwc.shape[0] * w, w, w,
            False)


@njit(inline="always", cache=True)
def _nchw(a, cl):
    """``(N, C, H, W)`` of an image array that is (N, C, H, W), or (N, H, W, C) when ``cl``."""
    if cl:
        return a.shape[0], a.shape[3], a.shape[1], a.shape[2]
    return a.shape[0], a.shape[1], a.shape[2], a.shape[3]


@njit(cache=True)
def _rows(a, cl, b, r0, p, out_hwc):
    """:func:`_rows_cl` of ``a`` (N, C, H, W), or of ``a`` (N, H, W, C) when ``cl``: then the
    rows are already channels last and are copied (padding zeroed as there)."""
    if not cl:
        _rows_cl(a, b, r0, p, out_hwc)
        return
    h, w, c = a.shape[1], a.shape[2], a.shape[3]
    for r in range(out_hwc.shape[0]):
        o = out_hwc[r]
        inside = 0 <= r0 + r < h
        for q in range(o.shape[0]):
            oq = o[q]
            if inside and p <= q < p + w:
                src = a[b, r0 + r, q - p]
                for ch in range(c):
                    oq[ch] = src[ch]
            else:
                oq[:] = 0


@njit(cache=True)
def _store(acc_hwc, cl, b, y0, out):
    """:func:`_store_rows` into ``out`` (N, C, H, W), or a copy into ``out`` (N, H, W, C) when ``cl``."""
    if not cl:
        _store_rows(acc_hwc, b, y0, out)
        return
    for r in range(acc_hwc.shape[0]):
        for q in range(acc_hwc.shape[1]):
            src, dst = acc_hwc[r, q], out[b, y0 + r, q]
            for ch in range(src.shape[0]):
                dst[ch] = src[ch]


@njit(parallel=True, cache=True)
def _flat(a_nchw, top, left, pitch, image, tail, nt, out_cf):
    """(N, C, H, W) any strides -> ``out_cf`` (C, N * image + tail), image ``b``'s plane from
    ``b * image``: ``out_cf[c, b * image + (top + r) * pitch + left + q] = a_nchw[b, c, r, q]``,
    zeros everywhere else (padding, the columns past ``W``, the rest of each image's stretch, the
    tail)."""
    n, c, h, w = a_nchw.shape
    for t in prange(nt):
        for u in range(t * n * c // nt, (t + 1) * n * c // nt):
            ch, b = u // n, u % n
            o = out_cf[ch, b * image:(b + 1) * image]
            o[:] = 0
            for r in range(h):
                row = o[(top + r) * pitch + left:(top + r) * pitch + left + w]
                for q in range(w):
                    row[q] = a_nchw[b, ch, r, q]
    out_cf[:, n * image:] = 0


# The flat planes are the only full-size temporaries (a few MB per layer): kept between calls,
# one per role and calling thread, and only grown, because glibc may return freed ones to the OS
# and the next call page-faults them in again (resnet20 cases of benchmarks/bench_adder.py).
_scratch = threading.local()


def _flat_planes(a_nchw: np.ndarray, top: int, left: int, pitch: int, image: int, tail: int, nt: int,
                 role: str) -> np.ndarray:
    """``_flat`` into this thread's reusable scratch array for ``role`` ("x" or "grad"): (C,
    N * image + tail), valid until the next call with the same role on this thread."""
    shape = (a_nchw.shape[1], a_nchw.shape[0] * image + tail)
    buf = getattr(_scratch, role, None)
    if buf is None or buf.size < shape[0] * shape[1] or buf.dtype != a_nchw.dtype:
        buf = _aligned(shape, a_nchw)
        setattr(_scratch, role, buf)
    out_cf = buf[:shape[0] * shape[1]].reshape(shape)
    _flat(a_nchw, top, left, pitch, image, tail, nt, out_cf)
    return out_cf


def release_scratch() -> None:
    """Free the calling thread's kept flat planes (the benchmark does, to count them in a step's
    peak memory; a program may, after training, to return the memory)."""
    _scratch.__dict__.clear()


def _dw_filters(w_kcij: np.ndarray) -> np.ndarray:
    """Depthwise filters (C, 1, kh, kw) -> ``w_ijc`` (kh, kw, C): channels innermost, as in the
    packed rows."""
    w_ijc = _empty(w_kcij.shape[2:] + w_kcij.shape[:1], w_kcij)
    w_ijc[...] = w_kcij[:, 0].transpose(1, 2, 0)
    return w_ijc


def _grouped(w_kcij: np.ndarray, groups: int, order: str) -> np.ndarray:
    """Filters (O, C/G, kh, kw) -> a C-contiguous copy with axes in ``order``, a permutation of
    ``"gkcij"`` (g group, k output channel within it, c input channel within it, i/j tap), e.g.
    ``"gijck"`` is (G, kh, kw, C/G, O/G)."""
    o, cg, kh, kw = w_kcij.shape
    w_gkcij = w_kcij.reshape(groups, o // groups, cg, kh, kw)
    return np.ascontiguousarray(w_gkcij.transpose(["gkcij".index(a) for a in order]))


@contextlib.contextmanager
def _threads(serial: bool) -> Iterator[int]:
    """Numba threads for one kernel call: all of them, or one if ``serial``; yields the count."""
    nt = numba.get_num_threads()
    if not serial or nt == 1:
        yield nt
        return
    numba.set_num_threads(1)
    try:
        yield 1
    finally:
        numba.set_num_threads(nt)
