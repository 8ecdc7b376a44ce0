"""Every CUDA entry point against mnf's CPU path on the same data, small under the simulator and
at real sizes on a GPU (``python tools/gpu_check.py`` runs this file without the simulator).

- Numba device arrays, simulator and GPU: ``mnf.transforms.cuda.fwht_cuda`` (shared-memory and
  multi-pass kernels, float32/float64, every ordering) and ``mnf.adder.cuda.dispatch.forward``,
  ``grad_input``, ``grad_weight`` (full and sign), ``backward`` (dense, grouped, depthwise,
  pointwise; strides 1 and 2; paddings 0, 1, 2). On a GPU, ``GPU_*`` cases add the shared-memory
  limits, real layer shapes and the grid-stride loops (more rows, outputs or filter elements
  than one launch's grid).
- torch CUDA tensors, marked ``gpu`` (the simulator cannot hand torch tensors to kernels):
  ``fwht``/``ifwht``/``fwht2d``/``block_fwht`` with gradients and memory formats, every ordering
  in one process, ``adder2d`` through each backward branch, and the layers ``Adder2d``,
  ``WHTPointwise`` (CPU: fused Numba kernels, CUDA: transforms + torch) and ``WHTSpatial``.
"""
import copy
import os

import numpy as np
import pytest
import torch
from numba import cuda

import mnf.transforms as T
from mnf.adder import adder2d
from mnf.adder.cpu import dispatch as cpu
from mnf.adder.cuda import dispatch as adder_gpu
from mnf.layers import Adder2d, WHTPointwise, WHTSpatial
from mnf.transforms import cuda as K
from mnf.transforms.orderings import gather_indices

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
GPU = not SIMULATED and cuda.is_available()
TORCH_GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a torch CUDA device")
DTYPES = [np.float32, np.float64]


def assert_close(got: np.ndarray, want: np.ndarray, dtype) -> None:
    """Equal up to rounding, relative to the largest entry (sums run in different orders)."""
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, float(np.abs(want).max())))


# --------------------------------------------------------------------------- fwht, device arrays

# (n, outer, inner, shared_max): shared_max < n forces the multi-pass kernels
SIM_FWHT = [
    (1, 3, 1, None),       # a single element
    (64, 2, 1, None),      # three radix-4 passes in shared memory
    (128, 1, 2, 8),        # multi-pass: three radix-4 stages, one radix-2, strided rows
]
GPU_FWHT = [
    (2048, 16, 1, None),   # float64's shared-memory limit
    (4096, 16, 1, None),   # float32's limit; float64 goes multi-pass
    (256, 70_000, 1, None),  # more rows than the 65,535 blocks of one launch
    (1024, 8, 33, None),   # strided rows at size
    (512, 4, 5, 64),       # multi-pass with strided rows
    (1 << 16, 128, 1, None),  # multi-pass, more work than 4,096 blocks x 256 threads
]


@pytest.mark.parametrize("order", T.ORDERS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SIM_FWHT + (GPU_FWHT if GPU else []))
def test_fwht_kernels_match_cpu(case, dtype, order):
    n, outer, inner, shared_max = case
    x3 = np.random.default_rng(n).standard_normal((outer, n, inner)).astype(dtype)
    perm = gather_indices(n, order)
    perm = perm if perm.size else np.arange(n, dtype=np.int64)
    out = cuda.device_array_like(x3)
    K.fwht_cuda(cuda.to_device(x3), out, cuda.to_device(perm), n ** -0.5, shared_max=shared_max)
    assert_close(out.copy_to_host(), T.fwht(x3, dim=1, order=order, normalized=True), dtype)


@pytest.mark.parametrize("n", [64] + ([8192] if GPU else []))  # shared memory; multi-pass on a GPU
def test_transform_gives_every_ordering_in_turn(n):
    """``cuda.transform`` (``fwht``'s device dispatch, ordering indices cached per device) called
    with one order after another at the same ``n``: each call gets its own order."""
    x3 = np.random.default_rng(1).standard_normal((3, n, 1)).astype(np.float32)
    dx = cuda.to_device(x3)
    for order in ("walsh", "dyadic", "hadamard", "dyadic", "walsh"):
        out = cuda.device_array_like(x3)
        K.transform(dx, out, order, n ** -0.5)
        assert_close(out.copy_to_host(), T.fwht(x3, dim=1, order=order, normalized=True), np.float32)


# --------------------------------------------------------------------------- adder, device arrays

