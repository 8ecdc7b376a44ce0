"""Numba CPU kernels for the fast Walsh-Hadamard transform (see ``reference.py`` for the algorithm).

- ``butterfly_(buf)``: in-place, unnormalized, natural-order WHT of one 1-D float array of
  power-of-two length, checked (from Python and, inlined, from ``njit`` code);
  ``butterfly_unchecked_`` is the same without the length check, for kernels that call it per
  row on buffers whose sizes were checked in Python (the fused WHT layer kernels).
- ``butterfly_cols_(buf, lo, n, w)``: the same down rows ``lo..lo+n`` of a 2-D buffer, for ``w``
  columns at once (also inlined by the fused WHT layer kernels).
- ``fwht_rows(x, out, perm, scale)``: every row of a ``(rows, n)`` array (any strides).
- ``fwht_cols(x, out, perm, scale, width)``: the middle axis of an ``(outer, n, inner)`` array,
  vectorised across ``inner`` (the channel axis of NCHW: ``inner = H * W``), no gathering.

Both batched kernels compute ``out[..., k, ...] = scale * (H @ x)[perm[k]]`` along the transform
axis (``H`` natural order; ``perm`` empty means the identity), so orderings are one index gather
and normalization one multiply: ``fwht_cols`` fuses both into its final store, ``fwht_rows``
applies them in a second sweep over the row (see the comment there).

Speed: on unit-stride rows the first six stages (three for n = 8, four for 16, five for 32) run
in SIMD registers, one 8-wide vector per 8 elements (``_simd_h8`` ... ``_simd_h64``); strided rows
take a scalar radix-8 pass for the first three. The remaining stages are radix-4 passes (two stages
per sweep over memory) whose inner loop is over contiguous elements, and rows longer than
``BLOCK`` first finish all stages that fit in an L1-sized chunk.
"""
from __future__ import annotations

import numpy as np
import torch
from llvmlite import ir
from numba import get_num_threads, njit, prange, types
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

from torch import Tensor

from mnf._check import ArgumentTypeError
from mnf.simd import vector_pointer
from mnf.transforms.orderings import gather_indices

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


def _simd_kernel(m: int):
    """An intrinsic ``f(src, i, dst, j)``: ``dst[j:j+8m] = H_{8m} @ src[i:i+8m]`` in registers.

    Both arrays must have unit stride (float32 or float64). Written in LLVM IR because the first
    three stages mix lanes *within* a vector, which LLVM does not find on its own in scalar code,
    and the scalar radix-8 pass (``_radix8``) is several times slower than this one, which runs
    near the speed of a copy (benchmarks/bench_fwht.py; book/notes/transforms.md). Stage ``h`` in {1, 2, 4} is
    ``v <- v * sign_h + swap_h(v)``: ``swap_h`` exchanges lanes ``k`` and ``k ^ h`` (a shuffle) and
    ``sign_h[k] = -1`` where bit ``h`` of ``k`` is set, so lane ``k`` gets ``a + b`` and lane
    ``k ^ h`` gets ``a - b``; multiplying by +-1 is exact, so the result is the scalar butterfly's
    bit for bit. Stages ``h >= 8`` are plain butterflies between whole vectors. Keeping 8m elements
    in registers (m <= 8: 8 vector registers for float32) saves log2(m) sweeps over memory.
    """
    @intrinsic
    def simd_h(typingctx, src, i, dst, j):
        if not (isinstance(src, types.Array) and isinstance(dst, types.Array)
                and src.dtype == dst.dtype and src.dtype in (types.float32, types.float64)):
            return None

        def codegen(context, builder, signature, args):
            sty, _, dty, _ = signature.args
            vty = ir.VectorType(context.get_value_type(sty.dtype), 8)
            align = sty.dtype.bitwidth // 8
            src_data = context.make_array(sty)(context, builder, args[0]).data
            dst_data = context.make_array(dty)(context, builder, args[2]).data

            def vector_ptr(data, start, k):  # &data[start + 8k]
                return vector_pointer(builder, data, builder.add(start, ir.Constant(start.type, 8 * k)), vty)

            v = [builder.load(vector_ptr(src_data, args[1], k), align=align) for k in range(m)]
            for h in (1, 2, 4):
                swap = ir.Constant(ir.VectorType(ir.IntType(32), 8), [k ^ h for k in range(8)])
                sign = ir.Constant(vty, [-1.0 if k & h else 1.0 for k in range(8)])
                v = [builder.fadd(builder.fmul(u, sign),
                                  builder.shuffle_vector(u, ir.Constant(vty, ir.Undefined), swap))
                     for u in v]
            h = 1
            while h < m:
                for k in range(m):
                    if not k & h:
                        a, b = v[k], v[k + h]
                        v[k], v[k + h] = builder.fadd(a, b), builder.fsub(a, b)
                h *= 2
            for k in range(m):
                builder.store(v[k], vector_ptr(dst_data, args[3], k), align=align)
            return context.get_dummy_value()

        return types.void(src, i, dst, j), codegen

    return simd_h


