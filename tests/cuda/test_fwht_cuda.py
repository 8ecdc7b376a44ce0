"""CUDA FWHT kernels vs the CPU result (simulator: NUMBA_ENABLE_CUDASIM=1; sizes kept tiny)."""
import numpy as np
import pytest
import torch
from numba import cuda

import mnf.transforms as T
from mnf.transforms import cuda as K
from mnf.transforms.orderings import gather_indices


def run(x3, order, scale, shared_max=None):
    n = x3.shape[1]
    p = gather_indices(n, order)
    p = p if p.size else np.arange(n, dtype=np.int64)
    out = cuda.device_array_like(x3)
    K.fwht_cuda(cuda.to_device(x3), out, cuda.to_device(p), scale, shared_max=shared_max)
    return out.copy_to_host()


def want(x3, order, scale):
    return np.moveaxis(T.fwht(np.moveaxis(x3, 1, -1), order=order), -1, 1) * scale


@pytest.mark.parametrize("order", T.ORDERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shared_max", [None, 4])  # 4 forces the multi-pass path for n > 4
@pytest.mark.parametrize("shape", [(2, 16, 1), (1, 8, 3), (1, 32, 1), (1, 2, 1)])
def test_kernels_match_cpu(shape, dtype, shared_max, order):
    x3 = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(run(x3, order, 0.5, shared_max), want(x3, order, 0.5), atol=tol)


def test_bad_arguments():
    x = cuda.to_device(np.zeros((1, 6, 1), np.float32))
    with pytest.raises(ValueError, match="power of two"):
        K.fwht_cuda(x, cuda.device_array_like(x), cuda.to_device(np.arange(6)), 1.0)


@pytest.mark.parametrize("n", [8, 16])
def test_dispatch_orders_at_one_size_match_dense(monkeypatch, n):
    """``transform`` (fwht's CUDA dispatch below the torch bridge) with every order at one ``n``.

    Walsh and dyadic gather indices have the same size, so a permutation cache keyed on the size
    instead of the ordering hands the second order the first one's indices.
    """
    monkeypatch.setattr(K, "_perm_cache", {})
    x3 = np.random.default_rng(n).standard_normal((2, n, 3))
    xd = cuda.to_device(x3)
    for order in ("walsh", "dyadic", "hadamard", "dyadic", "walsh", "hadamard"):
        for normalized in (False, True):
            m = T.transform_matrix(n, order, normalized)             # the dense definition
            out = cuda.device_array_like(x3)
            K.transform(xd, out, order, 1 / np.sqrt(n) if normalized else 1.0, device="sim")
            np.testing.assert_allclose(out.copy_to_host(), np.einsum("kj,ojc->okc", m, x3),
                                       atol=1e-12, err_msg=f"order={order}, n={n}")
    assert sorted(key[1] for key in K._perm_cache) == ["dyadic", "hadamard", "walsh"]
    for order, want in (("walsh", T.walsh_permutation(n)), ("dyadic", T.dyadic_permutation(n)),
                        ("hadamard", np.arange(n))):
        got = K.device_perm(n, order, "sim", cuda.to_device)
        np.testing.assert_array_equal(got.copy_to_host(), want)    # cached, and gather_indices'
    assert K.device_perm(n, "walsh", "sim", None) is K._perm_cache[(n, "walsh", "sim")]


def test_dispatch_keys_the_cache_by_device(monkeypatch):
    """The same ``(n, order)`` on two devices gets two copies (each made by its device's copier)."""
    monkeypatch.setattr(K, "_perm_cache", {})
    made = []

    def copier(tag):
        def to_device(p):
            made.append(tag)
            return cuda.to_device(p)
        return to_device

    x3 = np.random.default_rng(0).standard_normal((1, 8, 1)).astype(np.float32)
    for dev in ("a", "b", "a"):
        out = cuda.device_array_like(x3)
        K.transform(cuda.to_device(x3), out, "dyadic", 0.5, device=dev, to_device=copier(dev))
        np.testing.assert_allclose(out.copy_to_host()[0, :, 0], 0.5 * T.dyadic(8) @ x3[0, :, 0],
                                   rtol=1e-6, atol=1e-6)
    assert made == ["a", "b"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device for torch")
@pytest.mark.parametrize("order", T.ORDERS)
def test_torch_cuda_matches_cpu(order):
    x = torch.randn(4, 64, 3, 5, dtype=torch.float64)
    for mf in (torch.contiguous_format, torch.channels_last):
        xc = x.cuda().to(memory_format=mf).requires_grad_()
        y = T.fwht(xc, dim=1, order=order, normalized=True)
        assert y.is_cuda and y.dtype == x.dtype
        torch.testing.assert_close(y.cpu(), T.fwht(x, dim=1, order=order, normalized=True))
        y.sum().backward()
        torch.testing.assert_close(xc.grad.cpu(), T.fwht(torch.ones_like(x), 1, order, True))
    long = torch.randn(2, 8192, device="cuda")
    torch.testing.assert_close(T.fwht(long).cpu(), T.fwht(long.cpu()), atol=1e-2, rtol=1e-4)