# (N, C, H, W, O, k, stride, padding, groups)
SIM_ADDER = {
    "dense k3 s2 p0": (1, 2, 5, 5, 1, 3, 2, 0, 1),
    "dense k3 p2": (1, 1, 3, 3, 2, 3, 1, 2, 1),
    "depthwise s1 p1": (1, 2, 4, 4, 2, 3, 1, 1, 2),
    "pointwise s2": (2, 3, 4, 5, 2, 1, 2, 0, 1),
    "batch 9 > 8 warps": (9, 1, 3, 3, 1, 1, 1, 0, 1),
}
GPU_ADDER = {
    "resnet20 16ch 32px": (64, 16, 32, 32, 16, 3, 1, 1, 1),
    "resnet20 64ch 8px (36,864 filter taps > 4,096 blocks)": (64, 64, 8, 8, 64, 3, 1, 1, 1),
    "dense 32ch 32px (2M outputs > one grid)": (64, 32, 32, 32, 32, 3, 1, 1, 1),
    "grouped odd s2 p0": (5, 8, 9, 7, 16, 3, 2, 0, 2),
    "mbv2 dw 96ch s2": (32, 96, 16, 16, 96, 3, 2, 1, 96),
    "mbv2 pw 576->96": (32, 576, 4, 4, 96, 1, 1, 0, 1),
}


def adder_data(case, dtype, seed=0):
    n, c, h, w, o, k, s, p, g = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c // g, k, k)).astype(dtype)
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    grad = rng.standard_normal((n, o, oh, ow)).astype(dtype)
    return x, wt, grad, (s, p, g)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(SIM_ADDER) + (list(GPU_ADDER) if GPU else []))
def test_adder_kernels_match_cpu(name, dtype):
    x, w, grad, conf = adder_data({**SIM_ADDER, **GPU_ADDER}[name], dtype)
    dx_, dw_, dg_ = cuda.to_device(x), cuda.to_device(w), cuda.to_device(grad)
    got = adder_gpu.forward(dx_, dw_, *conf).copy_to_host()
    assert got.dtype == dtype
    assert_close(got, cpu.forward(x, w, *conf), dtype)
    got = adder_gpu.grad_weight(dx_, dw_, dg_, *conf).copy_to_host()  # full filter gradient
    assert_close(got, cpu.grad_weight(x, w, grad, *conf), dtype)
    got_dx, got_dw = adder_gpu.backward(dx_, dw_, dg_, *conf, sign=True)  # = grad_input, grad_weight
    assert_close(got_dx.copy_to_host(), cpu.grad_input(x, w, grad, *conf), dtype)
    assert_close(got_dw.copy_to_host(), cpu.grad_weight(x, w, grad, *conf, sign=True), dtype)


# --------------------------------------------------------------------------- torch CUDA tensors

def both(t: torch.Tensor, memory_format=torch.contiguous_format) -> tuple[torch.Tensor, torch.Tensor]:
    """A CPU leaf and a CUDA leaf (in ``memory_format``) holding the same values."""
    return (t.clone().requires_grad_(),
            t.cuda().to(memory_format=memory_format).detach().requires_grad_())


def torch_close(got: torch.Tensor, want: torch.Tensor) -> None:
    tol = 2e-5 if want.dtype == torch.float32 else 1e-12
    scale = max(1.0, want.abs().max().item())
    torch.testing.assert_close(got.cpu(), want, rtol=tol, atol=tol * scale)


@pytest.mark.gpu
@TORCH_GPU
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("order", T.ORDERS)
def test_torch_transforms_match_cpu(order, dtype, memory_format):
    x = torch.randn(8, 64, 6, 5, dtype=dtype, generator=torch.Generator().manual_seed(0))
    calls = {
        "fwht": lambda t: T.fwht(t, dim=1, order=order, normalized=True),
        "ifwht": lambda t: T.ifwht(t, dim=1, order=order),
        "fwht2d pad": lambda t: T.fwht2d(t, order=order, pad=True),
        "ifwht2d pad": lambda t: T.ifwht2d(t, order=order, normalized=True, pad=True),
        "block_fwht": lambda t: T.block_fwht(t, 16, dim=1, order=order),
        "block_ifwht": lambda t: T.block_ifwht(t, 16, dim=1, order=order, normalized=True),
    }
    for name, fn in calls.items():
        xc, xg = both(x, memory_format)
        yc, yg = fn(xc), fn(xg)
        assert yg.is_cuda and yg.dtype == dtype, name
        torch_close(yg, yc.detach())
        g = torch.randn_like(yc)
        yc.backward(g)
        yg.backward(g.cuda())
        torch_close(xg.grad, xc.grad)


