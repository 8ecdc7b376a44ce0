"""Numba CUDA kernels for the fast Walsh-Hadamard transform.

All kernels take ``(outer, n, inner)`` device arrays of any strides (a transform row is
``x[o, :, i]``) and compute ``out[o, k, i] = scale * (H @ x[o, :, i])[perm[k]]`` (``H`` natural
order, ``perm`` int64 of length ``n``; the identity for the natural order).

- ``n <= shared_max(dtype)`` (4096 float32 / 2048 float64, 16 KB of shared memory): one thread
  block per row; the row is loaded once into shared memory, all ``log2 n`` butterfly stages run
  there (radix-4: one ``syncthreads`` per two stages), and the ordering gather and scale are fused
  into the store.
- longer rows: multi-pass over global memory, one launch per pair of stages (radix-4, in place),
  then one gather+scale launch.

Coalescing is best when the transform axis is contiguous (``inner == 1``); strided rows work but
read with stride ``inner``. ``fwht_cuda`` accepts Numba device arrays (``cuda.to_device``, the
simulator tests) and anything ``cuda.as_cuda_array`` accepts. ``transform`` picks the launches
(ordering indices cached per ``(n, order, device)``, then ``fwht_cuda``), plain Python that also
runs under the simulator; ``transform_torch`` is the bridge ``fwht.py`` calls, torch tensor in
and torch tensor out on torch's current stream (the same as ``cpu.transform_torch``). Kernels
compile lazily: importing this module needs no GPU.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, float64

from mnf.transforms.orderings import gather_indices

SHARED_MAX = {np.dtype(np.float32): 4096, np.dtype(np.float64): 2048}  # 16 KB per block
THREADS = 256


def _make_shared_kernel(nbtype, size: int):
    """Row-per-block kernel with a ``size``-element shared buffer of ``nbtype``."""

    def kernel(x, out, perm, scale):
        buf = cuda.shared.array(size, nbtype)
        n = x.shape[1]
        inner = x.shape[2]
        t = cuda.threadIdx.x
        nt = cuda.blockDim.x
        for row in range(cuda.blockIdx.x, x.shape[0] * inner, cuda.gridDim.x):
            o = row // inner
            i = row - o * inner
            for j in range(t, n, nt):
                buf[j] = x[o, j, i]
            cuda.syncthreads()
            h = 1
            while 4 * h <= n:           # two stages per pass: quadruples j, j+h, j+2h, j+3h
                for q in range(t, n // 4, nt):
                    j = (q // h) * 4 * h + q % h
                    a, b, c, d = buf[j], buf[j + h], buf[j + 2 * h], buf[j + 3 * h]
                    buf[j] = a + b + c + d
                    buf[j + h] = a - b + c - d
                    buf[j + 2 * h] = a + b - c - d
                    buf[j + 3 * h] = a - b - c + d
                cuda.syncthreads()
                h *= 4
            if h < n:                   # one radix-2 stage left when log2 n is odd
                for p in range(t, n // 2, nt):
                    j = (p // h) * 2 * h + p % h
                    a, b = buf[j], buf[j + h]
                    buf[j] = a + b
                    buf[j + h] = a - b
                cuda.syncthreads()
            for k in range(t, n, nt):
                out[o, k, i] = buf[perm[k]] * scale
            cuda.syncthreads()          # buf is reused by the next row

    return cuda.jit(kernel)


shared_f32 = _make_shared_kernel(float32, SHARED_MAX[np.dtype(np.float32)])
shared_f64 = _make_shared_kernel(float64, SHARED_MAX[np.dtype(np.float64)])


@cuda.jit
def stage4(src, dst, h):
    """Stages h and 2h (radix-4) on every row, ``dst`` may be ``src`` (each thread owns 4 slots)."""
    n = src.shape[1]
    inner = src.shape[2]
    quarter = n // 4
    total = src.shape[0] * quarter * inner
    for g in range(cuda.grid(1), total, cuda.gridsize(1)):
        i = g % inner                   # inner fastest, then the butterfly index: coalesced
        q = (g // inner) % quarter
        o = g // (inner * quarter)
        j = (q // h) * 4 * h + q % h
        a, b, c, d = src[o, j, i], src[o, j + h, i], src[o, j + 2 * h, i], src[o, j + 3 * h, i]
        dst[o, j, i] = a + b + c + d
        dst[o, j + h, i] = a - b + c - d
        dst[o, j + 2 * h, i] = a + b - c - d
        dst[o, j + 3 * h, i] = a - b - c + d


@cuda.jit
def stage2(src, dst, h):
    """Stage h (radix-2) on every row, ``dst`` may be ``src``."""
    n = src.shape[1]
    inner = src.shape[2]
    half = n // 2
    total = src.shape[0] * half * inner
    for g in range(cuda.grid(1), total, cuda.gridsize(1)):
        i = g % inner
        p = (g // inner) % half
        o = g // (inner * half)
        j = (p // h) * 2 * h + p % h
        a, b = src[o, j, i], src[o, j + h, i]
        dst[o, j, i] = a + b
        dst[o, j + h, i] = a - b


@cuda.jit
def gather_scale(src, out, perm, scale):
    """out[o, k, i] = scale * src[o, perm[k], i]."""
    n = src.shape[1]
    inner = src.shape[2]
    total = src.shape[0] * n * inner
    for g in range(cuda.grid(1), total, cuda.gridsize(1)):
        i = g % inner
        k = (g // inner) % n
        o = g // (inner * n)
        out[o, k, i] = src[o, perm[k], i] * scale


def _grid(work: int) -> int:
    return max(1, min(4096, math.ceil(work / THREADS)))


def fwht_cuda(x, out, perm, scale: float, stream=0, shared_max: int | None = None) -> None:
    """Launch the transform of ``x`` (``(outer, n, inner)``) into ``out`` (same shape) on ``stream``.

    ``x``, ``out``: float32/float64 device arrays (or CUDA-array-interface objects), same dtype;
    ``perm``: int64 device array ``(n,)``; ``scale``: python float; ``shared_max``: longest row
    for the shared-memory kernel (default ``SHARED_MAX[dtype]``; lower it to test the multi-pass
    path). ``x`` is never written; ``out`` may not alias ``x``.
    """
    x, out, perm = (a if hasattr(a, "copy_to_host") else cuda.as_cuda_array(a)
                    for a in (x, out, perm))
    dtype = np.dtype(x.dtype)
    if dtype not in SHARED_MAX or out.dtype != dtype:
        raise ValueError(f"x and out must both be float32 or float64, got {x.dtype} and {out.dtype}")
    if x.ndim != 3 or out.shape != x.shape:
        raise ValueError(f"x and out must have the same 3-d shape, got {x.shape} and {out.shape}")
    outer, n, inner = x.shape
    if n < 1 or n & (n - 1) or perm.shape != (n,):
        raise ValueError(f"need n a power of two and perm of shape ({n},), got n={n}, {perm.shape}")
    if outer * inner == 0:
        return
    scale = dtype.type(scale)
    limit = SHARED_MAX[dtype] if shared_max is None else min(shared_max, SHARED_MAX[dtype])
    if n <= limit:
        kernel = shared_f32 if dtype == np.float32 else shared_f64
        threads = min(THREADS, max(32, n // 4))
        kernel[min(outer * inner, 65535), threads, stream](x, out, perm, scale)
        return
    work = cuda.device_array(x.shape, dtype=dtype, stream=stream)
    src, h = x, 1
    while 4 * h <= n:
        stage4[_grid(outer * inner * n // 4), THREADS, stream](src, work, h)
        src, h = work, 4 * h
    if h < n:
        stage2[_grid(outer * inner * n // 2), THREADS, stream](src, work, h)
    gather_scale[_grid(outer * inner * n), THREADS, stream](work, out, perm, scale)


_perm_cache: dict = {}


def device_perm(n: int, order: str, device, to_device):
    """The int64 gather indices of ``order`` at length ``n`` on ``device``, copied there once.

    Derived from ``orderings.gather_indices(n, order)`` (what the CPU path uses; the natural
    order's empty array becomes ``arange(n)``) and cached per ``(n, order, device)``: the ordering
    is part of the key, since e.g. Walsh and dyadic indices of the same ``n`` have the same size.
    ``to_device(host_array)`` makes the device copy (``cuda.to_device`` for Numba device arrays,
    ``torch.as_tensor(..., device=...)`` in :func:`transform_torch`); ``device`` is any hashable
    naming where it lives.
    """
    key = (n, order, device)
    p = _perm_cache.get(key)
    if p is None:
        host = gather_indices(n, order)
        p = _perm_cache[key] = to_device(host if host.size else np.arange(n, dtype=np.int64))
    return p


def transform(x, out, order: str, scale: float, stream=0, device=None, to_device=None) -> None:
    """``out = scale * (H @ x)[perm]`` along axis 1 of ``(outer, n, inner)`` device arrays.

    The device-side launches of ``fwht``, plain Python down to the kernel launches (so it runs
    under Numba's simulator): the ordering's device indices from :func:`device_perm`, then
    :func:`fwht_cuda` on ``stream``. ``x``, ``out``: Numba device arrays or CUDA-array-interface
    objects (float32/float64, same shape); ``order``: ``"hadamard" | "walsh" | "dyadic"``;
    ``device``, ``to_device``: the permutation cache's device key and copy function (default:
    ``None`` and ``cuda.to_device``, Numba's current device).
    """
    perm = device_perm(x.shape[1], order, device, cuda.to_device if to_device is None else to_device)
    fwht_cuda(x, out, perm, scale, stream)


def transform_torch(x3, order: str, scale: float):
    """:func:`transform` for a CUDA tensor ``(outer, n, inner)``: a new tensor of its shape.

    The only torch-specific part: the output allocated by torch, the Numba views
    (``cuda.as_cuda_array``, no copies), the external stream wrapping torch's current stream,
    and the permutation allocated by torch on ``x3``'s device.
    """
    import torch

    out3 = torch.empty(x3.shape, dtype=x3.dtype, device=x3.device)
    stream = cuda.external_stream(torch.cuda.current_stream(x3.device).cuda_stream)
    # the interface exposes raw memory: a neg-bit view (e.g. ``z.conj().imag``) must be materialised
    transform(cuda.as_cuda_array(x3.detach().resolve_neg()), cuda.as_cuda_array(out3), order, scale, stream,
              x3.device, lambda p: torch.as_tensor(p, device=x3.device))
    return out3
