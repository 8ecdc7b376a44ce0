"""The three Numba CUDA adder kernels (contracts of :mod:`mnf.adder.reference`) and their signatures.

Work partitioning follows Urso (2022) section 4.2:

- forward and input gradient: one thread per output / input element, grid-stride loop over the
  flattened (N, O, OH, OW) / (N, C, H, W) tensor; each thread loops over its window's
  ``C/groups * kh * kw`` taps (forward) or over the outputs that read its element (input gradient,
  a gather: no atomics). Padded positions are read as 0.
- filter gradient: one block per filter element (grid-stride over elements if there are more than
  ``MAX_BLOCKS``). Warp ``w`` of the block takes batch items ``w, w + n_warps, ...``; lane ``l``
  takes output pixels ``l, l + 32, ...``; partial sums meet in a shared-memory tree reduction and
  thread 0 writes the result.

Array names spell their axis order as in :mod:`mnf.adder.cpu` (``x_nchw``, ``w_kcij``,
``g_nkhw``, ...); ``s`` is the stride, ``p`` the zero padding per side.
"""
from numba import cuda, float32, float64, int64, types

THREADS = 256  # threads per block for every kernel (a power of two, multiple of the warp size)
MAX_BLOCKS = 4096
WARP = 32


@cuda.jit
def forward_kernel(x_nchw, w_kcij, s, p, groups, one, y_nkhw):
    """y_nkhw[n, o, y, x] = -sum_{c, i, j} |x_nchw[n, g*Cg+c, ys+i-p, xs+j-p] - w_kcij[o, c, i, j]|."""
    n, _, height, width = x_nchw.shape
    o, cg, kh, kw = w_kcij.shape
    oh, ow = y_nkhw.shape[2], y_nkhw.shape[3]
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
                    if 0 <= yy < height and 0 <= xx < width:
                        v = x_nchw[b, c0 + c, yy, xx]
                    acc += abs(v - w_kcij[k, c, i, j])
        y_nkhw[b, k, y, q] = -acc


@cuda.jit
def grad_input_kernel(x_nchw, w_kcij, g_nkhw, s, p, groups, one, dx_nchw):
    """dx_nchw[n, ch, y', x'] = sum over outputs reading it of grad * HardTanh(w - x)."""
    n, c, height, width = x_nchw.shape
    o, cg, kh, kw = w_kcij.shape
    oh, ow = g_nkhw.shape[2], g_nkhw.shape[3]
    og = o // groups
    for idx in range(cuda.grid(1), n * c * height * width, cuda.gridsize(1)):
        q, t = idx % width, idx // width
        yy, t = t % height, t // height
        ch, b = t % c, t // c
        g, cc = ch // cg, ch % cg
        xv = x_nchw[b, ch, yy, q]
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
                    d = min(max(w_kcij[k, cc, i, j] - xv, -one), one)
                    acc += g_nkhw[b, k, ty // s, tx // s] * d
        dx_nchw[b, ch, yy, q] = acc


def _make_grad_weight_kernel(dtype):
    @cuda.jit
    def grad_weight_kernel(x_nchw, w_kcij, g_nkhw, s, p, groups, sign, one, dw_kcij):
        """dw_kcij[o, c, i, j] = sum_{n, y, x} grad * (x - w) (or sign); one block per element."""
        sh = cuda.shared.array(THREADS, dtype)
        n, _, height, width = x_nchw.shape
        o, cg, kh, kw = w_kcij.shape
        oh, ow = g_nkhw.shape[2], g_nkhw.shape[3]
        og = o // groups
        tid, nthreads = cuda.threadIdx.x, cuda.blockDim.x
        warp, lane, nwarps = tid // WARP, tid % WARP, nthreads // WARP
        zero = one - one
        for e in range(cuda.blockIdx.x, o * cg * kh * kw, cuda.gridDim.x):
            j, t = e % kw, e // kw
            i, t = t % kh, t // kh
            c, k = t % cg, t // cg
            ch = (k // og) * cg + c
            f = w_kcij[k, c, i, j]
            acc = zero
            for b in range(warp, n, nwarps):
                for pix in range(lane, oh * ow, WARP):
                    y, q = pix // ow, pix % ow
                    yy, xx = y * s + i - p, q * s + j - p
                    v = zero
                    if 0 <= yy < height and 0 <= xx < width:
                        v = x_nchw[b, ch, yy, xx]
                    d = v - f
                    if sign != 0:
                        d = one if d > zero else (-one if d < zero else zero)
                    acc += g_nkhw[b, k, y, q] * d
            sh[tid] = acc
            cuda.syncthreads()
            half = nthreads // 2
            while half > 0:
                if tid < half:
                    sh[tid] += sh[tid + half]
                cuda.syncthreads()
                half //= 2
            if tid == 0:
                dw_kcij[k, c, i, j] = sh[0]
            cuda.syncthreads()

    return grad_weight_kernel


grad_weight_kernel_f32 = _make_grad_weight_kernel(float32)
grad_weight_kernel_f64 = _make_grad_weight_kernel(float64)


def _arr(dt):
    return types.Array(dt, 4, "A")


def signatures() -> list[tuple]:
    """(kernel, signature) pairs the launchers use, for ``numba.cuda.compile_ptx`` checks."""
    out = []
    for dt, gw in ((float32, grad_weight_kernel_f32), (float64, grad_weight_kernel_f64)):
        a = _arr(dt)
        out.append((forward_kernel, (a, a, int64, int64, int64, dt, a)))
        out.append((grad_input_kernel, (a, a, a, int64, int64, int64, dt, a)))
        out.append((gw, (a, a, a, int64, int64, int64, int64, dt, a)))
    return out
