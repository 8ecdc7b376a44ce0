"""Numba CPU kernels of the WHT layers (fused: transform, threshold, inverse in one pass).

The maps are those of :mod:`mnf.wht_layer.reference`. ``pointwise_fwd`` / ``pointwise_bwd`` serve
``WHTPointwise`` (channel transforms), ``spatial_fwd`` / ``spatial_bwd`` serve
``WHTSpatial`` (one ``Hp × Wp`` 2-D transform per image, same math with ``H_b x`` replaced by
``H_Hp · pad(x) · H_Wp`` and ``1/b`` by ``1/(Hp·Wp)``). The four functions at the end
(``pointwise_forward`` ... ``spatial_backward``) are the bridge from torch: CPU tensors in,
CPU tensors out, what :mod:`mnf.wht_layer.function` calls.

Arrays are ``(batch, channels, pixels)`` (NCHW with ``H·W`` flattened), or for a channels-last
batch ``(N·H·W, channels)`` (``pointwise_fwd_cl`` / ``pointwise_bwd_cl``: all pixels of the batch
in one run, so 2×2 and 1×1 maps still give long loops). Each kernel works on tiles of ``width``
pixels (of one image in NCHW, whole rows where they fit, see :func:`tile_width`; channels-last
tiles are transposed in and out with 8x8 SIMD blocks) in an ``(n, width)`` buffer, so every
butterfly's inner loop runs over ``width`` contiguous floats (SIMD across pixels) and each tile
is read once and written once. ``expand="repeat"`` is a cyclic read of the input channels (no
repeated copy), and its backward sums each channel's copies. The first butterfly stage is
fused with the load (the zero padding is never materialised: a pair with a zero partner is a
copy) and the inverse's last stage with the store (only the ``cout`` kept channels are computed).
Per pixel vector ``x`` (``cin`` channels, zero-padded to ``n``), with ``H_b`` the natural-order
Hadamard matrix applied to each block of ``b`` channels:

    forward    z = H_b x;  c_k = s_k · f(z_k, T_k);  y = (H_b c / b)[:cout]
    backward   u = H_b g / b  (g zero-padded to n);  dT_k = Σ u_k s_k ∂f/∂T;  ds_k = Σ u_k f(z_k)
               dx = (H_b (u ⊙ s ⊙ ∂f/∂z))[:cin]

``f`` is the soft / hard / smooth threshold (``KIND`` codes below; hard uses the soft ``∂f/∂T``
surrogate documented in ``mnf/layers/threshold.py``); with ``keep_dc`` the first coefficient of
each block is passed through (``f(z) = z``). The backward recomputes ``z`` from ``x`` instead of
saving it, so the layer keeps nothing for backward but its input. ``1/b`` is a power-of-two
shift; the only multiplications are the optional scales ``s`` and the smooth threshold's
``tanh`` product.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from numba import get_num_threads, njit, prange

from torch import Tensor

from mnf.simd import transpose8
from mnf.transforms.cpu import butterfly_cols_, butterfly_unchecked_

KIND = {"soft": 0, "hard": 1, "smooth": 2}


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
def _load_stage(src, o, i0, w, rows, buf, b):
    """``buf[:, :w] <-`` the stage ``h = b/2`` butterflies of the first ``rows`` channels of
    ``src[o, :, i0:i0+w]`` read cyclically (row ``j`` is ``src[o, j % C]``), zero-padded to ``n``.

    ``rows <= C`` reads the input as it is; ``rows > C`` is ``expand="repeat"`` without the repeated
    copy. The padding rows are known zeros, so a pair with a zero partner is a copy and a pair of
    zeros is zero: the padded input is never materialised. The remaining stages (``h < b/2``) act
    on each half-block independently (Hadamard stages commute).
    """
    n, period = buf.shape[0], src.shape[1]
    h = b // 2
    if h == 0:  # b == 1: the transform is the identity
        for j in range(n):
            rj = buf[j]
            if j < rows:
                sj = src[o, j % period, i0:i0 + w]
                for i in range(w):
                    rj[i] = sj[i]
            else:
                rj[:w] = 0
        return
    for lo in range(0, n, b):
        for j in range(lo, lo + h):
            ra, rb = buf[j], buf[j + h]
            if j + h < rows:
                sa, sb = src[o, j % period, i0:i0 + w], src[o, (j + h) % period, i0:i0 + w]
                for i in range(w):
                    a, c = sa[i], sb[i]
                    ra[i] = a + c
                    rb[i] = a - c
            elif j < rows:
                sa = src[o, j % period, i0:i0 + w]
                for i in range(w):
                    a = sa[i]
                    ra[i] = a
                    rb[i] = a
            else:
                ra[:w] = 0
                rb[:w] = 0


@njit(inline="always", cache=True)
def _store_stage(buf, dst, o, i0, w, b):
    """``dst[o, :rows, i0:i0+w] <-`` the stage ``h = b/2`` butterflies of ``buf[:, :w]``.

    ``rows = dst.shape[1]``: outputs past it are never computed (the pruned inverse).
    """
    n, rows = buf.shape[0], dst.shape[1]
    h = b // 2
    if h == 0:
        for j in range(rows):
            rj, dj = buf[j], dst[o, j, i0:i0 + w]
            for i in range(w):
                dj[i] = rj[i]
        return
    for lo in range(0, min(n, rows), b):
        for j in range(lo, min(lo + h, rows)):
            ra, rb = buf[j], buf[j + h]
            da = dst[o, j, i0:i0 + w]
            if j + h < rows:
                db = dst[o, j + h, i0:i0 + w]
                for i in range(w):
                    a, c = ra[i], rb[i]
                    da[i] = a + c
                    db[i] = a - c
            else:
                for i in range(w):
                    da[i] = ra[i] + rb[i]


@njit(inline="always", cache=True)
def _store_folded(buf, dst, o, i0, w, rows, b):
    """``dst[o, c, i0:i0+w] <- Σ_r row c + r·C`` of the stage ``h = b/2`` of ``buf``, rows ``< rows``.

    The gradient of a cyclic read (:func:`_load_stage` with ``rows > C = dst.shape[1]``): every
    input channel collects the gradients of all its copies.
    """
    n, period = buf.shape[0], dst.shape[1]
    h = b // 2
    if h > 0:
        for lo in range(0, n, b):
            for j in range(lo, lo + h):
                ra, rb = buf[j], buf[j + h]
                for i in range(w):
                    a, c = ra[i], rb[i]
                    ra[i] = a + c
                    rb[i] = a - c
    for j in range(period, rows):
        rj, rc = buf[j], buf[j % period]
        for i in range(w):
            rc[i] += rj[i]
    for j in range(period):
        rj, dj = buf[j], dst[o, j, i0:i0 + w]
        for i in range(w):
            dj[i] = rj[i]


@njit(inline="always", cache=True)
def _half_blocks(buf, b, w):
    """Stages ``h < b/2`` of every block: ``H_{b/2}`` on each half-block of ``buf[:, :w]``."""
    if b >= 4:
        for lo in range(0, buf.shape[0], b // 2):
            butterfly_cols_(buf, lo, b // 2, w)


@njit(inline="always", cache=True)
def _threshold_fwd(buf, w, t, sb, b, kind, keep_dc, zero):
    """``buf[k, :w] <- s_k / b · f(buf[k, :w], t_k)`` for every coefficient row ``k``."""
    n = buf.shape[0]
    for k in range(n):
        row = buf[k, :w]
        tk, sk = t[k], sb[k]
        if keep_dc and k % b == 0:
            for i in range(w):
                row[i] *= sk
        elif kind == 0:
            for i in range(w):
                z = row[i]
                row[i] = (z - tk if z > tk else (z + tk if z < -tk else zero)) * sk
        elif kind == 1:
            for i in range(w):
                z = row[i]
                row[i] = z * sk if abs(z) > tk else zero
        else:
            for i in range(w):
                z = row[i]
                row[i] = math.tanh(z) * max(abs(z) - tk, zero) * sk


@njit(inline="always", cache=True)
def _threshold_bwd(bz, bv, acc_t, acc_s, w, t, sb, b, kind, keep_dc, zero, one):
    """From coefficients ``bz`` and ``bv = H g`` (rows ``k``, ``w`` lanes): accumulate ``v·∂f/∂T``
    into ``acc_t`` and ``v·f`` into ``acc_s``, and leave ``v · s/b · ∂f/∂z`` in ``bz``."""
    n = bz.shape[0]
    for k in range(n):
        rz, rv = bz[k, :w], bv[k, :w]
        at, ast = acc_t[k, :w], acc_s[k, :w]
        tk, sk = t[k], sb[k]
        if keep_dc and k % b == 0:  # f(z) = z
            for i in range(w):
                v = rv[i]
                ast[i] += v * rz[i]
                rz[i] = v * sk
        elif kind == 2:
            for i in range(w):
                z, v = rz[i], rv[i]
                th = math.tanh(z)
                r = abs(z) - tk
                on = r > 0
                at[i] -= v * th if on else zero
                ast[i] += v * th * r if on else zero
                rz[i] = v * sk * ((one - th * th) * r + abs(th)) if on else zero
        else:  # soft / hard: ∂f/∂z = 1 and ∂f/∂T = -sign(z) outside [-T, T]
            shrink = tk if kind == 0 else zero
            for i in range(w):
                z, v = rz[i], rv[i]
                pos = z > tk
                neg = z < -tk
                at[i] -= v if pos else (-v if neg else zero)
                ast[i] += v * (z - shrink if pos else (z + shrink if neg else zero))
                rz[i] = v * sk if (pos or neg) else zero


@njit(parallel=True, cache=True)
def pointwise_fwd(x, t, sb, out, rows, b, kind, keep_dc, width, nchunks):
    """``out = (H_b (s ⊙ f(H_b x_pad, t)) / b)[:cout]`` for x ``(N, cin, P)``, out ``(N, cout, P)``.

    ``x_pad``: the first ``rows`` channels of ``x`` read cyclically (``rows = cin``, or ``cout``
    for ``expand="repeat"``), zero-padded to ``n``. Pixels contiguous (NCHW ``(N, C, H·W)``);
    :func:`pointwise_fwd_cl` takes channels-last pixels.

    ``t``: ``(n,)`` natural-order thresholds (``>= 0``); ``sb``: ``(n,)`` scales over ``b``
    (``s / b``, folding the inverse's power-of-two ``1/b`` into the threshold pass); ``n`` a
    multiple of the block size ``b`` (a power of two), ``n >= max(cin, cout)``. The
    ``N · ceil(P / width)`` tiles of ``(n, width)`` are split into ``nchunks`` parallel chunks.
    """
    nb, p = x.shape[0], x.shape[2]
    n = t.shape[0]
    ntiles = (p + width - 1) // width
    tasks = nb * ntiles
    for c in prange(nchunks):
        buf = np.empty((n, width), dtype=out.dtype)
        zero = sb[0] * 0  # 0 in the data's dtype (a float64 literal would promote the loops)
        for task in range(c * tasks // nchunks, (c + 1) * tasks // nchunks):
            o = task // ntiles
            i0 = (task % ntiles) * width
            w = min(width, p - i0)
            _load_stage(x, o, i0, w, rows, buf, b)
            _half_blocks(buf, b, w)
            _threshold_fwd(buf, w, t, sb, b, kind, keep_dc, zero)
            _half_blocks(buf, b, w)
            _store_stage(buf, out, o, i0, w, b)


@njit(parallel=True, cache=True)
def pointwise_bwd(x, g, t, sb, gx, gt, gs, rows, b, kind, keep_dc, width):
    """Gradients of :func:`pointwise_fwd` given ``g = dL/dout`` ``(N, cout, P)``.

    Writes ``gx`` ``(N, cin, P)`` and per-chunk partial sums into ``gt``, ``gs`` of shape
    ``(nchunks, n)`` (the caller sums over axis 0): ``gt = Σ v·(s/b)·∂f/∂T`` and ``gs = Σ v·f/b``
    with ``v = H_b g``. The sums over pixels go to per-lane accumulators ``(n, width)`` first, so
    the lane loops stay vectorisable (a float reduction would not be), and are reduced per chunk.
    """
    nb, cin, p = x.shape
    cout = g.shape[1]
    fold = rows > cin  # a cyclic read: each input channel sums the gradients of its copies
    n = t.shape[0]
    nchunks = gt.shape[0]
    ntiles = (p + width - 1) // width
    tasks = nb * ntiles
    consts = np.empty(2, dtype=gx.dtype)  # 1/b and 1 in the data's dtype (no float64 promotion)
    consts[0] = 1.0 / b
    consts[1] = 1.0
    inv_b, one = consts[0], consts[1]
    for c in prange(nchunks):
        bz = np.empty((n, width), dtype=gx.dtype)
        bv = np.empty((n, width), dtype=gx.dtype)
        acc_t = np.zeros((n, width), dtype=gx.dtype)  # Σ v·∂f/∂T (·(s/b) applied at the end)
        acc_s = np.zeros((n, width), dtype=gx.dtype)  # Σ v·f (·(1/b) applied at the end)
        zero = acc_t[0, 0]
        for task in range(c * tasks // nchunks, (c + 1) * tasks // nchunks):
            o = task // ntiles
            i0 = (task % ntiles) * width
            w = min(width, p - i0)
            _load_stage(x, o, i0, w, rows, bz, b)
            _load_stage(g, o, i0, w, cout, bv, b)
            _half_blocks(bz, b, w)
            _half_blocks(bv, b, w)
            _threshold_bwd(bz, bv, acc_t, acc_s, w, t, sb, b, kind, keep_dc, zero, one)
            _half_blocks(bz, b, w)
            if fold:
                _store_folded(bz, gx, o, i0, w, rows, b)
            else:
                _store_stage(bz, gx, o, i0, w, b)
        for k in range(n):
            gt[c, k] = acc_t[k].sum() * sb[k]
            gs[c, k] = acc_s[k].sum() * inv_b


@njit(inline="always", cache=True)
def _to_lanes(src, i0, w, tile):
    """``tile[0, j, i] = src[i0 + i, j]``: ``w`` channels-last pixels of ``src`` ``(M, C)`` as lanes.

    8x8 blocks go through :func:`mnf.simd.transpose8` (a scalar transposing loop would cost
    more than the butterflies); the leftover rows and columns one element at a time.
    """
    c, width = src.shape[1], tile.shape[2]
    sf, tf = src.reshape(-1), tile.reshape(-1)
    c8, w8 = c - c % 8, w - w % 8
    for j0 in range(0, c8, 8):
        for q in range(0, w8, 8):
            transpose8(sf, (i0 + q) * c + j0, c, tf, j0 * width + q, width)
    for i in range(w8, w):
        for j in range(c):
            tf[j * width + i] = sf[(i0 + i) * c + j]
    for i in range(w8):
        for j in range(c8, c):
            tf[j * width + i] = sf[(i0 + i) * c + j]


@njit(inline="always", cache=True)
def _from_lanes(tile, w, dst, i0):
    """``dst[i0 + i, j] = tile[0, j, i]``: the inverse of :func:`_to_lanes` (``dst`` ``(M, C)``)."""
    c, width = dst.shape[1], tile.shape[2]
    df, tf = dst.reshape(-1), tile.reshape(-1)
    c8, w8 = c - c % 8, w - w % 8
    for j0 in range(0, c8, 8):
        for q in range(0, w8, 8):
            transpose8(tf, j0 * width + q, width, df, (i0 + q) * c + j0, c)
    for i in range(w8, w):
        for j in range(c):
            df[(i0 + i) * c + j] = tf[j * width + i]
    for i in range(w8):
        for j in range(c8, c):
            df[(i0 + i) * c + j] = tf[j * width + i]


@njit(parallel=True, cache=True)
def pointwise_fwd_cl(x, t, sb, out, rows, b, kind, keep_dc, width, nchunks):
    """:func:`pointwise_fwd` for channels-last pixels: x ``(M, cin)``, out ``(M, cout)``, C-contiguous.

    Each tile of ``width`` pixels is transposed into lanes (one 8x8 block at a time), computed as
    in :func:`pointwise_fwd`, and transposed back, so every loop still runs over pixels.
    """
    m, cin = x.shape
    n = t.shape[0]
    tasks = (m + width - 1) // width
    for c in prange(nchunks):
        buf = np.empty((n, width), dtype=out.dtype)
        xt = np.empty((1, cin, width), dtype=out.dtype)
        ot = np.empty((1, out.shape[1], width), dtype=out.dtype)
        zero = sb[0] * 0
        for task in range(c * tasks // nchunks, (c + 1) * tasks // nchunks):
            i0 = task * width
            w = min(width, m - i0)
            _to_lanes(x, i0, w, xt)
            _load_stage(xt, 0, 0, w, rows, buf, b)
            _half_blocks(buf, b, w)
            _threshold_fwd(buf, w, t, sb, b, kind, keep_dc, zero)
            _half_blocks(buf, b, w)
            _store_stage(buf, ot, 0, 0, w, b)
            _from_lanes(ot, w, out, i0)


@njit(parallel=True, cache=True)
def pointwise_bwd_cl(x, g, t, sb, gx, gt, gs, rows, b, kind, keep_dc, width):
    """:func:`pointwise_bwd` for channels-last pixels: x, gx ``(M, cin)``, g ``(M, cout)``."""
    m, cin = x.shape
    cout = g.shape[1]
    fold = rows > cin
    n = t.shape[0]
    nchunks = gt.shape[0]
    tasks = (m + width - 1) // width
    consts = np.empty(2, dtype=gx.dtype)
    consts[0] = 1.0 / b
    consts[1] = 1.0
    inv_b, one = consts[0], consts[1]
    for c in prange(nchunks):
        bz = np.empty((n, width), dtype=gx.dtype)
        bv = np.empty((n, width), dtype=gx.dtype)
        xt = np.empty((1, cin, width), dtype=gx.dtype)
        gt_ = np.empty((1, cout, width), dtype=gx.dtype)
        acc_t = np.zeros((n, width), dtype=gx.dtype)
        acc_s = np.zeros((n, width), dtype=gx.dtype)
        zero = acc_t[0, 0]
        for task in range(c * tasks // nchunks, (c + 1) * tasks // nchunks):
            i0 = task * width
            w = min(width, m - i0)
            _to_lanes(x, i0, w, xt)
            _to_lanes(g, i0, w, gt_)
            _load_stage(xt, 0, 0, w, rows, bz, b)
            _load_stage(gt_, 0, 0, w, cout, bv, b)
            _half_blocks(bz, b, w)
            _half_blocks(bv, b, w)
            _threshold_bwd(bz, bv, acc_t, acc_s, w, t, sb, b, kind, keep_dc, zero, one)
            _half_blocks(bz, b, w)
            if fold:
                _store_folded(bz, xt, 0, 0, w, rows, b)
            else:
                _store_stage(bz, xt, 0, 0, w, b)
            _from_lanes(xt, w, gx, i0)
        for k in range(n):
            gt[c, k] = acc_t[k].sum() * sb[k]
            gs[c, k] = acc_s[k].sum() * inv_b


@njit(inline="always", cache=True)
def _transform2d(buf):
    """In place ``buf <- H @ buf @ H`` for a C-contiguous ``(Hp, Wp)`` buffer."""
    for r in range(buf.shape[0]):
        butterfly_unchecked_(buf[r])
    butterfly_cols_(buf, 0, buf.shape[0], buf.shape[1])


@njit(inline="always", cache=True)
def _load2d(src, m, buf):
    """buf[:H, :W] = src[m]; the rest of buf is zeroed (the 2-D zero padding)."""
    buf[:, :] = 0
    for r in range(src.shape[1]):
        for q in range(src.shape[2]):
            buf[r, q] = src[m, r, q]


@njit(parallel=True, cache=True)
def spatial_fwd(x, t, s, out, kind, keep_dc, has_scale, nchunks):
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
def spatial_bwd(x, g, t, s, gx, gt, gs, kind, keep_dc, has_scale):
    """Gradients of :func:`spatial_fwd`; partial ``gt``, ``gs`` ``(nchunks, Hp, Wp)``, zeroed."""
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


def tile_width(n: int, pixels: int, itemsize: int) -> int:
    """Pixels per tile: whole rows of an image where an ``(n, width)`` tile fits in 2 MB.

    Long rows matter more than cache fit: short row segments strided through memory starve the
    load and store stages, and long lane loops amortise each butterfly loop's setup
    (benchmarks/bench_wht_layers.py; book/notes/wht_layers.md).
    """
    width = max(64, (2 << 20) // (n * itemsize) // 16 * 16)
    return int(min(width, pixels))


def _scales_over_b(t: np.ndarray, s: np.ndarray | None, b: int) -> np.ndarray:
    """``s / b`` (or ``1 / b`` everywhere) in ``t``'s dtype: the inverse's shift folded into the scales."""
    return np.full_like(t, 1.0 / b) if s is None else (s / t.dtype.type(b)).astype(t.dtype)


def _array(t: Tensor | None) -> np.ndarray | None:
    """A C-contiguous NumPy view of a CPU tensor (a copy only if it is not contiguous)."""
    return None if t is None else t.detach().contiguous().numpy()


def _rows_array(x: Tensor) -> np.ndarray:
    """The kernels' NumPy view of a ``(N, C, P)`` tensor: ``(N, C, P)`` with contiguous pixels
    (NCHW), or ``(N·P, C)`` C-contiguous for a channels-last batch viewed as ``(1, C, N·H·W)``
    (channels contiguous); anything else is copied to NCHW."""
    x = x.detach()
    if x.shape[0] == 1 and x.stride(1) == 1 and x.stride(2) == x.shape[1] and x.shape[1] > 1:
        return x[0].T.numpy()
    return (x if x.stride(2) == 1 else x.contiguous()).numpy()


def _empty_rows(x: np.ndarray, channels: int) -> tuple[Tensor, np.ndarray]:
    """A new tensor with ``channels`` channels in the kernels' arrangement of ``x`` (see
    :func:`_rows_array`): the ``(N, channels, P)`` tensor for torch and the array for the kernels."""
    dtype = torch.from_numpy(x[:0]).dtype
    if x.ndim == 2:
        out = torch.empty((x.shape[0], channels), dtype=dtype)
        return out.T.unsqueeze(0), out.numpy()
    out = torch.empty((x.shape[0], channels, x.shape[2]), dtype=dtype)
    return out, out.numpy()


def _chunks(tasks: int) -> int:
    """Parallel chunks for ``tasks`` independent tiles or images: a few per thread."""
    return min(tasks, 4 * get_num_threads())


CL_WIDTH = 512  # channels-last tile width: 512 beat 128, 256, 1024 and 2048 on the 16x16 and 8x8
# maps of the cpu-budget MobileNetV2 (fwd+bwd of its five largest WHT layers: 94, 115, 108, 98, 114 ms)


def _tiles(n: int, x: np.ndarray) -> tuple[int, int]:
    """``(width, tiles)``: :func:`tile_width` for NCHW rows; for channels-last pixels
    :data:`CL_WIDTH` lanes, fewer (down to 64, a multiple of 8) where that leaves fewer than two
    tiles per thread (the 1x1 and 2x2 maps: a batch of 256 has 256 or 1,024 pixels)."""
    if x.ndim == 2:
        m = x.shape[0]
        share = -(-m // (2 * get_num_threads()))
        width = max(1, min(m, CL_WIDTH, max(64, -(-share // 8) * 8)))
        return width, -(-m // width)
    p = x.shape[2]
    width = tile_width(n, p, x.itemsize) if p else 1
    return width, x.shape[0] * -(-p // width)


def pointwise_forward(x: Tensor, t: Tensor, s: Tensor | None, cout: int, rows: int, b: int, kind: str,
                      keep_dc: bool) -> Tensor:
    """``x`` ``(N, cin, P)`` float32/64, ``t``/``s`` ``(n,)`` natural order -> ``(N, cout, P)``.

    ``rows``: channels read cyclically from ``x`` (``cin``, or ``cout`` for ``expand="repeat"``).
    ``x`` is NCHW-like (pixels contiguous) or a channels-last view ``(1, cin, N·H·W)`` (channels
    contiguous); the output is arranged the same way.
    """
    xa, ta = _rows_array(x), _array(t)
    out, oa = _empty_rows(xa, cout)
    if oa.size:
        width, tiles = _tiles(ta.shape[0], xa)
        kernel = pointwise_fwd_cl if xa.ndim == 2 else pointwise_fwd
        kernel(xa, ta, _scales_over_b(ta, _array(s), b), oa, rows, b, KIND[kind], keep_dc, width, _chunks(tiles))
    return out


def pointwise_backward(x: Tensor, g: Tensor, t: Tensor, s: Tensor | None, rows: int, b: int, kind: str,
                       keep_dc: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(dx (N, cin, P), dt (n,), ds (n,) or None)`` for ``g = dL/dy`` ``(N, cout, P)``, both
    arranged as in :func:`pointwise_forward` (``dx`` like ``x``)."""
    xa, ta = _rows_array(x), _array(t)
    ga = _rows_array(g)
    if ga.ndim != xa.ndim:  # the gradient arrives in another layout: bring it to x's
        ga = _rows_array(g.contiguous()) if xa.ndim == 3 else g.detach()[0].T.contiguous().numpy()
    n = ta.shape[0]
    width, tiles = _tiles(n, xa)
    tasks = _chunks(tiles)
    gx, gxa = _empty_rows(xa, xa.shape[-1] if xa.ndim == 2 else xa.shape[1])
    gt = np.zeros((tasks, n), dtype=xa.dtype)
    gs = np.zeros((tasks, n), dtype=xa.dtype)
    if tasks:
        kernel = pointwise_bwd_cl if xa.ndim == 2 else pointwise_bwd
        kernel(xa, ga, ta, _scales_over_b(ta, _array(s), b), gxa, gt, gs, rows, b, KIND[kind], keep_dc, width)
    return gx, torch.from_numpy(gt.sum(0)), None if s is None else torch.from_numpy(gs.sum(0))


