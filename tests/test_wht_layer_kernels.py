"""Every backend of ``mnf.wht_layer`` against the dense reference: values and gradients."""
import pytest
import torch

from mnf.wht_layer import Pointwise, Spatial, cpu, cuda, reference
from mnf.wht_layer.function import backend

BACKENDS = {"cpu": True, "composed": False}   # the fused flag that selects each on CPU tensors


def _grads(f, inputs, g):
    inputs = [v.detach().clone().requires_grad_() for v in inputs]
    y = f(*inputs)
    return (y, *torch.autograd.grad(y, inputs, g))


@pytest.mark.parametrize("fused", BACKENDS.values(), ids=BACKENDS.keys())
@pytest.mark.parametrize("kind", ["soft", "hard", "smooth"])
@pytest.mark.parametrize("cin, cout, b, n, keep_dc, scale", [
    (6, 5, 8, 8, True, False), (5, 12, 4, 12, False, True), (12, 3, 2, 12, True, True), (4, 4, 1, 4, False, True)])
def test_pointwise_backends_match_reference(fused, kind, cin, cout, b, n, keep_dc, scale):
    g0 = torch.Generator().manual_seed(cin * cout)
    x = 2 * torch.randn(2, cin, 3, 5, generator=g0, dtype=torch.float64)
    t = 0.2 + torch.rand(n, generator=g0, dtype=torch.float64)
    s = 0.5 + torch.rand(n, generator=g0, dtype=torch.float64)
    g = torch.randn(2, cout, 3, 5, generator=g0, dtype=torch.float64)
    inputs = (x, t, s) if scale else (x, t)

    def kernel(x, t, s=None):
        return Pointwise.apply(x, t, s, cout, b, kind, keep_dc, fused)

    def dense(x, t, s=None):
        return reference.pointwise(x, t, s, cout, b, kind, keep_dc)

    for a, r in zip(_grads(kernel, inputs, g), _grads(dense, inputs, g)):
        torch.testing.assert_close(a, r)


@pytest.mark.parametrize("fused", BACKENDS.values(), ids=BACKENDS.keys())
@pytest.mark.parametrize("kind", ["soft", "hard", "smooth"])
@pytest.mark.parametrize("h, w, keep_dc, scale", [(8, 8, True, True), (5, 7, False, True), (3, 4, True, False)])
def test_spatial_backends_match_reference(fused, kind, h, w, keep_dc, scale):
    hp, wp = 1 << (h - 1).bit_length(), 1 << (w - 1).bit_length()
    g0 = torch.Generator().manual_seed(h * w)
    x = 2 * torch.randn(2, 3, h, w, generator=g0, dtype=torch.float64)
    t = 0.2 + 2 * torch.rand(hp, wp, generator=g0, dtype=torch.float64)
    s = 0.5 + torch.rand(hp, wp, generator=g0, dtype=torch.float64)
    g = torch.randn(2, 3, h, w, generator=g0, dtype=torch.float64)
    inputs = (x, t, s) if scale else (x, t)

    def kernel(x, t, s=None):
        return Spatial.apply(x, t, s, kind, keep_dc, fused)

    def dense(x, t, s=None):
        return reference.spatial(x, t, s, kind, keep_dc)

    for a, r in zip(_grads(kernel, inputs, g), _grads(dense, inputs, g)):
        torch.testing.assert_close(a, r)


def test_backend_by_device():
    assert backend(torch.device("cpu"), True) is cpu
    assert backend(torch.device("cpu"), False) is cuda
    assert backend(torch.device("cuda"), True) is cuda
    with pytest.raises(ValueError, match="cpu or cuda"):
        backend(torch.device("meta"), True)


def test_float32_backends_agree():
    x = torch.randn(2, 24, 9, 9)
    t, s = torch.rand(32) * 0.5, torch.rand(32) + 0.5
    y = [Pointwise.apply(x, t, s, 40 - 8, 8, "soft", True, fused) for fused in (True, False)]
    torch.testing.assert_close(y[0], y[1], rtol=1e-5, atol=1e-5)
    assert y[0].dtype == torch.float32