@pytest.mark.gpu
@TORCH_GPU
@pytest.mark.parametrize("n", [64, 8192])  # shared-memory and multi-pass kernels
def test_torch_every_ordering_in_one_process(n):
    """Orders used one after another at the same size each give their own result."""
    x = torch.randn(4, n)
    for order in ("walsh", "dyadic", "hadamard", "dyadic", "walsh"):
        torch.testing.assert_close(T.fwht(x.cuda(), order=order, normalized=True).cpu(),
                                   T.fwht(x, order=order, normalized=True), atol=1e-4, rtol=1e-4)


ADDER_TORCH = {**SIM_ADDER, **{k: GPU_ADDER[k] for k in ("grouped odd s2 p0", "mbv2 dw 96ch s2")}}


@pytest.mark.gpu
@TORCH_GPU
@pytest.mark.parametrize("grads", ["both", "input", "weight"])
@pytest.mark.parametrize("filter_grad", ["full", "sign"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(ADDER_TORCH))
def test_torch_adder2d_matches_cpu(name, dtype, filter_grad, grads):
    x, w, grad, (s, p, g) = (torch.from_numpy(a) if isinstance(a, np.ndarray) else a
                             for a in adder_data(ADDER_TORCH[name], np.float64))
    x, w, grad = x.to(dtype), w.to(dtype), grad.to(dtype)
    (xc, xg), (wc, wg) = both(x), both(w)
    for t in (xc, xg) if grads == "weight" else ():
        t.requires_grad_(False)
    for t in (wc, wg) if grads == "input" else ():
        t.requires_grad_(False)
    yc, yg = adder2d(xc, wc, s, p, g, filter_grad), adder2d(xg, wg, s, p, g, filter_grad)
    torch_close(yg, yc.detach())
    yc.backward(grad)
    yg.backward(grad.cuda())
    for c, gpu in ((xc, xg), (wc, wg)):
        assert (c.grad is None) == (gpu.grad is None)
        if c.grad is not None:
            torch_close(gpu.grad, c.grad)


@pytest.mark.gpu
@TORCH_GPU
def test_torch_adder2d_strided_inputs_and_broadcast_gradient():
    """channels_last input and ``y.sum().backward()``'s stride-0 gradient reach the kernels as views."""
    x, w, _, (s, p, g) = adder_data(GPU_ADDER["grouped odd s2 p0"], np.float32)
    (xc, xg), (wc, wg) = both(torch.from_numpy(x), torch.channels_last), both(torch.from_numpy(w))
    adder2d(xc, wc, s, p, g).sum().backward()
    adder2d(xg, wg, s, p, g).sum().backward()
    torch_close(xg.grad, xc.grad)
    torch_close(wg.grad, wc.grad)


LAYERS = {
    "Adder2d depthwise s2": (lambda: Adder2d(32, 32, 3, 2, 1, groups=32), (4, 32, 9, 9)),
    "Adder2d dense": (lambda: Adder2d(8, 16, 3, 1, 1), (4, 8, 8, 8)),
    "WHTPointwise 96->96": (lambda: WHTPointwise(96, 96), (4, 96, 8, 8)),
    "WHTPointwise 32->192 repeat s2": (lambda: WHTPointwise(32, 192, 2, expand="repeat"), (4, 32, 8, 8)),
    "WHTSpatial 16ch 7x7": (lambda: WHTSpatial(16, 7, 7), (4, 16, 7, 7)),
}


@pytest.mark.gpu
@TORCH_GPU
@pytest.mark.parametrize("name", list(LAYERS))
def test_torch_layers_match_cpu(name):
    make, shape = LAYERS[name]
    torch.manual_seed(0)
    layer = make()
    with torch.no_grad():  # thresholds away from their common init, so every coefficient differs
        for prm in layer.parameters():
            prm.add_(0.05 * torch.rand_like(prm))
    gpu_layer = copy.deepcopy(layer).cuda()
    xc, xg = both(torch.randn(shape))
    yc, yg = layer(xc), gpu_layer(xg)
    torch_close(yg, yc.detach())
    g = torch.randn_like(yc)
    yc.backward(g)
    yg.backward(g.cuda())
    torch.testing.assert_close(xg.grad.cpu(), xc.grad, rtol=1e-4, atol=1e-4)
    for (pname, pc), pg in zip(layer.named_parameters(), gpu_layer.parameters()):
        torch.testing.assert_close(pg.grad.cpu(), pc.grad, rtol=1e-4, atol=1e-3, msg=pname)
