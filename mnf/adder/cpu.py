"""Numba CPU kernels for the adder convolution (same contracts as :mod:`mnf.adder.reference`).

Nothing of size (C*kh*kw, N*L) is ever built. Every kernel is arranged so that its innermost
loop walks contiguous memory (LLVM vectorises only such loops) and is long; which arrangement
wins depends on the layer's shape, so each pass picks its kernel by measured thresholds (the
constants below, each with the measurements behind it):

- *flat planes* (stride 1, dense, planes of at least ``FLAT_MIN`` / ``GIN_FLAT_MIN`` elements;
  the filter gradient for every stride-1 dense layer): the input is zero-padded and each
  channel's plane flattened row by row with one row width (``_flat``), so every tap ``(i, j)``
  is a constant offset into the flat plane and a sum over the pixels of a tap is one long
  contiguous loop (``_fwd_flat``, ``_gin_flat``, ``_gw_flat``). The full-precision filter
  gradient uses ``sum g * (x - F) = sum g * x - F * sum g``. The flat planes are kept between
  calls (per calling thread, see ``_flat_planes``; ``release_scratch()`` frees them).
- *dense channels last* (the other dense layers: few pixels, or stride > 1): the input is
  packed once into a zero-padded channels-last copy ``xp`` (N, H+2p, W+2p, C); the innermost
  loops run over channels. Filters are repacked ``(G, kh, kw, C/G, O/G)`` for the forward pass
  (innermost loop over output channels) and ``(G, kh, kw, O/G, C/G)`` for both gradients
  (innermost loop over input channels). Long reductions (``kh * kw * C/G >= REDUCE_MIN``) take
  ``_fwd_dense_regs`` instead: four output channels at a time, their sums kept in registers
  (filters ``(G, O/G, kh, kw, C/G)``); likewise the input gradient with ``kh * kw * O/G >=
  GIN_REDUCE_MIN`` takes ``_gin_dense_regs`` (filters ``(G, C/G, kh, kw, O/G)``).
- *depthwise* (``groups == C == O``): filters ``(kh, kw, C)``. No full-size copy at all: each
  thread packs the few input (and output-gradient) rows of one band of rows at a time into a
  channels-last scratch buffer (zero padding included) that stays in cache, and writes its
  results straight into the (N, C, H, W) output, a band at a time. Both gradients come from
  one sweep (``_bwd_dw``); the full-precision filter gradient as ``sum g * X - F * sum g``,
  whose first sum reuses the input gradient's loads.

Switching between NCHW and channels last goes through 8x8 SIMD transposes
(:func:`mnf.simd.transpose8`, in ``_pixels``) over runs of pixels that may span rows, so narrow
images (MobileNetV2's 4x4 maps) still fill whole blocks. Work is spread over threads by rows,
bands or chunks (the input gradient is a gather, so no two threads write the same element);
small calls run on one thread (see ``SERIAL_WORK``). All functions take NumPy arrays of one
float dtype (float32 or float64), any strides (the entry points make inputs C-contiguous: the
packing reads them as flat arrays), already validated by :func:`mnf.adder.adder2d`; they return
new C-contiguous arrays.
"""
import contextlib
import threading

import numba
import numpy as np
from numba import njit, prange

from mnf.simd import transpose8

# Element operations (|x - f| terms) below which one thread runs the kernel: 0.05-0.2 ms of work
# on one core. Measured on 2 idle cores, a depthwise layer of 1.8M terms (MobileNetV2, 96
# channels, 16 px, stride 2, batch 32) runs forward and backward in 0.28 ms on two threads and
# 0.54 ms on one (earlier kernels: 1.0 and 2.0 ms); below about this size waking the thread
# pool stops paying off.
SERIAL_WORK = 1 << 19