def spatial_forward(x: Tensor, t: Tensor, s: Tensor | None, kind: str, keep_dc: bool) -> Tensor:
    """``x`` ``(M, H, W)`` float32/64, ``t``/``s`` ``(Hp, Wp)`` natural order -> ``(M, H, W)``."""
    xa, ta, sa = _array(x), _array(t), _array(s)
    out = np.empty_like(xa)
    if xa.shape[0]:
        spatial_fwd(xa, ta, ta if sa is None else sa, out, KIND[kind], keep_dc, sa is not None,
                    _chunks(xa.shape[0]))
    return torch.from_numpy(out)


def spatial_backward(x: Tensor, g: Tensor, t: Tensor, s: Tensor | None, kind: str,
                     keep_dc: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(dx (M, H, W), dt (Hp, Wp), ds (Hp, Wp) or None)`` for ``g = dL/dy`` ``(M, H, W)``."""
    xa, ga, ta, sa = _array(x), _array(g), _array(t), _array(s)
    chunks = _chunks(xa.shape[0])
    gx = np.empty_like(xa)
    gt = np.zeros((chunks, *ta.shape), dtype=xa.dtype)
    gs = np.zeros((chunks, *ta.shape), dtype=xa.dtype)
    if chunks:
        spatial_bwd(xa, ga, ta, ta if sa is None else sa, gx, gt, gs, KIND[kind], keep_dc, sa is not None)
    return torch.from_numpy(gx), torch.from_numpy(gt.sum(0)), None if s is None else torch.from_numpy(gs.sum(0))
