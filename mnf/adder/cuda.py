"""Numba CUDA kernels for the adder convolution (contracts of :mod:`mnf.adder.reference`).

Work partitioning follows Urso (2022) section 4.2:

- forward and input gradient: one thread per output / input element, grid-stride loop over the
  flattened (N, O, OH, OW) / (N, C, H, W) tensor; each thread loops over its window's
  ``C/groups * kh * kw`` taps (forward) or over the outputs that read its element (input gradient,
  a gather: no atomics). Padded positions are read as 0.
- filter gradient: one block per filter element (grid-stride over elements if there are more than
  ``MAX_BLOCKS``). Warp ``w`` of the block takes batch items ``w, w + n_warps, ...``; lane ``l``
  takes output pixels ``l, l + 32, ...``; partial sums meet in a shared-memory tree reduction and
  thread 0 writes the result.

Launchers take torch CUDA tensors (viewed with ``numba.cuda.as_cuda_array`` and launched on
torch's current stream, no host copies; results are torch tensors) or Numba device arrays
(launched on the default stream; results are device arrays, as used by the simulator tests).
Inputs must share one dtype, float32 or float64, and be validated by :func:`mnf.adder.adder2d`.
"""
import math

import numpy as np
from numba import cuda, float32, float64, int64, types

THREADS = 256  # threads per block for every kernel (a power of two, multiple of the warp size)
MAX_BLOCKS = 4096
WARP = 32