_simd_h8, _simd_h16, _simd_h32, _simd_h64 = (_simd_kernel(m) for m in (1, 2, 4, 8))


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
    simd = src.strides[0] == src.itemsize and dst.strides[0] == dst.itemsize
    if simd and n <= 32:  # the whole row in registers
        if n == 8:
            _simd_h8(src, 0, dst, 0)
        elif n == 16:
            _simd_h16(src, 0, dst, 0)
        else:
            _simd_h32(src, 0, dst, 0)
        return
    chunk = min(n, BLOCK)
    for lo in range(0, n, chunk):       # everything that fits in one L1 chunk first ...
        if simd:
            for i in range(lo, lo + chunk, 64):
                _simd_h64(src, i, dst, i)
            _stages(dst, lo, lo + chunk, 64)
        else:
            _radix8(src, dst, lo, lo + chunk)
            _stages(dst, lo, lo + chunk, 8)
    if n > chunk:                       # ... then the long-distance stages over the whole row
        _stages(dst, 0, n, chunk)


@njit(inline="always", cache=True)
def butterfly_unchecked_(buf):
    """``buf <- hadamard(len(buf)) @ buf`` with no checks: the caller guarantees a 1-D float array
    of power-of-two length (the fused WHT layer kernels, whose sizes are checked in Python)."""
    _transform(buf, buf)


def butterfly_(buf: np.ndarray) -> None:
    """In place: ``buf <- hadamard(len(buf)) @ buf`` (unnormalized, natural order).

    ``buf``: a writeable 1-D float32 or float64 NumPy array (any stride) whose length is a power
    of two. Callable from Python and from ``njit`` code, where it is inlined. From Python a wrong
    type raises ``TypeError`` and a wrong length ``ValueError``; inside ``njit`` code a wrong type
    fails to compile (``TypingError``) and a wrong length raises ``ValueError`` at run time (one
    comparison per call), so it never writes outside ``buf``.
    """
    if not isinstance(buf, np.ndarray) or buf.ndim != 1 or buf.dtype not in (np.float32, np.float64):
        what = (f"a {buf.ndim}-d {buf.dtype} array" if isinstance(buf, np.ndarray)
                else f"{type(buf).__name__}")
        raise ArgumentTypeError(f"butterfly_: buf must be a 1-D float32 or float64 NumPy array, got {what}")
    n = buf.shape[0]
    if n < 1 or n & (n - 1):
        raise ValueError(f"butterfly_: len(buf) must be a power of two >= 1, got {n}")
    if not buf.flags.writeable:
        raise ValueError("butterfly_: buf must be writeable (it is transformed in place), got a read-only array")
    _butterfly_checked(buf)


@overload(butterfly_, inline="always")
def _butterfly_overload(buf):
    if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.dtype in (types.float32, types.float64)
            and buf.mutable):
        raise TypingError(f"butterfly_: buf must be a writeable 1-D float32 or float64 array, got {buf}")

    def impl(buf):
        n = buf.shape[0]
        if n < 1 or n & (n - 1):
            raise ValueError("butterfly_: len(buf) must be a power of two >= 1")
        _transform(buf, buf)
    return impl


