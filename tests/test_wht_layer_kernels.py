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


def _arranged(x: torch.Tensor, layout: str) -> torch.Tensor:
    """``x`` stored as ``layout``: NCHW, channels last, or a strided view (neither)."""
    if layout == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        return torch.cat([x, x], dim=3)[..., ::2]
    return x.contiguous()


def _cyclic(x: torch.Tensor, rows: int) -> torch.Tensor:
    return x if rows <= x.shape[1] else x.repeat(1, -(-rows // x.shape[1]), 1, 1)[:, :rows]


LAYOUTS = ["nchw", "channels_last", "strided"]


@pytest.mark.parametrize("fused", BACKENDS.values(), ids=BACKENDS.keys())
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", ["soft", "hard", "smooth"])
@pytest.mark.parametrize("cin, cout, rows, b, n, keep_dc, scale, hw", [
    (6, 5, 6, 8, 8, True, False, (3, 5)), (5, 12, 5, 4, 12, False, True, (3, 5)),
    (5, 12, 12, 4, 12, True, True, (1, 1)), (3, 10, 10, 8, 16, True, False, (2, 3)),
    (12, 3, 12, 2, 12, True, True, (7, 1)), (4, 4, 4, 1, 4, False, True, (3, 5))])
def test_pointwise_backends_match_reference(fused, layout, kind, cin, cout, rows, b, n, keep_dc, scale, hw):
    """Every layout (NCHW, channels last, strided), 1×1 and odd maps, the cyclic read of
    ``expand="repeat"`` (``rows > cin``): values and the gradients of x, t and s."""
    g0 = torch.Generator().manual_seed(cin * cout + rows)
    x = 2 * torch.randn(3, cin, *hw, generator=g0, dtype=torch.float64)
    t = 0.2 + torch.rand(n, generator=g0, dtype=torch.float64)
    s = 0.5 + torch.rand(n, generator=g0, dtype=torch.float64)
    g = _arranged(torch.randn(3, cout, *hw, generator=g0, dtype=torch.float64), layout)
    inputs = (_arranged(x, layout), t, s) if scale else (_arranged(x, layout), t)

    def kernel(x, t, s=None):
        return Pointwise.apply(x, t, s, cout, rows, b, kind, keep_dc, fused)

    def dense(x, t, s=None):
        return reference.pointwise(_cyclic(x, rows), t, s, cout, b, kind, keep_dc)

    got, want = _grads(kernel, inputs, g), _grads(dense, inputs, g)
    for a, r in zip(got, want):
        torch.testing.assert_close(a, r)
    if layout == "channels_last" and hw != (1, 1):  # the kernels keep the layout they are given
        assert got[0].is_contiguous(memory_format=torch.channels_last) and not got[0].is_contiguous()


@pytest.mark.parametrize("fused", BACKENDS.values(), ids=BACKENDS.keys())
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", ["soft", "hard", "smooth"])
@pytest.mark.parametrize("h, w, keep_dc, scale", [(8, 8, True, True), (5, 7, False, True), (3, 4, True, False)])
def test_spatial_backends_match_reference(fused, layout, kind, h, w, keep_dc, scale):
    hp, wp = 1 << (h - 1).bit_length(), 1 << (w - 1).bit_length()
    g0 = torch.Generator().manual_seed(h * w)
    x = _arranged(2 * torch.randn(2, 3, h, w, generator=g0, dtype=torch.float64), layout)
    t = 0.2 + 2 * torch.rand(hp, wp, generator=g0, dtype=torch.float64)
    s = 0.5 + torch.rand(hp, wp, generator=g0, dtype=torch.float64)
    g = _arranged(torch.randn(2, 3, h, w, generator=g0, dtype=torch.float64), layout)
    inputs = (x, t, s) if scale else (x, t)
    if layout == "channels_last":   # the output keeps the model's layout
        assert Spatial.apply(x, t, s, kind, keep_dc, fused).is_contiguous(memory_format=torch.channels_last)

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
    y = [Pointwise.apply(x, t, s, 40 - 8, 24, 8, "soft", True, fused) for fused in (True, False)]
    torch.testing.assert_close(y[0], y[1], rtol=1e-5, atol=1e-5)
    assert y[0].dtype == torch.float32


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_pointwise_layer_stride_2_keeps_layout(layout):
    """A strided WHTPointwise (its input sliced before the kernels) against the composed path,
    and a channels-last input stays channels last through the slicing."""
    from mnf.layers.wht import WHTPointwise
    torch.manual_seed(0)
    x = _arranged(torch.randn(2, 12, 7, 5, dtype=torch.float64), layout)
    fused, composed = WHTPointwise(12, 20, stride=2).double(), WHTPointwise(12, 20, stride=2, fused=False).double()
    composed.load_state_dict(fused.state_dict())
    g = torch.randn(2, 20, 4, 3, dtype=torch.float64)
    got, want = _grads(fused, (x,), g), _grads(composed, (x,), g)
    for a, r in zip(got, want):
        torch.testing.assert_close(a, r)
    assert got[0].shape == (2, 20, 4, 3)
    assert got[0].is_contiguous(memory_format=torch.channels_last) == (layout == "channels_last")
