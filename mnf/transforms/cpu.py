"""Numba CPU kernels for the fast Walsh-Hadamard transform (see ``reference.py`` for the algorithm).

- ``butterfly_(buf)``: in-place, unnormalized, natural-order WHT of one contiguous 1-D float
  array of power-of-two length; ``inline="always"`` so other ``njit`` kernels (e.g. a fused
  WHT-threshold layer) can call it per row.
- ``butterfly_cols_(buf, lo, n, w)``: the same down rows ``lo..lo+n`` of a 2-D buffer, for ``w``
  columns at once (also inlined by the fused WHT layer kernels).
- ``fwht_rows(x, out, perm, scale)``: every row of a ``(rows, n)`` array (any strides).
- ``fwht_cols(x, out, perm, scale, width)``: the middle axis of an ``(outer, n, inner)`` array,
  vectorised across ``inner`` (the channel axis of NCHW: ``inner = H * W``), no gathering.

Both batched kernels compute ``out[..., k, ...] = scale * (H @ x)[perm[k]]`` along the transform
axis (``H`` natural order; ``perm`` empty means the identity), so orderings are one index gather
and normalization one multiply, both fused into the final store.

Speed: the first three stages are one fused radix-8 pass over registers, the remaining stages are
radix-4 passes (two stages per sweep over memory) whose inner loop is over contiguous elements,
and rows longer than ``BLOCK`` first finish all stages that fit in an L1-sized chunk.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

BLOCK = 2048  # elements per cache chunk: 8 KB float32 / 16 KB float64 fit in L1


@njit(inline="always", cache=True)
def _radix2(buf, lo, hi, h):
    """Stage ``h``: (a, b) -> (a + b, a - b) for pairs (j, j + h) in blocks of 2h of buf[lo:hi]."""
    for i in range(lo, hi, 2 * h):
        p, q = buf[i:i + h], buf[i + h:i + 2 * h]  # slices: SIMD-friendly, no index wraparound
        for j in range(h):
            a, b = p[j], q[j]
            p[j] = a + b
            q[j] = a - b


@njit(inline="always", cache=True)
def _radix8(src, dst, lo, hi):
    """Stages h = 1, 2, 4 on each group of 8 in [lo, hi), reading ``src``, writing ``dst``."""
    for i in range(lo, hi, 8):
        s, d = src[i:i + 8], dst[i:i + 8]
        x0, x1, x2, x3, x4, x5, x6, x7 = s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
        a0, a1, a2, a3 = x0 + x1, x0 - x1, x2 + x3, x2 - x3
        a4, a5, a6, a7 = x4 + x5, x4 - x5, x6 + x7, x6 - x7
        b0, b1, b2, b3 = a0 + a2, a1 + a3, a0 - a2, a1 - a3
        b4, b5, b6, b7 = a4 + a6, a5 + a7, a4 - a6, a5 - a7
        d[0], d[1], d[2], d[3] = b0 + b4, b1 + b5, b2 + b6, b3 + b7
        d[4], d[5], d[6], d[7] = b0 - b4, b1 - b5, b2 - b6, b3 - b7


@njit(inline="always", cache=True)
def _stages(buf, lo, hi, h):
    """Stages h, 2h, ..., (hi - lo) / 2 on every block of buf[lo:hi], two stages per sweep."""
    size = hi - lo
    while 4 * h <= size:
        for i in range(lo, hi, 4 * h):
            p, q = buf[i:i + h], buf[i + h:i + 2 * h]
            r, w = buf[i + 2 * h:i + 3 * h], buf[i + 3 * h:i + 4 * h]
            for j in range(h):
                a, b, c, d = p[j], q[j], r[j], w[j]
                s, t, u, v = a + b, a - b, c + d, c - d
                p[j] = s + u
                q[j] = t + v
                r[j] = s - u
                w[j] = t - v
        h *= 4
    if h < size:
        _radix2(buf, lo, hi, h)


@njit(inline="always", cache=True)
def _transform(src, dst):
    """dst = H @ src (natural order, unnormalized); ``src`` may be ``dst`` or any strided view."""
    n = dst.shape[0]
    if n < 8:
        for j in range(n):
            dst[j] = src[j]
        h = 1
        while h < n:
            _radix2(dst, 0, n, h)
            h *= 2
        return
    chunk = min(n, BLOCK)
    for lo in range(0, n, chunk):       # everything that fits in one L1 chunk first ...
        _radix8(src, dst, lo, lo + chunk)
        _stages(dst, lo, lo + chunk, 8)
    if n > chunk:                       # ... then the long-distance stages over the whole row
        _stages(dst, 0, n, chunk)


@njit(inline="always", cache=True)
def butterfly_(buf):
    """In-place unnormalized natural-order WHT of a contiguous 1-D float array, len a power of 2.

    ``buf <- hadamard(len(buf)) @ buf``. No checks: the caller guarantees the length.
    """
    _transform(buf, buf)


@njit(parallel=True, cache=True)
def fwht_rows(x, out, perm, scale, nchunks):
    """out[r, k] = scale * (H @ x[r])[perm[k]] for x, out of shape (rows, n); out C-contiguous.

    ``perm``: int64 ``(n,)`` or empty for the natural order; ``scale``: a float (1.0 = none);
    ``nchunks``: rows are split into this many parallel chunks (a few per thread).
    """
    rows, n = x.shape
    plain = perm.shape[0] == 0 and scale == 1.0
    nchunks = max(1, min(rows, nchunks))
    for c in prange(nchunks):
        tmp = np.empty(n, dtype=out.dtype)
        for r in range(c * rows // nchunks, (c + 1) * rows // nchunks):
            if plain:
                _transform(x[r], out[r])
                continue
            _transform(x[r], tmp)
            dst = out[r]
            if perm.shape[0] == 0:
                for k in range(n):
                    dst[k] = tmp[k] * scale
            else:
                for k in range(n):
                    dst[k] = tmp[perm[k]] * scale


@njit(inline="always", cache=True)
def butterfly_cols_(buf, lo, n, w):
    """In place: ``buf[lo:lo+n, :w] <- H_n @ buf[lo:lo+n, :w]`` (natural order, unnormalized).

    The transform runs down the rows of a 2-D buffer, for ``w`` columns at once: radix-8 passes
    (three stages per sweep: fewer loads and stores per addition), then one radix-4 or radix-2
    pass for the remaining stages; every inner loop runs over ``w`` contiguous elements (SIMD
    across columns). ``fwht_cols`` and the fused WHT layer kernels of ``mnf.layers.wht_cpu`` call
    it on tiles of pixels.
    """
    h = 1
    while 8 * h <= n:
        for base in range(lo, lo + n, 8 * h):
            for j in range(base, base + h):
                r0, r1, r2, r3 = buf[j, :w], buf[j + h, :w], buf[j + 2 * h, :w], buf[j + 3 * h, :w]
                r4, r5 = buf[j + 4 * h, :w], buf[j + 5 * h, :w]
                r6, r7 = buf[j + 6 * h, :w], buf[j + 7 * h, :w]
                for i in range(w):
                    x0, x1, x2, x3, x4, x5, x6, x7 = r0[i], r1[i], r2[i], r3[i], r4[i], r5[i], r6[i], r7[i]
                    a0, a1, a2, a3 = x0 + x1, x0 - x1, x2 + x3, x2 - x3
                    a4, a5, a6, a7 = x4 + x5, x4 - x5, x6 + x7, x6 - x7
                    c0, c1, c2, c3 = a0 + a2, a1 + a3, a0 - a2, a1 - a3
                    c4, c5, c6, c7 = a4 + a6, a5 + a7, a4 - a6, a5 - a7
                    r0[i], r1[i], r2[i], r3[i] = c0 + c4, c1 + c5, c2 + c6, c3 + c7
                    r4[i], r5[i], r6[i], r7[i] = c0 - c4, c1 - c5, c2 - c6, c3 - c7
        h *= 8
    if 4 * h <= n:
        for base in range(lo, lo + n, 4 * h):
            for j in range(base, base + h):
                ra, rb = buf[j, :w], buf[j + h, :w]
                rc, rd = buf[j + 2 * h, :w], buf[j + 3 * h, :w]
                for i in range(w):
                    a, bb, c, d = ra[i], rb[i], rc[i], rd[i]
                    s, q, u, v = a + bb, a - bb, c + d, c - d
                    ra[i] = s + u
                    rb[i] = q + v
                    rc[i] = s - u
                    rd[i] = q - v
    elif 2 * h <= n:
        for base in range(lo, lo + n, 2 * h):
            for j in range(base, base + h):
                ra, rb = buf[j, :w], buf[j + h, :w]
                for i in range(w):
                    a, bb = ra[i], rb[i]
                    ra[i] = a + bb
                    rb[i] = a - bb


@njit(parallel=True, cache=True)
def fwht_cols(x, out, perm, scale, width):
    """out[o, k, i] = scale * (H @ x[o, :, i])[perm[k]] for shape (outer, n, inner).

    Works on tiles of ``width`` consecutive ``i`` copied into an ``(n, width)`` buffer, so every
    butterfly's inner loop runs over ``width`` contiguous elements (SIMD across ``inner``).
    """
    outer, n, inner = x.shape
    ntiles = (inner + width - 1) // width
    for t in prange(outer * ntiles):
        o = t // ntiles
        i0 = (t % ntiles) * width
        w = min(width, inner - i0)
        buf = np.empty((n, width), dtype=out.dtype)
        for j in range(n):
            for i in range(w):
                buf[j, i] = x[o, j, i0 + i]
        butterfly_cols_(buf, 0, n, w)
        for k in range(n):
            src = buf[perm[k]] if perm.shape[0] else buf[k]
            for i in range(w):
                out[o, k, i0 + i] = src[i] * scale


def tile_width(n: int, inner: int, itemsize: int) -> int:
    """Tile width for ``fwht_cols``: an ``(n, width)`` buffer of about 32 KB, a multiple of 8."""
    w = max(8, (32768 // (n * itemsize)) // 8 * 8)
    return int(min(w, inner))


# Single-threaded twins for small inputs, where waking the thread pool costs more than the work.
fwht_rows_serial = njit(cache=True)(fwht_rows.py_func)
fwht_cols_serial = njit(cache=True)(fwht_cols.py_func)
PARALLEL_MIN_SIZE = 1 << 15  # elements; below this the serial twins are used
