"""Fused Numba CPU kernels of the WHT layers: transform, threshold, inverse in one pass.

``forward`` / ``backward`` serve ``WHTPointwise`` (channel transforms), ``spatial_forward`` /
``spatial_backward`` serve ``WHTSpatial`` (one ``Hp × Wp`` 2-D transform per image, same math
with ``H_b x`` replaced by ``H_Hp · pad(x) · H_Wp`` and ``1/b`` by ``1/(Hp·Wp)``).

Arrays are ``(batch, channels, pixels)`` (NCHW with ``H·W`` flattened). Each kernel works on tiles
of ``width`` consecutive pixels of one image, copied into an ``(n, width)`` buffer, so every
butterfly's inner loop runs over ``width`` contiguous floats (SIMD across pixels) and each tile is
read once and written once. Per pixel vector ``x`` (``cin`` channels, zero-padded to ``n``), with
``H_b`` the natural-order Hadamard matrix applied to each block of ``b`` channels:

    forward    z = H_b x;  c_k = s_k · f(z_k, T_k);  y = (H_b c / b)[:cout]
    backward   u = H_b g / b  (g zero-padded to n);  dT_k = Σ u_k s_k ∂f/∂T;  ds_k = Σ u_k f(z_k)
               dx = (H_b (u ⊙ s ⊙ ∂f/∂z))[:cin]

``f`` is the soft / hard / smooth threshold (``KIND`` codes below; hard uses the soft ``∂f/∂T``
surrogate documented in ``threshold.py``); with ``keep_dc`` the first coefficient of each block is
passed through (``f(z) = z``). The backward recomputes ``z`` from ``x`` instead of saving it, so
the layer keeps nothing for backward but its input. ``1/b`` is a power-of-two shift; the only
multiplications are the optional scales ``s`` and the smooth threshold's ``tanh`` product.
"""
from __future__ import annotations

import math

import numpy as np
from numba import get_num_threads, njit, prange

from mnf.transforms.cpu import butterfly_

KIND = {"soft": 0, "hard": 1, "smooth": 2}


@njit(inline="always", cache=True)
def _wht_tile(buf, lo, b, w):
    """In place: ``buf[lo:lo+b, :w] <- H_b @ buf[lo:lo+b, :w]`` (radix-4 passes, one radix-2)."""
    h = 1
    while 4 * h <= b:
        for base in range(lo, lo + b, 4 * h):
            for j in range(base, base + h):
                ra, rb, rc, rd = buf[j], buf[j + h], buf[j + 2 * h], buf[j + 3 * h]
                for i in range(w):
                    a, bb, c, d = ra[i], rb[i], rc[i], rd[i]
                    s, q, u, v = a + bb, a - bb, c + d, c - d
                    ra[i] = s + u
                    rb[i] = q + v
                    rc[i] = s - u
                    rd[i] = q - v
        h *= 4
    if h < b:
        for base in range(lo, lo + b, 2 * h):
            for j in range(base, base + h):
                ra, rb = buf[j], buf[j + h]
                for i in range(w):
                    a, bb = ra[i], rb[i]
                    ra[i] = a + bb
                    rb[i] = a - bb


@njit(inline="always", cache=True)
def _coeff(z, tk, kind, passthrough):
    """``(f, ∂f/∂z, ∂f/∂T)`` of the ``kind`` threshold at coefficient ``z`` (0 at the kinks)."""
    if passthrough:
        return z, 1.0, 0.0
    if z > tk or z < -tk:
        sg = 1.0 if z > 0 else -1.0
        if kind == 0:
            return z - sg * tk, 1.0, -sg
        if kind == 1:
            return z, 1.0, -sg
        th = math.tanh(z)
        r = abs(z) - tk
        return th * r, (1.0 - th * th) * r + abs(th), -th
    return 0.0, 0.0, 0.0


@njit(inline="always", cache=True)
def _load(src, o, i0, w, buf, rows):
    """buf[:rows, :w] = src[o, :rows, i0:i0+w]; the remaining rows of buf are zeroed."""
    for j in range(src.shape[1]):
        for i in range(w):
            buf[j, i] = src[o, j, i0 + i]
    for j in range(src.shape[1], rows):
        for i in range(w):
            buf[j, i] = 0


@njit(inline="always", cache=True)
def _transform(buf, n, b, w):
    for lo in range(0, n, b):
        _wht_tile(buf, lo, b, w)