# Scratch and result arrays start on a cache line: Numba's arrays are 32-byte aligned and NumPy's
# 16, so half of their 64-byte (AVX-512) loads and stores straddled two cache lines; aligning
# them made the depthwise input-gradient sweep 30 % faster (0.275 -> 0.19 ms, 96 channels,
# stride 2, one core, measured with every array at a chosen offset) and that layer's
# forward+backward step 0.40 -> 0.35 ms.
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
def _pixels_one_by_one(af, a0, hw, c, of, ch, k0, m, w, wp, to_cl):
    """Pixels ``k0 .. m - 1`` of channel ``ch`` as in ``_pixels``, one element at a time, a row
    at a time (one division per row: per pixel it made small-C packing 4x slower, measured)."""
    k = k0
    while k < m:
        q = k % w
        n = min(w - q, m - k)
        src, dst = a0 + ch * hw + k, ((k // w) * wp + q) * c + ch
        for i in range(n):
            if to_cl:
                of[dst + i * c] = af[src + i]
            else:
                af[src + i] = of[dst + i * c]
        k += n


@njit(inline="always", cache=True)
def _pixels(af, a0, hw, c, of, m, w, wp, to_cl):
    """Move ``m`` pixels of one image between channel-first and channels-last layouts:
    ``of[pos(k) * c + ch] = af[a0 + ch * hw + k]`` if ``to_cl``, else the reverse (``k < m``,
    ``ch < c``; ``af`` flat NCHW, ``a0`` the first pixel). ``pos(k) = (k // w) * wp + k % w``:
    with ``wp = w`` one run of pixels, with ``wp > w`` rows of ``w`` pixels ``wp`` apart (room
    for padding; ``w`` must then be a multiple of 8, so that no 8x8 block spans two rows).
    Blocks run across rows where they can, so narrow images (rows of 4 pixels) still fill
    whole blocks, and the source is read as a few long streams (row by row it was 2x slower)."""
    c8, m8 = c - c % 8, m - m % 8
    if c8 == 0 or m8 == 0:  # no whole block: a loop of its own (sharing the leftover loop
        # below made rows of 4 pixels 2x slower, measured)
        for ch in range(c):
            _pixels_one_by_one(af, a0, hw, c, of, ch, 0, m, w, wp, to_cl)
        return
    step, rows = (m8, 1) if wp == w else (w, m // w)  # blocks per stretch of pixels that
    for c0 in range(0, c8, 8):  # stay together; channel blocks outermost: long NCHW streams
        for r in range(rows):
            for q0 in range(0, step, 8):
                k0, o0 = r * w + q0, (r * wp + q0) * c
                if to_cl:
                    transpose8(af, a0 + c0 * hw + k0, hw, of, o0 + c0, c)
                else:
                    transpose8(of, o0 + c0, c, af, a0 + c0 * hw + k0, hw)
    for ch in range(c):  # the leftover pixels of the blocked channels, then the other channels
        _pixels_one_by_one(af, a0, hw, c, of, ch, m8 if ch < c8 else 0, m, w, wp, to_cl)


@njit(cache=True)
def _pack(x, p):
    """(N, C, H, W) C-contiguous -> zero-padded channels-last (N, H+2p, W+2p, C). Serial: it is
    memory bound, and a parallel region costs more than it saves on a busy machine."""
    n, c, h, w = x.shape
    out = _empty((n, h + 2 * p, w + 2 * p, c), x)
    for b in range(n):
        _rows_cl(x, b, -p, p, out[b])
    return out


@njit(parallel=True, cache=True)
def _fwd_dense(xp, wt, s, oh, ow, out):
    """out[n, g*Og+k, y, x] = -sum_{i,j,c} |xp[n, ys+i, xs+j, g*Cg+c] - wt[g, i, j, c, k]|."""
    n = xp.shape[0]
    ng, kh, kw, cg, og = wt.shape
    for r in prange(n * oh):
        b, y = r // oh, r % oh
        acc = _empty((ow, og), xp)
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


# Reduction length (kh * kw * C/G) from which _fwd_dense_regs is used. Measured forward times
# (2 threads, batch 64, ms, _fwd_dense vs _fwd_dense_regs): 3x3 with 16 channels (144) 3.38 vs
# 7.33; 32 channels (288) 6.85 vs 4.28; 64 channels (576) 4.42 vs 3.00; 1x1 32->192 (32) 3.22
# vs 4.08; 1x1 576->96 (576) 1.92 vs 0.75.
REDUCE_MIN = 256


@njit(parallel=True, cache=True, fastmath={"reassoc", "nsz"})
def _fwd_dense_regs(xp, wk, s, oh, ow, zero, out):
    """The same ``out`` as ``_fwd_dense`` from filters ``wk`` (G, O/G, kh, kw, C/G).

    Each output is a reduction over the contiguous input channels of its window; four output
    channels share every input load and keep their sums in registers (``reassoc`` lets LLVM
    vectorise the reduction, so the order of the additions differs from ``_fwd_dense``).
    """
    n = xp.shape[0]
    ng, og, kh, kw, cg = wk.shape
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
                            xr = xp[b, y * s + i, q * s + j, c0:c0 + cg]
                            w0, w1, w2, w3 = wk[g, k0, i, j], wk[g, k1, i, j], wk[g, k2, i, j], wk[g, k3, i, j]
                            for c in range(cg):
                                v = xr[c]
                                s0 += abs(v - w0[c])
                                s1 += abs(v - w1[c])
                                s2 += abs(v - w2[c])
                                s3 += abs(v - w3[c])
                    out[b, g * og + k0, y, q] = -s0
                    out[b, g * og + k1, y, q] = -s1
                    out[b, g * og + k2, y, q] = -s2
                    out[b, g * og + k3, y, q] = -s3


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
        acc = _zeros((w, ng * cg), xp)
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


# Reduction length (kh * kw * O/G) from which _gin_dense_regs is used. Measured input-gradient
# times (2 threads, batch 64, ms, _gin_dense vs _gin_dense_regs + packing the gradient): 3x3
# 16 -> 16 channels (144) 13.13 vs 11.09; 32 (288) 6.73 vs 4.92; 64 (576) 5.87 vs 3.01; 1x1
# 32->192 (192) 5.18 vs 4.17; 1x1 576->96 (96) 1.78 vs 1.33; 1x1 192->32 (32) 4.68 vs 6.80.
GIN_REDUCE_MIN = 64


@njit(parallel=True, cache=True, fastmath={"reassoc", "nsz"})
def _gin_dense_regs(xp, wc, gp, s, p, one, zero, dx):
    """The same ``dx`` as ``_gin_dense`` from filters ``wc`` (G, C/G, kh, kw, O/G) and the output
    gradient packed channels last, ``gp`` (N, OH, OW, O).

    Each input-gradient element is a reduction over the output channels of the taps that read
    its pixel; four input channels share every gradient load and keep their sums in registers.
    """
    n, h, w = dx.shape[0], dx.shape[2], dx.shape[3]
    ng, cg, kh, kw, og = wc.shape
    oh, ow = gp.shape[1], gp.shape[2]
    for r in prange(n * h):
        b, yy = r // h, r % h
        for g in range(ng):
            k0 = g * og
            for c0 in range(0, cg, 4):
                m = min(4, cg - c0)  # past the last channel, lanes repeat it (same value, same store)
                ch = g * cg + c0
                c1, c2, c3 = ch + min(1, m - 1), ch + min(2, m - 1), ch + min(3, m - 1)
                for q in range(w):
                    xr = xp[b, yy + p, q + p]
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
                            gr = gp[b, y, x, k0:k0 + og]
                            w0, w1 = wc[g, c0, i, j], wc[g, c1 - g * cg, i, j]
                            w2, w3 = wc[g, c2 - g * cg, i, j], wc[g, c3 - g * cg, i, j]
                            for k in range(og):
                                t = gr[k]
                                s0 += t * _ht(w0[k] - v0, one)
                                s1 += t * _ht(w1[k] - v1, one)
                                s2 += t * _ht(w2[k] - v2, one)
                                s3 += t * _ht(w3[k] - v3, one)
                    dx[b, ch, yy, q] = s0
                    dx[b, c1, yy, q] = s1
                    dx[b, c2, yy, q] = s2
                    dx[b, c3, yy, q] = s3


@njit(cache=True)
def _ht(d, one):
    """HardTanh as two selects (Python's min/max keep NaN rules that stop vectorisation)."""
    d = one if d > one else d
    return -one if d < -one else d


@njit(cache=True)
def _sgn(d, one):
    """sign(d) in d's dtype (float literals would widen float32 arithmetic to float64)."""
    return one if d > 0 else (-one if d < 0 else one - one)


@njit(parallel=True, cache=True)
def _gw_dense(xp, wb, grad, s, sign, one, part):
    """part[t, g, i, j, k, c] = sum over thread t's output rows of grad * (x - w) (or its sign)."""
    n = xp.shape[0]
    ng, kh, kw, og, cg = wb.shape
    oh, ow = grad.shape[2], grad.shape[3]
    nt = part.shape[0]
    for t in prange(nt):
        acc = _zeros((ng, kh, kw, og, cg), xp)  # thread-local: no aliasing with inputs
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


# Stride-1 dense kernels on "flat" planes. With the input zero-padded and each channel's plane
# flattened row by row with a common row width ``wf``, every tap (i, j) becomes one constant
# offset ``i * wf + j`` into the flat plane, so a sum over the pixels of a tap is one long
# contiguous loop (the columns past the output's width are computed too and discarded, or carry
# zeros). Long contiguous loops are what LLVM vectorises well; the pixel-by-pixel kernels above
# loop over channels innermost, only 16-64 long in these networks.


@njit(parallel=True, cache=True)
def _flat(a, top, left, width, stride, tail, nt, out):
    """(N, C, H, W) any strides -> ``out`` (C, N * stride + tail), image ``b``'s plane from
    ``b * stride``: ``out[c, b * stride + (top + r) * width + left + q] = a[b, c, r, q]``, zeros
    everywhere else (padding, the columns past ``W``, the rest of each image's stride, the tail)."""
    n, c, h, w = a.shape
    for t in prange(nt):
        for u in range(t * n * c // nt, (t + 1) * n * c // nt):
            ch, b = u // n, u % n
            o = out[ch, b * stride:(b + 1) * stride]
            o[:] = 0
            for r in range(h):
                row = o[(top + r) * width + left:(top + r) * width + left + w]
                for q in range(w):
                    row[q] = a[b, ch, r, q]
    out[:, n * stride:] = 0


# The flat planes are the only full-size temporaries (a few MB per layer). They are kept between
# calls, one per role and calling thread, and only grow: allocated afresh each call, glibc
# sometimes handed them back to the OS on free and the next call page-faulted them in again
# (ResNet-20's 16-channel layer, batch 64: about 4700 faults, 18 MB of fresh pages, in one
# forward+backward step of 13-17 ms; measured).
_scratch = threading.local()


def _flat_planes(a, top, left, width, stride, tail, nt, role):
    """``_flat`` into this thread's reusable scratch array for ``role`` ("x" or "grad"); valid
    until the next call with the same role on this thread."""
    shape = (a.shape[1], a.shape[0] * stride + tail)
    buf = getattr(_scratch, role, None)
    if buf is None or buf.size < shape[0] * shape[1] or buf.dtype != a.dtype:
        buf = _aligned(shape, a)
        setattr(_scratch, role, buf)
    out = buf[:shape[0] * shape[1]].reshape(shape)
    _flat(a, top, left, width, stride, tail, nt, out)
    return out


def release_scratch() -> None:
    """Free the calling thread's kept flat planes (the benchmark does, to count them in a step's
    peak memory; a program may, after training, to return the memory)."""
    _scratch.__dict__.clear()


FLAT_CHUNK = 1024  # elements of a flat plane per inner sweep: four gradient rows of 4 KB
# Input-gradient flat planes (h rows of width ow + 2 * (kw - 1)) from which _gin_flat is used.
# Measured (2 threads, batch 64, ms, _gin_flat vs the kernel it replaces): 3x3 16ch 32px (1152)
# 3.66 vs 12.0; 32ch 16px (320) 3.60 vs 5.26; 64ch 8px (96) 6.17 vs 3.08; 1x1 32->192 16px
# (256) 1.82 vs 2.18; 1x1 576->96 4px (16) 2.08 vs 0.75: short planes make short loops.
GIN_FLAT_MIN = 256
# The same for the forward pass (output planes of oh rows of width w + 2p, kernels larger than
# 1x1). Measured (ms, as above, _fwd_flat vs the kernel it replaces): 3x3 16ch 32px 3.3 vs 3.6
# (13.3 when _fwd_dense had been compiled in the same process rather than loaded from Numba's
# cache: measured repeatedly, cause unknown; Numba issue #10617 reports fresh and cached code of
# parallel functions running at different speeds); 32ch 16px 2.8 vs 4.5; 1x1 32->192 16px 1.9
# vs 1.1 (so 1x1 keeps the old kernel).
FLAT_MIN = 256


@njit(parallel=True, cache=True, fastmath={"reassoc", "contract", "nsz"})
def _gw_flat(xf, gf, wf, kh, kw, zero, part):
    """part[t, k, c, i, j] = sum over thread t's share of ``q`` of gf[k, q] * xf[g*Cg + c, q + i*wf + j].

    ``xf``: the input padded and flattened with row width ``wf`` (``_flat``, (C, N * L + tail));
    ``gf``: the output gradient flattened the same way, (O, N * L), zeros past the output's width
    and height in each image. That is ``sum g * x`` of the full-precision filter gradient
    ``sum g * (x - w) = sum g * x - w * sum g`` (eq. 3.4): one multiply-add per term, four filters
    sharing every input load, their sums in registers; each thread sweeps its share of the
    positions of all images in chunks of ``FLAT_CHUNK`` (so the gradient rows stay in L1).
    """
    o, m = gf.shape
    nt, cg = part.shape[0], part.shape[2]
    og = o // (xf.shape[0] // cg)
    for t in prange(nt):
        acc = _zeros(part.shape[1:], xf)  # thread-local: no aliasing with inputs
        for q0 in range(t * m // nt, (t + 1) * m // nt, FLAT_CHUNK):  # gradient rows stay in L1
            q1 = min(q0 + FLAT_CHUNK, (t + 1) * m // nt)
            _gw_flat_chunk(xf, gf, wf, kh, kw, zero, q0, q1, og, acc)
        part[t] = acc


@njit(inline="always", cache=True, fastmath={"reassoc", "contract", "nsz"})
def _gw_flat_chunk(xf, gf, wf, kh, kw, zero, q0, q1, og, acc):
    """acc[k, c, i, j] += sum over q in [q0, q1) of gf[k, q] * xf[g*Cg + c, q + i*wf + j]."""
    cg = acc.shape[1]
    for u in range(gf.shape[0] // og * ((og + 3) // 4)):  # blocks of four filters of one group
        g, k0 = u // ((og + 3) // 4), u % ((og + 3) // 4) * 4
        mk = min(4, og - k0)  # past the group's last filter, lanes repeat it
        k0 += g * og
        k1, k2, k3 = k0 + min(1, mk - 1), k0 + min(2, mk - 1), k0 + min(3, mk - 1)
        g0, g1, g2, g3 = gf[k0, q0:q1], gf[k1, q0:q1], gf[k2, q0:q1], gf[k3, q0:q1]
        cbase = g * cg
        for c in range(cg):
            for i in range(kh):
                for j in range(kw):
                    xr = xf[cbase + c, q0 + i * wf + j:q1 + i * wf + j]
                    s0 = s1 = s2 = s3 = zero
                    for q in range(q1 - q0):
                        v = xr[q]
                        s0 += g0[q] * v
                        s1 += g1[q] * v
                        s2 += g2[q] * v
                        s3 += g3[q] * v
                    acc[k0, c, i, j] += s0
                    if mk > 1:  # repeated lanes (past the group's last filter) add nothing
                        acc[k1, c, i, j] += s1
                    if mk > 2:
                        acc[k2, c, i, j] += s2
                    if mk > 3:
                        acc[k3, c, i, j] += s3


@njit(inline="always", cache=True)
def _four_taps(a, base, off, t, m):
    """The runs ``a[base + off[t + k]:base + off[t + k] + m]``, k < 4: what the four taps of one
    sweep of the flat-plane kernels read."""
    return (a[base + off[t]:base + off[t] + m], a[base + off[t + 1]:base + off[t + 1] + m],
            a[base + off[t + 2]:base + off[t + 2] + m], a[base + off[t + 3]:base + off[t + 3] + m])


@njit(parallel=True, cache=True, fastmath={"reassoc", "nsz"})
def _fwd_flat(xflat, offs, fv, og, size, wf, oh, ow, zero, out):
    """out[b, k, y, x] = -sum_t |xflat[q + offs[k // og, t]] - fv[k, t]| at q = b*size + y*wf + x.

    ``xflat``: the input padded and flattened with row width ``wf`` (``_flat``, raveled), one
    image every ``size`` elements; tap ``t`` (an input channel of the group and a position
    ``i, j``) of every output sits at the constant offset ``offs[g, t]``; ``fv[k, t]`` is filter
    ``k``'s value there. Work units: a filter and a chunk of ``FLAT_CHUNK`` output positions,
    four taps sharing every load and store of the accumulator; columns past ``ow`` and rows past
    ``oh`` are computed too and dropped.
    """
    o, ntap = fv.shape
    total = out.shape[0] * size
    nch = (total + FLAT_CHUNK - 1) // FLAT_CHUNK
    for u in prange(o * nch):
        k, q0 = u // nch, u % nch * FLAT_CHUNK
        m = min(FLAT_CHUNK, total - q0)
        off, f = offs[k // og], fv[k]
        acc = _zeros((m,), xflat)
        for t in range(0, ntap - 3, 4):
            f0, f1, f2, f3 = f[t], f[t + 1], f[t + 2], f[t + 3]
            x0, x1, x2, x3 = _four_taps(xflat, q0, off, t, m)
            for q in range(m):
                acc[q] -= abs(x0[q] - f0) + abs(x1[q] - f1) + abs(x2[q] - f2) + abs(x3[q] - f3)
        for t in range(ntap - ntap % 4, ntap):
            ft, xt = f[t], xflat[q0 + off[t]:q0 + off[t] + m]
            for q in range(m):
                acc[q] -= abs(xt[q] - ft)
        b, r = q0 // size, q0 % size  # back to (N, O, OH, OW), one run of a row at a time
        y, x = r // wf, r % wf
        start = q0 - x
        while start < q0 + m:
            if y < oh:
                dst = out[b, k, y]
                for q in range(max(start, q0), min(start + ow, q0 + m)):
                    dst[q - start] = acc[q - q0]
            start += wf
            y += 1
            if y * wf == size:
                y, b = 0, b + 1


@njit(parallel=True, cache=True, fastmath={"reassoc", "contract", "nsz"})
def _gin_flat(xg, gflat, wt, offs, wg, one, dx):
    """dx[b, c, y', x'] = sum over taps of grad * HardTanh(F - x), on flat planes (stride 1).

    ``xg`` (C, N * S): the input flattened with row width ``wg``, image ``b`` from ``b * S``.
    ``gflat``: the output gradient padded by kh-1 rows and kw-1 columns and flattened the same
    way, (O, N * S + tail) raveled, so that tap ``t`` of group ``g`` (a filter ``k`` and a
    position ``i, j``) of every pixel sits at the constant offset ``offs[g, t]`` from it;
    ``wt`` (G, C/G, taps) holds the filter value of each tap. Each element sums over the taps of
    its group, four taps sharing every load and store of the accumulator. Work units: chunks of
    ``FLAT_CHUNK`` elements of the first ``h`` rows of one image's flat plane (the columns past
    ``w`` are computed too, and dropped).
    """
    ng, cg, ntap = wt.shape
    n, h, w = dx.shape[0], dx.shape[2], dx.shape[3]
    stride, plane = xg.shape[1] // n, h * wg
    per_image = (plane + FLAT_CHUNK - 1) // FLAT_CHUNK
    for u in prange(n * per_image):
        b, r0 = u // per_image, u % per_image * FLAT_CHUNK
        m = min(FLAT_CHUNK, plane - r0)
        base = b * stride + r0
        acc = _empty((m,), xg)
        for c in range(ng * cg):
            g = c // cg
            xr, f, off = xg[c, base:base + m], wt[g, c - g * cg], offs[g]
            acc[:] = 0
            for t in range(0, ntap - 3, 4):
                f0, f1, f2, f3 = f[t], f[t + 1], f[t + 2], f[t + 3]
                g0, g1, g2, g3 = _four_taps(gflat, base, off, t, m)
                for q in range(m):
                    v = xr[q]
                    acc[q] += (g0[q] * _ht(f0 - v, one) + g1[q] * _ht(f1 - v, one)
                               + g2[q] * _ht(f2 - v, one) + g3[q] * _ht(f3 - v, one))
            for t in range(ntap - ntap % 4, ntap):
                ft, gt = f[t], gflat[base + off[t]:base + off[t] + m]
                for q in range(m):
                    acc[q] += gt[q] * _ht(ft - xr[q], one)
            y, x = r0 // wg, r0 % wg  # back to (N, C, H, W): only the real pixels
            for q in range(m):
                if x < w:
                    dx[b, c, y, x] = acc[q]
                x += 1
                if x == wg:
                    x, y = 0, y + 1


# Depthwise kernels. They read the (N, C, H, W) input where it lies: each unit of work (an image
# and a band of BAND rows) packs just the rows it needs, channels last, into a per-thread scratch
# buffer that stays in cache, so no full-size copy of the input or output gradient is ever made.
BAND = 8


@njit(inline="always", cache=True)
def _zero(v):
    """v[:] = 0 for a 1-D view, as a plain loop (LLVM makes it a memset): NumPy-style slice
    assignment in Numba costs more than the packing of a whole row (measured)."""
    for k in range(v.shape[0]):
        v[k] = 0


@njit(cache=True)
def _rows_cl(a, b, r0, p, out):
    """Rows ``r0 ..`` of image ``b`` of ``a`` (N, C, H, W) channels last into ``out`` (R, W+2p, C):
    ``out[r, p+q, c] = a[b, c, r0+r, q]``; padding columns and rows outside ``[0, H)`` are zero."""
    c, h, w = a.shape[1], a.shape[2], a.shape[3]
    lo, hi = max(r0, 0), min(r0 + out.shape[0], h)
    of, rw = out.ravel(), out.shape[1] * c  # rw: elements per packed row
    for r in range(out.shape[0]):  # zero rows outside the image, and the padding columns
        if r0 + r < lo or r0 + r >= hi:
            _zero(of[r * rw:(r + 1) * rw])
        elif p > 0:
            _zero(of[r * rw:r * rw + p * c])
            _zero(of[r * rw + (p + w) * c:(r + 1) * rw])
    if hi <= lo:
        return
    if c < 8:  # no 8x8 block: element by element, row by row (through _pixels 1.5x slower,
        # measured: _pack of (64, 3, 32, 32) 0.19 vs 0.13 ms)
        for r in range(lo - r0, hi - r0):
            for ch in range(c):
                src = a[b, ch, r0 + r]
                for q in range(w):
                    out[r, p + q, ch] = src[q]
        return
    a0, start = (b * c * h + lo) * w, (lo - r0) * rw + p * c
    if p == 0 or w % 8 == 0:  # whole blocks within rows: straight into the padded rows
        _pixels(a.ravel(), a0, h * w, c, of[start:], (hi - lo) * w, w, w + 2 * p, True)
        return
    run = _empty(((hi - lo) * w * c,), a)  # else blocks across rows into a scratch run,
    _pixels(a.ravel(), a0, h * w, c, run, (hi - lo) * w, w, w, True)  # then row by row
    for r in range(hi - lo):
        src, dst = run[r * w * c:(r + 1) * w * c], of[start + r * rw:]
        for k in range(w * c):
            dst[k] = src[k]


@njit(cache=True)
def _store_rows(acc, b, y0, out):
    """out[b, c, y0 + r, q] = acc[r, q, c]: channels-last rows (R, W, C), C-contiguous, back to
    (N, C, H, W); the rows are one run of pixels in both layouts."""
    c, h, w = out.shape[1], out.shape[2], out.shape[3]
    if c < 8:  # as in _rows_cl
        for r in range(acc.shape[0]):
            for ch in range(c):
                dst = out[b, ch, y0 + r]
                for q in range(w):
                    dst[q] = acc[r, q, ch]
        return
    _pixels(out.ravel(), (b * c * h + y0) * w, h * w, c, acc.ravel(), acc.shape[0] * w, w, w, False)


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
def _fwd_dw_band(xs, wd, s, y0, y1, acc, b, out):
    """Output rows ``[y0, y1)`` of image ``b`` from its packed input rows ``xs``."""
    kh, kw, c = wd.shape
    if kh == 3 and kw == 3:  # MobileNet's 3x3: all nine taps in one sweep over the channels,
        # a[] stored once (0.22 instead of 0.28 ms for 96 channels at stride 2 on one core)
        w0, w1, w2, w3, w4, w5, w6, w7, w8 = (wd[0, 0], wd[0, 1], wd[0, 2], wd[1, 0], wd[1, 1],
                                              wd[1, 2], wd[2, 0], wd[2, 1], wd[2, 2])
        for y in range(y0, y1):
            r0, r1, r2 = xs[(y - y0) * s], xs[(y - y0) * s + 1], xs[(y - y0) * s + 2]
            for q in range(acc.shape[1]):
                a, j = acc[y - y0, q], q * s
                x0, x1, x2, x3, x4 = r0[j], r0[j + 1], r0[j + 2], r1[j], r1[j + 1]
                x5, x6, x7, x8 = r1[j + 2], r2[j], r2[j + 1], r2[j + 2]
                for ch in range(c):
                    a[ch] = -(abs(x0[ch] - w0[ch]) + abs(x1[ch] - w1[ch]) + abs(x2[ch] - w2[ch])
                              + abs(x3[ch] - w3[ch]) + abs(x4[ch] - w4[ch]) + abs(x5[ch] - w5[ch])
                              + abs(x6[ch] - w6[ch]) + abs(x7[ch] - w7[ch]) + abs(x8[ch] - w8[ch]))
        _store_rows(acc[:y1 - y0], b, y0, out)
        return
    acc[:] = 0
    for y in range(y0, y1):
        for q in range(acc.shape[1]):
            a = acc[y - y0, q]
            for i in range(kh):
                xrow, wrow = xs[(y - y0) * s + i], wd[i]
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
    _store_rows(acc[:y1 - y0], b, y0, out)


@njit(parallel=True, cache=True)
def _fwd_dw(x, wd, s, p, nt, out):
    """out[n, c, y, x] = -sum_{i,j} |Xp[n, c, ys+i, xs+j] - wd[i, j, c]| (Xp zero padded by p)."""
    n, c, w = x.shape[0], x.shape[1], x.shape[3]
    kh = wd.shape[0]
    oh, ow = out.shape[2], out.shape[3]
    for t in prange(nt):  # nt from the caller: numba.get_num_threads() here defeats caching
        u0, u1, nb = _units(t, nt, n, oh)
        xs = _empty(((min(BAND, oh) - 1) * s + kh, w + 2 * p, c), x)
        acc = _empty((min(BAND, oh), ow, c), x)
        for u in range(u0, u1):
            b, y0, y1 = _band(u, nb, oh)
            rows = xs[:(y1 - y0 - 1) * s + kh]
            _rows_cl(x, b, y0 * s - p, p, rows)
            _fwd_dw_band(rows, wd, s, y0, y1, acc, b, out)


@njit(cache=True)
def _gin_dw_band(xs, x0, xc, wd, gs, g0, s, p, r0, r1, one, acc, gacc, fuse, b, dx):
    """Input-gradient rows ``[r0, r1)`` of image ``b``: a gather over the taps that read them,
    from the packed input rows ``xs`` (input pixel ``(y', x')`` at ``xs[y' - x0, x' + xc]``) and
    output-gradient rows ``gs`` (from row ``g0``). If ``fuse``, also ``gacc[i, j, c] += grad * X``
    over the same (pixel, tap) pairs: over all bands these are all pairs of an output pixel and
    a tap that reads a real (not padding) pixel, exactly once, so ``sum grad * X`` of the filter
    gradient comes from the loads the input gradient makes anyway (padding adds 0 to it)."""
    kh, kw, c = wd.shape
    oh, ow = (dx.shape[2] + 2 * p - kh) // s + 1, (dx.shape[3] + 2 * p - kw) // s + 1
    w = acc.shape[1]
    # output column reached from column q through tap column j, or -1: a table, so the loops
    # below visit only the taps that reach an output (96 channels, stride 2: 0.50 -> 0.43 ms
    # for the whole backward on one core)
    cols = np.full((w, kw), -1, np.int64)
    for q in range(w):
        for j in range(kw):
            cols[q, j] = _tap(q + p - j, s, ow)
    acc[:] = 0
    for yy in range(r0, r1):
        for i in range((yy + p) % s, kh, s):
            y = (yy + p - i) // s
            if y < 0 or y >= oh:
                continue
            grow, wrow, garow = gs[y - g0], wd[i], gacc[i] if fuse else wd[i]  # garow: if fuse
            for q in range(w):
                a, xr = acc[yy - r0, q], xs[yy - x0, q + xc]
                for j in range(kw):
                    if cols[q, j] < 0:
                        continue
                    gr, wr = grow[cols[q, j]], wrow[j]
                    if fuse:  # one tap per sweep: with two, LLVM gave up vectorising (measured)
                        ga = garow[j]
                        for ch in range(c):
                            gv, xv = gr[ch], xr[ch]
                            a[ch] += gv * _ht(wr[ch] - xv, one)
                            ga[ch] += gv * xv
                    else:
                        for ch in range(c):
                            a[ch] += gr[ch] * _ht(wr[ch] - xr[ch], one)
    _store_rows(acc[:r1 - r0], b, r0, dx)


@njit(parallel=True, cache=True)
def _gin_dw(x, wd, grad, s, p, one, nt, dx):
    """dx[n, c, y', x'] = sum over the taps (i, j) that read (y', x') of grad * HardTanh(wd - x).
    A gather over input rows, so no two threads write the same element."""
    n, c, h, w = x.shape
    kh = wd.shape[0]
    oh, ow = grad.shape[2], grad.shape[3]
    for t in prange(nt):
        u0, u1, nb = _units(t, nt, n, h)
        gs = _empty((min(BAND, h) // s + kh, ow, c), x)
        xs = _empty((min(BAND, h), w, c), x)
        acc = _empty((min(BAND, h), w, c), x)
        for u in range(u0, u1):
            b, r0, r1 = _band(u, nb, h)
            g0 = max(0, -((kh - 1 - r0 - p) // s))  # first output row whose window reaches r0
            g1 = max(g0, min(oh, (r1 - 1 + p) // s + 1))  # one past the last reaching r1 - 1
            _rows_cl(grad, b, g0, 0, gs[:g1 - g0])
            _rows_cl(x, b, r0, 0, xs[:r1 - r0])
            _gin_dw_band(xs, r0, 0, wd, gs, g0, s, p, r0, r1, one, acc, _empty((0, 0, c), x),
                         False, b, dx)


@njit(cache=True)
def _gw_dw_band(xs, wd, gs, s, sign, one, acc):
    """acc[i, j, c] += grad * (Xp - wd) (or its sign) over packed rows ``xs`` / ``gs``."""
    kh, kw, c = wd.shape
    for y in range(gs.shape[0]):
        for q in range(gs.shape[1]):
            gr = gs[y, q]
            for i in range(kh):
                for j in range(kw):
                    xr, wr, a = xs[y * s + i, q * s + j], wd[i, j], acc[i, j]
                    if sign:
                        for ch in range(c):
                            a[ch] += gr[ch] * _sgn(xr[ch] - wr[ch], one)
                    else:
                        for ch in range(c):
                            a[ch] += gr[ch] * (xr[ch] - wr[ch])


@njit(parallel=True, cache=True)
def _gw_dw(x, wd, grad, s, p, sign, one, part):
    """part[t, i, j, c] = sum over thread t's bands of grad * (Xp - wd) (or its sign)."""
    n, c, w = x.shape[0], x.shape[1], x.shape[3]
    kh, kw = wd.shape[0], wd.shape[1]
    oh, ow = grad.shape[2], grad.shape[3]
    nt = part.shape[0]
    for t in prange(nt):
        u0, u1, nb = _units(t, nt, n, oh)
        xs = _empty(((min(BAND, oh) - 1) * s + kh, w + 2 * p, c), x)
        gs = _empty((min(BAND, oh), ow, c), x)
        acc = _zeros((kh, kw, c), x)  # private to the thread: no atomics, no false sharing
        for u in range(u0, u1):
            b, y0, y1 = _band(u, nb, oh)
            rows = xs[:(y1 - y0 - 1) * s + kh]
            _rows_cl(x, b, y0 * s - p, p, rows)
            _rows_cl(grad, b, y0, 0, gs[:y1 - y0])
            _gw_dw_band(rows, wd, gs[:y1 - y0], s, sign, one, acc)
        part[t] = acc


@njit(parallel=True, cache=True)
def _bwd_dw(x, wd, grad, s, p, sign, one, dx, part, gsum):
    """Both depthwise gradients in one sweep: ``dx`` as ``_gin_dw``; ``part[t]`` and ``gsum[t]``
    thread ``t``'s share of the filter gradient.

    Each unit (an image and a band of input rows, as in ``_gin_dw``) packs its input rows and
    output-gradient rows once and computes the input gradient of its rows. Full-precision filter
    gradient (eq. 3.4) as ``sum grad * X - F * sum grad``: ``part`` gets ``sum grad * X`` within
    the input-gradient sweep (``fuse``), ``gsum`` the sum of the output rows ``y`` whose row
    ``min(y * s, H - 1)`` lies in the unit's band (so every output row is counted exactly once).
    Sign filter gradient (eq. 3.3): ``part`` gets ``_gw_dw_band`` of those rows (the input rows
    then include the padding and the rows those output rows read), ``gsum`` stays 0.
    """
    n, c, h, w = x.shape
    kh, kw = wd.shape[0], wd.shape[1]
    oh, ow = grad.shape[2], grad.shape[3]
    nt = part.shape[0]
    for t in prange(nt):
        u0, u1, nb = _units(t, nt, n, h)
        acc = _empty((min(BAND, h), w, c), x)
        gacc = _zeros((kh, kw, c), x)  # private to the thread: no atomics
        gs_t = _zeros((c,), x)
        for u in range(u0, u1):
            b, r0, r1 = _band(u, nb, h)
            g0 = max(0, -((kh - 1 - r0 - p) // s))  # output rows reaching rows r0 .. r1 - 1
            g1 = max(g0, min(oh, (r1 - 1 + p) // s + 1))
            ya = min(oh, (r0 + s - 1) // s)  # output rows whose filter gradient this unit adds
            yb = oh if r1 == h else min(oh, (r1 + s - 1) // s)
            glo, ghi = (min(g0, ya), max(g1, yb)) if yb > ya else (g0, g1)
            xlo, xhi, xp = r0, r1, 0
            if sign and yb > ya:
                xlo, xhi, xp = min(r0, ya * s - p), max(r1, (yb - 1) * s - p + kh), p
            gs = _empty((ghi - glo, ow, c), x)
            xs = _empty((xhi - xlo, w + 2 * xp, c), x)
            _rows_cl(grad, b, glo, 0, gs)
            _rows_cl(x, b, xlo, xp, xs)
            _gin_dw_band(xs, xlo, xp, wd, gs, glo, s, p, r0, r1, one, acc, gacc, not sign, b, dx)
            if sign and yb > ya:
                _gw_dw_band(xs[ya * s - p - xlo:], wd, gs[ya - glo:yb - glo], s, sign, one, gacc)
            elif yb > ya:
                for y in range(ya - glo, yb - glo):
                    for q in range(ow):
                        gr = gs[y, q]
                        for ch in range(c):
                            gs_t[ch] += gr[ch]
        part[t] = gacc
        gsum[t] = gs_t


def backward(x, w, grad, stride=1, padding=0, groups=1, sign=False):
    """``(grad_input(...), grad_weight(...))`` in one call; depthwise layers share one sweep
    (``_bwd_dw``: the input and output-gradient rows are packed once for both)."""
    if not _depthwise(x, w, groups):
        return (grad_input(x, w, grad, stride, padding, groups),
                grad_weight(x, w, grad, stride, padding, groups, sign))
    x, grad = np.ascontiguousarray(x), np.ascontiguousarray(grad)
    dx = _empty(x.shape, x)
    with _threads(2 * _work(x, w, grad.shape[2], grad.shape[3])) as nt:
        wd = _dw_filters(w)
        nt = max(1, min(nt, x.shape[0] * x.shape[2]))
        part, gsum = _empty((nt,) + wd.shape, x), _empty((nt, wd.shape[2]), x)
        _bwd_dw(x, wd, grad, stride, padding, sign, x.dtype.type(1), dx, part, gsum)
    dw = part.sum(0) - wd * gsum.sum(0)  # (kh, kw, C); gsum is 0 for the sign gradient
    return dx, np.ascontiguousarray(dw.transpose(2, 0, 1)[:, None])


def _sizes(x, w, stride, padding):
    oh = (x.shape[2] + 2 * padding - w.shape[2]) // stride + 1
    ow = (x.shape[3] + 2 * padding - w.shape[3]) // stride + 1
    return oh, ow


def _depthwise(x, w, groups):
    return groups == x.shape[1] == w.shape[0]


def _dw_filters(w):
    """Depthwise filters (C, 1, kh, kw) -> (kh, kw, C): channels innermost, as in the scratch rows."""
    out = _empty(w.shape[2:] + w.shape[:1], w)
    out[...] = w[:, 0].transpose(1, 2, 0)
    return out


def _grouped(w, groups, order):
    """Filters (O, Cg, kh, kw) -> (G, kh, kw, *) with the last two axes in ``order``, or, for
    ``order="k"``, (G, O/G, kh, kw, Cg): one contiguous window per output channel, or, for
    ``order="c"``, (G, Cg, kh, kw, O/G): output channels innermost."""
    o, cg, kh, kw = w.shape
    wg = w.reshape(groups, o // groups, cg, kh, kw)  # axes g, k, c, i, j
    axes = {"ck": (0, 3, 4, 2, 1), "kc": (0, 3, 4, 1, 2), "k": (0, 1, 3, 4, 2), "c": (0, 2, 3, 4, 1)}[order]
    return np.ascontiguousarray(wg.transpose(axes))


def _work(x, w, oh, ow):
    """Number of |x - f| terms of one pass: N * O * OH * OW * (C/groups) * kh * kw."""
    return x.shape[0] * oh * ow * w.size


@contextlib.contextmanager
def _threads(work):
    """Numba threads for a kernel call of ``work`` element operations: all, or one if it is small."""
    nt = numba.get_num_threads()
    if work >= SERIAL_WORK or nt == 1:
        yield nt
        return
    numba.set_num_threads(1)
    try:
        yield 1
    finally:
        numba.set_num_threads(nt)


def _flat_input(x, kh, kw, padding, nt):
    """The zero-padded input as flat planes of row width ``wf = W + 2p``, one image every
    ``size = (H + 2p) * wf`` elements, with a zero tail for the last taps: ``(xf, wf, size)``."""
    wf = x.shape[3] + 2 * padding
    size = (x.shape[2] + 2 * padding) * wf
    return _flat_planes(x, padding, padding, wf, size, (kh - 1) * wf + kw - 1, nt, "x"), wf, size


def _fwd_flat_call(x, w, padding, groups, nt, out):
    """Lay out the flat input planes and tap offsets for ``_fwd_flat`` (stride 1)."""
    o, cg, kh, kw = w.shape
    xf, wf, size = _flat_input(x, kh, kw, padding, nt)
    i, j = np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij")
    taps = (np.arange(cg)[:, None] * xf.shape[1] + (i * wf + j).ravel()[None, :]).ravel()
    offs = np.ascontiguousarray(taps[None, :] + (np.arange(groups) * cg * xf.shape[1])[:, None])
    fv = np.ascontiguousarray(w.reshape(o, -1))  # (O, cg * kh * kw): the same tap order
    _fwd_flat(xf.ravel(), offs, fv, o // groups, size, wf, out.shape[2], out.shape[3], x.dtype.type(0), out)


def forward(x, w, stride=1, padding=0, groups=1):
    """Adder output ``Y`` (N, O, OH, OW) = -sum |X - F| over each window (eq. 3.1)."""
    x = np.ascontiguousarray(x)  # the packing reads x as one flat array
    oh, ow = _sizes(x, w, stride, padding)
    out = _empty((x.shape[0], w.shape[0], oh, ow), x)
    with _threads(_work(x, w, oh, ow)) as nt:
        if _depthwise(x, w, groups):
            _fwd_dw(x, _dw_filters(w), stride, padding, nt, out)
        elif stride == 1 and w.shape[2] * w.shape[3] > 1 and oh * (x.shape[3] + 2 * padding) >= FLAT_MIN:
            _fwd_flat_call(x, w, padding, groups, nt, out)
        elif w[0].size >= REDUCE_MIN:
            _fwd_dense_regs(_pack(x, padding), _grouped(w, groups, "k"), stride, oh, ow, x.dtype.type(0), out)
        else:
            _fwd_dense(_pack(x, padding), _grouped(w, groups, "ck"), stride, oh, ow, out)
    return out


def _gin_flat_call(x, w, grad, padding, groups, nt, dx):
    """Lay out the flat planes and tap offsets for ``_gin_flat`` (stride 1)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh, ow = grad.shape[2], grad.shape[3]
    wg = ow + 2 * (kw - 1)                 # >= wd + padding + kw - 1: every tap of a pixel fits
    size = (oh + 2 * (kh - 1)) * wg        # per-image stride, >= h * wg
    tail = (padding + kh) * wg + padding + kw
    xg = _flat_planes(x, 0, 0, wg, size, 0, nt, "x")
    gg = _flat_planes(grad, kh - 1, kw - 1, wg, size, tail, nt, "grad")
    og = o // groups
    k, i, j = np.meshgrid(np.arange(og), np.arange(kh), np.arange(kw), indexing="ij")
    # grad[y' + p - i, x' + p - j] sits at (y' + p - i + kh - 1) * wg + (x' + p - j + kw - 1)
    rel = (k * gg.shape[1] + (padding + kh - 1 - i) * wg + padding + kw - 1 - j).ravel()
    offs = np.ascontiguousarray(rel[None, :] + (np.arange(groups) * og * gg.shape[1])[:, None])
    wt = np.ascontiguousarray(w.reshape(groups, og, cg, kh * kw).transpose(0, 2, 1, 3).reshape(groups, cg, -1))
    _gin_flat(xg, gg.ravel(), wt, offs, wg, x.dtype.type(1), dx)


def grad_input(x, w, grad, stride=1, padding=0, groups=1):
    """Surrogate input gradient (N, C, H, W): sum of ``grad * HardTanh(F - X)`` (eq. 3.5-3.6)."""
    x, grad = np.ascontiguousarray(x), np.ascontiguousarray(grad)
    dx = _empty(x.shape, x)
    one = x.dtype.type(1)
    with _threads(_work(x, w, grad.shape[2], grad.shape[3])) as nt:
        if _depthwise(x, w, groups):
            _gin_dw(x, _dw_filters(w), grad, stride, padding, one, nt, dx)
        elif stride == 1 and x.shape[2] * (grad.shape[3] + 2 * w.shape[3] - 2) >= GIN_FLAT_MIN:
            _gin_flat_call(x, w, grad, padding, groups, nt, dx)
        elif w.shape[0] // groups * w.shape[2] * w.shape[3] >= GIN_REDUCE_MIN:
            _gin_dense_regs(_pack(x, padding), _grouped(w, groups, "c"), _pack(grad, 0), stride, padding,
                            one, x.dtype.type(0), dx)
        else:
            _gin_dense(_pack(x, padding), _grouped(w, groups, "kc"), grad, stride, padding, one, dx)
    return dx


def grad_weight(x, w, grad, stride=1, padding=0, groups=1, sign=False):
    """Filter gradient (O, C/groups, kh, kw): sum of ``grad * (X - F)`` (eq. 3.4), or of
    ``grad * sign(X - F)`` (eq. 3.3) when ``sign``."""
    x, grad = np.ascontiguousarray(x), np.ascontiguousarray(grad)
    with _threads(_work(x, w, grad.shape[2], grad.shape[3])) as nt:
        nt = max(1, min(nt, x.shape[0] * grad.shape[2]))  # one partial gradient per thread
        if _depthwise(x, w, groups):
            wd = _dw_filters(w)
            part = _empty((nt,) + wd.shape, x)
            _gw_dw(x, wd, grad, stride, padding, sign, x.dtype.type(1), part)
            return np.ascontiguousarray(part.sum(0).transpose(2, 0, 1)[:, None])
        if stride == 1 and not sign:  # sum g * (x - w) = sum g * x - w * sum g (eq. 3.4)
            kh, kw = w.shape[2], w.shape[3]
            xf, wf, size = _flat_input(x, kh, kw, padding, nt)
            gf = _flat_planes(grad, 0, 0, wf, size, 0, nt, "grad")  # same layout, zeros past OH x OW
            part = _empty((nt,) + w.shape, x)
            _gw_flat(xf, gf, wf, kh, kw, x.dtype.type(0), part)
            # per-image sums along contiguous rows (NumPy sums those pairwise: accurate in
            # float32), then over images; 0.15 ms instead of 0.34 for an axis=(0, 2, 3) sum in float64
            gsum = grad.reshape(grad.shape[0], grad.shape[1], -1).sum(axis=2).sum(axis=0)
            return np.ascontiguousarray(part.sum(0) - w * gsum[:, None, None, None])
        wb = _grouped(w, groups, "kc")
        part = _empty((nt,) + wb.shape, x)
        _gw_dense(_pack(x, padding), wb, grad, stride, sign, x.dtype.type(1), part)
    # axes g, i, j, k, c -> (g, k, c, i, j) = (O, C/G, kh, kw)
    return np.ascontiguousarray(part.sum(0).transpose(0, 3, 4, 1, 2).reshape(w.shape))
