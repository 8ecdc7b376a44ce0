"""Numba CUDA adder kernels (device arrays, ``mnf.adder.cuda.dispatch``) against the CPU kernels
(NumPy, ``mnf.adder.cpu.dispatch``); tiny shapes: the simulator is slow."""
import numpy as np
import pytest
import torch
from numba import cuda

from mnf.adder import adder2d
from mnf.adder.cpu import dispatch as cpu
from mnf.adder.cuda import dispatch as gpu

# (N, C, H, W, O, k, stride, padding, groups)
CASES = [
    (2, 2, 4, 3, 2, 3, 1, 1, 1),   # odd, non-square, padded
    (1, 2, 5, 4, 2, 3, 2, 1, 2),   # depthwise, stride 2, batch 1
    (3, 2, 3, 3, 4, 1, 1, 0, 2),   # pointwise, grouped; batch 3 -> 4 warps, one idle
]


def _data(case, dtype, seed=0):
    n, c, h, w, o, k, s, p, g = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c // g, k, k)).astype(dtype)
    return x, wt, s, p, g


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_kernels_match_cpu(case, dtype):
    x, w, s, p, g = _data(case, dtype)
    y = cpu.forward(x, w, s, p, g)
    grad = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    dx, dw = cpu.grad_input(x, w, grad, s, p, g), cpu.grad_weight(x, w, grad, s, p, g, sign=True)
    dx_, w_, g_ = cuda.to_device(x), cuda.to_device(w), cuda.to_device(grad)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    out = gpu.forward(dx_, w_, s, p, g).copy_to_host()
    assert out.dtype == dtype
    np.testing.assert_allclose(out, y, **tol)
    np.testing.assert_allclose(gpu.grad_input(dx_, w_, g_, s, p, g).copy_to_host(), dx, **tol)
    np.testing.assert_allclose(gpu.grad_weight(dx_, w_, g_, s, p, g, sign=True).copy_to_host(), dw, **tol)
    both = gpu.backward(dx_, w_, g_, s, p, g, sign=True)
    np.testing.assert_allclose(both[0].copy_to_host(), dx, **tol)
    np.testing.assert_allclose(both[1].copy_to_host(), dw, **tol)


def test_cuda_full_filter_gradient_matches_cpu():
    x, w, s, p, g = _data(CASES[0], np.float64, seed=2)
    grad = np.random.default_rng(3).standard_normal(cpu.forward(x, w, s, p, g).shape)
    got = gpu.grad_weight(cuda.to_device(x), cuda.to_device(w), cuda.to_device(grad), s, p, g).copy_to_host()
    np.testing.assert_allclose(got, cpu.grad_weight(x, w, grad, s, p, g), rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a torch CUDA device")
def test_torch_cuda_autograd_matches_cpu():
    x, w, s, p, g = (torch.from_numpy(a) if isinstance(a, np.ndarray) else a
                     for a in _data((4, 8, 9, 7, 8, 3, 2, 1, 2), np.float64))
    xc, wc = x.clone().requires_grad_(), w.clone().requires_grad_()
    xg, wg = x.cuda().requires_grad_(), w.cuda().requires_grad_()
    yc, yg = adder2d(xc, wc, s, p, g), adder2d(xg, wg, s, p, g)
    torch.testing.assert_close(yg.cpu(), yc.detach())
    grad = torch.randn_like(yc)
    yc.backward(grad)
    yg.backward(grad.cuda())
    torch.testing.assert_close(xg.grad.cpu(), xc.grad)
    torch.testing.assert_close(wg.grad.cpu(), wc.grad)