@cuda.jit
def forward_kernel(x, w, s, p, groups, one, out):
    """out[n, o, y, x] = -sum_{c, i, j} |x[n, g*Cg+c, ys+i-p, xs+j-p] - w[o, c, i, j]|."""
    n, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh, ow = out.shape[2], out.shape[3]
    og = o // groups
    zero = one - one
    for idx in range(cuda.grid(1), n * o * oh * ow, cuda.gridsize(1)):
        q, t = idx % ow, idx // ow
        y, t = t % oh, t // oh
        k, b = t % o, t // o
        c0 = (k // og) * cg
        acc = zero
        for c in range(cg):
            for i in range(kh):
                yy = y * s + i - p
                for j in range(kw):
                    xx = q * s + j - p
                    v = zero
                    if 0 <= yy < h and 0 <= xx < wd:
                        v = x[b, c0 + c, yy, xx]
                    acc += abs(v - w[k, c, i, j])
        out[b, k, y, q] = -acc


@cuda.jit
def grad_input_kernel(x, w, grad, s, p, groups, one, dx):
    """dx[n, ch, y', x'] = sum over outputs reading it of grad * HardTanh(w - x)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh, ow = grad.shape[2], grad.shape[3]
    og = o // groups
    for idx in range(cuda.grid(1), n * c * h * wd, cuda.gridsize(1)):
        q, t = idx % wd, idx // wd
        yy, t = t % h, t // h
        ch, b = t % c, t // c
        g, cc = ch // cg, ch % cg
        xv = x[b, ch, yy, q]
        acc = one - one
        for i in range(kh):
            ty = yy + p - i
            if ty < 0 or ty % s != 0 or ty // s >= oh:
                continue
            for j in range(kw):
                tx = q + p - j
                if tx < 0 or tx % s != 0 or tx // s >= ow:
                    continue
                for kk in range(og):
                    k = g * og + kk
                    d = min(max(w[k, cc, i, j] - xv, -one), one)
                    acc += grad[b, k, ty // s, tx // s] * d
        dx[b, ch, yy, q] = acc


def _make_grad_weight_kernel(dtype):
    @cuda.jit
    def grad_weight_kernel(x, w, grad, s, p, groups, sign, one, dw):
        """dw[o, c, i, j] = sum_{n, y, x} grad * (x - w) (or sign); one block per element."""
        sh = cuda.shared.array(THREADS, dtype)
        n, _, h, wd = x.shape
        o, cg, kh, kw = w.shape
        oh, ow = grad.shape[2], grad.shape[3]
        og = o // groups
        tid, nthreads = cuda.threadIdx.x, cuda.blockDim.x
        warp, lane, nwarps = tid // WARP, tid % WARP, nthreads // WARP
        zero = one - one
        for e in range(cuda.blockIdx.x, o * cg * kh * kw, cuda.gridDim.x):
            j, t = e % kw, e // kw
            i, t = t % kh, t // kh
            c, k = t % cg, t // cg
            ch = (k // og) * cg + c
            f = w[k, c, i, j]
            acc = zero
            for b in range(warp, n, nwarps):
                for pix in range(lane, oh * ow, WARP):
                    y, q = pix // ow, pix % ow
                    yy, xx = y * s + i - p, q * s + j - p
                    v = zero
                    if 0 <= yy < h and 0 <= xx < wd:
                        v = x[b, ch, yy, xx]
                    d = v - f
                    if sign != 0:
                        d = one if d > zero else (-one if d < zero else zero)
                    acc += grad[b, k, y, q] * d
            sh[tid] = acc
            cuda.syncthreads()
            half = nthreads // 2
            while half > 0:
                if tid < half:
                    sh[tid] += sh[tid + half]
                cuda.syncthreads()
                half //= 2
            if tid == 0:
                dw[k, c, i, j] = sh[0]
            cuda.syncthreads()

    return grad_weight_kernel


grad_weight_kernel_f32 = _make_grad_weight_kernel(float32)
grad_weight_kernel_f64 = _make_grad_weight_kernel(float64)


def _arr(dt):
    return types.Array(dt, 4, "A")


def signatures():
    """(kernel, signature) pairs the launchers use, for ``numba.cuda.compile_ptx`` checks."""
    out = []
    for dt, gw in ((float32, grad_weight_kernel_f32), (float64, grad_weight_kernel_f64)):
        a = _arr(dt)
        out.append((forward_kernel, (a, a, int64, int64, int64, dt, a)))
        out.append((grad_input_kernel, (a, a, a, int64, int64, int64, dt, a)))
        out.append((gw, (a, a, a, int64, int64, int64, int64, dt, a)))
    return out


def _is_torch(a) -> bool:
    return type(a).__module__.startswith("torch")


def _launch(kernel, blocks, threads, like, args, out_shape):
    """Allocate the result like ``like`` (torch tensor or device array) and run ``kernel``."""
    if _is_torch(like):
        import torch

        res = torch.empty(out_shape, dtype=like.dtype, device=like.device)
        stream = cuda.external_stream(torch.cuda.current_stream(like.device).cuda_stream)
        dev = [cuda.as_cuda_array(a.detach()) if _is_torch(a) else a for a in args]
        kernel[blocks, threads, stream](*dev, cuda.as_cuda_array(res))
        return res
    res = cuda.device_array(out_shape, dtype=like.dtype)
    kernel[blocks, threads](*args, res)
    return res


def _one(x):
    return np.dtype(str(x.dtype).replace("torch.", "")).type(1)


def _grid(total: int) -> int:
    return max(1, min(MAX_BLOCKS, math.ceil(total / THREADS)))


def forward(x, w, stride=1, padding=0, groups=1):
    """Adder output (N, O, OH, OW) on the GPU (eq. 3.1)."""
    n, _, h, wd = x.shape
    oh, ow = (h + 2 * padding - w.shape[2]) // stride + 1, (wd + 2 * padding - w.shape[3]) // stride + 1
    shape = (n, w.shape[0], oh, ow)
    args = (x, w, stride, padding, groups, _one(x))
    return _launch(forward_kernel, _grid(math.prod(shape)), THREADS, x, args, shape)


def grad_input(x, w, grad, stride=1, padding=0, groups=1):
    """Surrogate input gradient (N, C, H, W) on the GPU (eq. 3.5-3.6)."""
    args = (x, w, grad, stride, padding, groups, _one(x))
    return _launch(grad_input_kernel, _grid(math.prod(x.shape)), THREADS, x, args, tuple(x.shape))


def grad_weight(x, w, grad, stride=1, padding=0, groups=1, sign=False):
    """Filter gradient (O, C/groups, kh, kw) on the GPU (eq. 3.4, or eq. 3.3 when ``sign``)."""
    kernel = grad_weight_kernel_f32 if _one(x).dtype == np.float32 else grad_weight_kernel_f64
    threads = min(THREADS, WARP * 2 ** math.ceil(math.log2(max(1, x.shape[0]))))
    blocks = max(1, min(MAX_BLOCKS, math.prod(w.shape)))
    args = (x, w, grad, stride, padding, groups, int(sign), _one(x))
    return _launch(kernel, blocks, threads, x, args, tuple(w.shape))


def backward(x, w, grad, stride=1, padding=0, groups=1, sign=False):
    """``(grad_input(...), grad_weight(...))``: two launches, the two kernels share no work."""
    return grad_input(x, w, grad, stride, padding, groups), grad_weight(x, w, grad, stride, padding, groups, sign)