@njit(parallel=True, cache=True)
def forward(x, t, s, out, b, kind, keep_dc, has_scale, width, nchunks):
    """``out = (H_b (s ⊙ f(H_b x_pad, t)) / b)[:cout]`` for x ``(N, cin, P)``, out ``(N, cout, P)``.

    ``t``, ``s``: ``(n,)`` natural-order thresholds (``>= 0``) and scales; ``n`` a multiple of
    the block size ``b`` (a power of two), ``n >= max(cin, cout)``. The ``N · ceil(P / width)``
    tiles are split into ``nchunks`` parallel chunks.
    """
    nb, _, p = x.shape
    n = t.shape[0]
    cout = out.shape[1]
    ntiles = (p + width - 1) // width
    tasks = nb * ntiles
    inv_b = 1.0 / b
    for c in prange(nchunks):
        buf = np.empty((n, width), dtype=out.dtype)
        for task in range(c * tasks // nchunks, (c + 1) * tasks // nchunks):
            o = task // ntiles
            i0 = (task % ntiles) * width
            w = min(width, p - i0)
            _load(x, o, i0, w, buf, n)
            _transform(buf, n, b, w)
            for k in range(n):
                row = buf[k]
                if not (keep_dc and k % b == 0):
                    tk = t[k]
                    if kind == 0:
                        for i in range(w):
                            z = row[i]
                            row[i] = z - tk if z > tk else (z + tk if z < -tk else 0.0)
                    elif kind == 1:
                        for i in range(w):
                            z = row[i]
                            row[i] = z if abs(z) > tk else 0.0
                    else:
                        for i in range(w):
                            z = row[i]
                            row[i] = math.tanh(z) * max(abs(z) - tk, 0.0)
                if has_scale:
                    sk = s[k]
                    for i in range(w):
                        row[i] *= sk
            _transform(buf, n, b, w)
            for k in range(cout):
                for i in range(w):
                    out[o, k, i0 + i] = buf[k, i] * inv_b


@njit(parallel=True, cache=True)
def backward(x, g, t, s, gx, gt, gs, b, kind, keep_dc, has_scale, width):
    """Gradients of :func:`forward` given ``g = dL/dout`` ``(N, cout, P)``.

    Writes ``gx`` ``(N, cin, P)`` and per-chunk partial sums into ``gt``, ``gs`` of shape
    ``(nchunks, n)``, zero on entry (the caller sums over axis 0).
    """
    nb, _, p = x.shape
    n = t.shape[0]
    nchunks = gt.shape[0]
    ntiles = (p + width - 1) // width
    tasks = nb * ntiles
    consts = np.empty(2, dtype=gx.dtype)   # 1/b and 1 in the data's dtype (no float64 promotion)
    consts[0] = 1.0 / b
    consts[1] = 1.0
    inv_b, one = consts[0], consts[1]
    for c in prange(nchunks):
        bz = np.empty((n, width), dtype=gx.dtype)
        bu = np.empty((n, width), dtype=gx.dtype)
        for task in range(c * tasks // nchunks, (c + 1) * tasks // nchunks):
            o = task // ntiles
            i0 = (task % ntiles) * width
            w = min(width, p - i0)
            _load(x, o, i0, w, bz, n)
            _transform(bz, n, b, w)
            _load(g, o, i0, w, bu, n)
            _transform(bu, n, b, w)
            for k in range(n):
                rz, ru = bz[k], bu[k]
                tk = t[k]
                sk = s[k] if has_scale else one
                acc_t = 0.0
                acc_s = 0.0
                dc = keep_dc and k % b == 0
                if kind == 2 or dc:
                    for i in range(w):
                        u = ru[i] * inv_b
                        f, dfz, dft = _coeff(rz[i], tk, kind, dc)
                        acc_t += u * sk * dft
                        acc_s += u * f
                        rz[i] = u * sk * dfz
                else:  # soft / hard: branch-light loop in the data's dtype
                    shrink = tk if kind == 0 else tk * 0
                    for i in range(w):
                        z = rz[i]
                        u = ru[i] * inv_b
                        if z > tk:
                            acc_t -= u
                            acc_s += u * (z - shrink)
                            rz[i] = u * sk
                        elif z < -tk:
                            acc_t += u
                            acc_s += u * (z + shrink)
                            rz[i] = u * sk
                        else:
                            rz[i] = 0
                    acc_t *= sk
                gt[c, k] += acc_t
                gs[c, k] += acc_s
            _transform(bz, n, b, w)
            for j in range(gx.shape[1]):
                for i in range(w):
                    gx[o, j, i0 + i] = bz[j, i]


@njit(inline="always", cache=True)
def _transform2d(buf):
    """In place ``buf <- H @ buf @ H`` for a C-contiguous ``(Hp, Wp)`` buffer."""
    for r in range(buf.shape[0]):
        butterfly_(buf[r])
    _wht_tile(buf, 0, buf.shape[0], buf.shape[1])


@njit(inline="always", cache=True)
def _load2d(src, m, buf):
    """buf[:H, :W] = src[m]; the rest of buf is zeroed (the 2-D zero padding)."""
    buf[:, :] = 0
    for r in range(src.shape[1]):
        for q in range(src.shape[2]):
            buf[r, q] = src[m, r, q]


@njit(parallel=True, cache=True)
def spatial_forward(x, t, s, out, kind, keep_dc, has_scale, nchunks):
    """Per image ``m``: ``out[m] = crop(H (s ⊙ f(H pad(x[m]) H, t)) H / (Hp·Wp))``.

    ``x``, ``out``: ``(M, H, W)``; ``t``, ``s``: ``(Hp, Wp)`` natural-order thresholds, scales.
    """
    nimg, h, w = x.shape
    hp, wp = t.shape
    inv = 1.0 / (hp * wp)
    for c in prange(nchunks):
        buf = np.empty((hp, wp), dtype=out.dtype)
        for m in range(c * nimg // nchunks, (c + 1) * nimg // nchunks):
            _load2d(x, m, buf)
            _transform2d(buf)
            for r in range(hp):
                for q in range(wp):
                    f, _, _ = _coeff(buf[r, q], t[r, q], kind, keep_dc and r == 0 and q == 0)
                    buf[r, q] = f * s[r, q] if has_scale else f
            _transform2d(buf)
            for r in range(h):
                for q in range(w):
                    out[m, r, q] = buf[r, q] * inv


@njit(parallel=True, cache=True)
def spatial_backward(x, g, t, s, gx, gt, gs, kind, keep_dc, has_scale):
    """Gradients of :func:`spatial_forward`; partial ``gt``, ``gs`` ``(nchunks, Hp, Wp)``, zeroed."""
    nimg, h, w = x.shape
    hp, wp = t.shape
    nchunks = gt.shape[0]
    inv = 1.0 / (hp * wp)
    for c in prange(nchunks):
        bz = np.empty((hp, wp), dtype=gx.dtype)
        bu = np.empty((hp, wp), dtype=gx.dtype)
        for m in range(c * nimg // nchunks, (c + 1) * nimg // nchunks):
            _load2d(x, m, bz)
            _transform2d(bz)
            _load2d(g, m, bu)
            _transform2d(bu)
            for r in range(hp):
                for q in range(wp):
                    sk = s[r, q] if has_scale else 1.0
                    u = bu[r, q] * inv
                    f, dfz, dft = _coeff(bz[r, q], t[r, q], kind, keep_dc and r == 0 and q == 0)
                    gt[c, r, q] += u * sk * dft
                    gs[c, r, q] += u * f
                    bz[r, q] = u * sk * dfz
            _transform2d(bz)
            for r in range(h):
                for q in range(w):
                    gx[m, r, q] = bz[r, q]


def fused_spatial_forward(x: np.ndarray, t: np.ndarray, s: np.ndarray | None, kind: str,
                          keep_dc: bool) -> np.ndarray:
    """NumPy entry: ``x`` ``(M, H, W)`` float, ``t``/``s`` ``(Hp, Wp)`` -> ``(M, H, W)``."""
    out = np.empty_like(x)
    if x.shape[0]:
        spatial_forward(x, t, t if s is None else s, out, KIND[kind], keep_dc, s is not None,
                        min(x.shape[0], 4 * get_num_threads()))
    return out


def fused_spatial_backward(x: np.ndarray, g: np.ndarray, t: np.ndarray, s: np.ndarray | None,
                           kind: str, keep_dc: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NumPy entry: ``(gx (M, H, W), gt (Hp, Wp), gs (Hp, Wp))`` for ``g`` ``(M, H, W)``."""
    chunks = min(x.shape[0], 4 * get_num_threads())
    gx = np.empty_like(x)
    gt = np.zeros((chunks, *t.shape), dtype=x.dtype)
    gs = np.zeros((chunks, *t.shape), dtype=x.dtype)
    if chunks:
        spatial_backward(x, g, t, t if s is None else s, gx, gt, gs, KIND[kind], keep_dc, s is not None)
    return gx, gt.sum(0), gs.sum(0)


def tile_width(n: int, pixels: int, itemsize: int) -> int:
    """Pixels per tile: an ``(n, width)`` buffer of about 16 KB (two fit in L1), multiple of 8."""
    w = max(8, (16384 // (n * itemsize)) // 8 * 8)
    return int(min(w, pixels))


def fused_forward(x: np.ndarray, t: np.ndarray, s: np.ndarray | None, cout: int, b: int,
                  kind: str, keep_dc: bool) -> np.ndarray:
    """NumPy entry: ``x`` ``(N, cin, P)`` C-contiguous float -> ``(N, cout, P)`` (see module doc)."""
    out = np.empty((x.shape[0], cout, x.shape[2]), dtype=x.dtype)
    if out.size:
        sc = t if s is None else s
        width = tile_width(t.shape[0], x.shape[2], x.itemsize)
        tasks = x.shape[0] * -(-x.shape[2] // width)
        forward(x, t, sc, out, b, KIND[kind], keep_dc, s is not None, width,
                min(tasks, 4 * get_num_threads()))
    return out


def fused_backward(x: np.ndarray, g: np.ndarray, t: np.ndarray, s: np.ndarray | None, b: int,
                   kind: str, keep_dc: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NumPy entry: ``(gx (N, cin, P), gt (n,), gs (n,))`` for ``g`` ``(N, cout, P)``."""
    n, (nb, _, p) = t.shape[0], x.shape
    width = tile_width(n, p, x.itemsize) if p else 1
    tasks = min(nb * -(-p // width), 4 * get_num_threads())
    gx = np.empty_like(x)
    gt = np.zeros((tasks, n), dtype=x.dtype)
    gs = np.zeros((tasks, n), dtype=x.dtype)
    if tasks:
        sc = t if s is None else s
        backward(x, g, t, sc, gx, gt, gs, b, KIND[kind], keep_dc, s is not None, width)
    return gx, gt.sum(0), gs.sum(0)