@njit(cache=True)
def _butterfly_checked(buf):
    butterfly_(buf)


@njit(parallel=True, cache=True)
def fwht_rows(x, out, perm, scale, nchunks):
    """out[r, k] = scale * (H @ x[r])[perm[k]] for x, out of shape (rows, n); out C-contiguous.

    ``perm``: int64 ``(n,)`` or empty for the natural order; ``scale``: a float (1.0 = none);
    ``nchunks``: rows are split into this many parallel chunks (a few per thread).
    """
    rows, n = x.shape
    nchunks = max(1, min(rows, nchunks))
    # No scratch array in the transform loop: one alive there costs every row far more than the
    # second sweep for ordering and scale does (benchmarks/bench_fwht.py; book/notes/transforms.md).
    for c in prange(nchunks):
        for r in range(c * rows // nchunks, (c + 1) * rows // nchunks):
            _transform(x[r], out[r])
    if perm.shape[0] == 0 and scale == 1.0:
        return
    for c in prange(nchunks):
        tmp = np.empty(n, dtype=out.dtype)
        for r in range(c * rows // nchunks, (c + 1) * rows // nchunks):
            if perm.shape[0] == 0:
                for k in range(n):
                    out[r, k] *= scale
                continue
            for k in range(n):
                tmp[k] = out[r, k]
            for k in range(n):
                out[r, k] = tmp[perm[k]] * scale


@njit(inline="always", cache=True)
def butterfly_cols_(buf, lo, n, w):
    """In place: ``buf[lo:lo+n, :w] <- H_n @ buf[lo:lo+n, :w]`` (natural order, unnormalized).

    The transform runs down the rows of a 2-D buffer, for ``w`` columns at once: radix-8 passes
    (three stages per sweep: fewer loads and stores per addition), then one radix-4 or radix-2
    pass for the remaining stages; every inner loop runs over ``w`` contiguous elements (SIMD
    across columns). ``fwht_cols`` and the fused WHT layer kernels of ``mnf.wht_layer.cpu`` call
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


def transform(x3: np.ndarray, order: str, scale: float, out3: np.ndarray | None = None) -> np.ndarray:
    """``out[o, k, i] = scale * (H @ x3[o, :, i])[perm[k]]``: a C-contiguous ``(outer, n, inner)``,
    new or ``out3`` (C-contiguous, of ``x3``'s shape and dtype) if given.

    ``x3`` float32/float64, any strides; ``perm`` from ``order``. The row kernel when ``inner == 1``,
    else the column kernel; their serial twins below ``PARALLEL_MIN_SIZE`` elements. Every ``n``
    takes the butterflies: a dense product is no faster even for tiny ``n``
    (book/notes/transforms.md).
    """
    rows, n, cols = x3.shape
    out3 = np.empty(x3.shape, dtype=x3.dtype) if out3 is None else out3
    if x3.size == 0:
        return out3
    perm, s = gather_indices(n, order), x3.dtype.type(scale)
    if cols == 1:
        kernel = fwht_rows if x3.size >= PARALLEL_MIN_SIZE else fwht_rows_serial
        kernel(x3[:, :, 0], out3[:, :, 0], perm, s, 4 * get_num_threads())
    else:
        kernel = fwht_cols if x3.size >= PARALLEL_MIN_SIZE else fwht_cols_serial
        kernel(x3, out3, perm, s, tile_width(n, cols, x3.dtype.itemsize))
    return out3


def transform_torch(x3: Tensor, order: str, scale: float) -> Tensor:
    """:func:`transform` for a CPU tensor: tensor in, new tensor out (the NumPy views share memory).

    The output comes from torch's allocator, which keeps large blocks for reuse: a fresh NumPy
    array of that size is new pages every call (benchmarks/bench_fwht.py, fwd+bwd rows)."""
    out3 = torch.empty(x3.shape, dtype=x3.dtype)
    transform(x3.detach().resolve_conj().resolve_neg().numpy(), order, scale, out3.numpy())
    return out3
