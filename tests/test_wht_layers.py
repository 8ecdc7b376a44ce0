"""WHTPointwise / WHTSpatial against dense Hadamard-matrix references; gradients; swap helper."""
import numba
import pytest
import torch
from torch import nn
from torch.autograd import gradcheck
from torch.func import functional_call

from mnf.layers.swap import swap_layers
from mnf.layers.threshold import threshold as apply_threshold
from mnf.layers.wht import WHTPointwise, WHTSpatial
from mnf.transforms import hadamard, transform_matrix


@pytest.fixture
def one_thread():
    """gradcheck calls the kernels hundreds of times: one Numba thread avoids per-call thread
    synchronisation (costly on a busy machine); the kernels still split work into 4 chunks."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


def randomise(m: nn.Module, seed: int = 0) -> nn.Module:
    """Thresholds in [0.2, 1.5], scales in [0.5, 1.5], so the layer is far from the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            lo, hi = (0.5, 1.5) if "scale" in name else (0.2, 1.5)
            p.copy_(lo + (hi - lo) * torch.rand(p.shape, generator=g, dtype=p.dtype))
    return m


def dense_pointwise(m: WHTPointwise, x: torch.Tensor) -> torch.Tensor:
    """y = (B⁻¹ S f_T(B pad(x)))[:cout] per pixel with B = kron(I, M_b) from transform_matrix."""
    n, b = m.n, m.block_size
    x = x[:, :, ::m.stride, ::m.stride]
    if m.expand == "repeat" and m.out_channels > m.in_channels:
        x = x.repeat(1, -(-m.out_channels // m.in_channels), 1, 1)[:, :m.out_channels]
    mb = torch.as_tensor(transform_matrix(b, m.order), dtype=x.dtype)
    big = torch.block_diag(*[mb] * (n // b))
    xp = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, n - x.shape[1]))
    z = torch.einsum("kc,nchw->nkhw", big, xp)
    t = m.thresholds().detach().to(x.dtype).view(n, 1, 1)
    y = apply_threshold(z, t, m.kind)
    if m.keep_dc:
        y[:, ::b] = z[:, ::b]
    if m.scale is not None:
        y = y * m.scale.detach().to(x.dtype).view(n, 1, 1)
    return torch.einsum("kc,nchw->nkhw", big / b, y)[:, :m.out_channels]


CASES = [
    dict(cin=8, cout=8),
    dict(cin=6, cout=6),                                  # zero-pad 6 -> 8
    dict(cin=5, cout=12, threshold="smooth", scale=True),  # expansion
    dict(cin=12, cout=5, threshold="hard"),                # reduction
    dict(cin=12, cout=12, block_size=4, scale=True),       # 3 blocks of 4, no padding
    dict(cin=10, cout=7, block_size=4, stride=2),          # blocks + padding + stride
    dict(cin=8, cout=8, order="walsh", keep_dc=False),
    dict(cin=16, cout=16, order="dyadic", threshold="smooth", stride=3),
]


def assert_fused_matches_composed(m, x, g):
    """Gradients in x and every parameter: fused kernels vs the composed torch path."""
    params = [x] + list(m.parameters())
    fused = torch.autograd.grad(m(x), params, g)
    m.fused = False
    composed = torch.autograd.grad(m(x), params, g)
    for a, b in zip(fused, composed):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_pointwise_matches_dense_reference(case, fused):
    case = dict(case)
    cin, cout = case.pop("cin"), case.pop("cout")
    stride = case.pop("stride", 1)
    m = randomise(WHTPointwise(cin, cout, stride, fused=fused, **case).double())
    x = 2 * torch.randn(3, cin, 7, 5, dtype=torch.float64)
    y = m(x)
    assert y.shape == (3, cout, -(-7 // stride), -(-5 // stride))
    torch.testing.assert_close(y, dense_pointwise(m, x))


@pytest.mark.parametrize("case", CASES[:6], ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_fused_gradients_match_composed_path(case):
    case = dict(case)
    cin, cout = case.pop("cin"), case.pop("cout")
    stride = case.pop("stride", 1)
    m = randomise(WHTPointwise(cin, cout, stride, **case).double())
    x = 2 * torch.randn(2, cin, 6, 6, dtype=torch.float64, requires_grad=True)
    g = torch.randn_like(m(x))
    assert_fused_matches_composed(m, x, g)


@pytest.mark.parametrize("kind", ["soft", "smooth"])
@pytest.mark.parametrize("fused", [True, False])
def test_pointwise_gradcheck(kind, fused, one_thread):
    m = randomise(WHTPointwise(6, 5, 1, block_size=4, threshold=kind, scale=True, fused=fused).double())
    x = 2 * torch.randn(2, 6, 3, 3, dtype=torch.float64, requires_grad=True)
    t, s = (p.detach().clone().requires_grad_() for p in (m.threshold, m.scale))

    def f(x, t, s):
        return functional_call(m, {"threshold": t, "scale": s}, (x,))

    assert gradcheck(f, (x, t, s))


def test_hard_pointwise_gradcheck_in_x(one_thread):
    m = randomise(WHTPointwise(8, 8, threshold="hard").double())
    x = 2 * torch.randn(2, 8, 3, 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(m, (x,))


def test_float32_and_channels_last():
    m = randomise(WHTPointwise(24, 40, 2, block_size=8, scale=True))
    x = torch.randn(2, 24, 9, 9).to(memory_format=torch.channels_last)
    y = m(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, dense_pointwise(m.double(), x.double()).float(), rtol=1e-4, atol=1e-4)


def test_order_only_relabels_the_parameters():
    a = randomise(WHTPointwise(8, 8, order="hadamard", keep_dc=False).double())
    b = WHTPointwise(8, 8, order="walsh", keep_dc=False).double()
    from mnf.transforms import walsh_permutation
    with torch.no_grad():
        b.threshold.copy_(a.threshold[torch.as_tensor(walsh_permutation(8))])
    x = torch.randn(2, 8, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(a(x), b(x))


def test_zero_thresholds_give_padding_and_truncation():
    m = WHTPointwise(5, 7, init=0.0, expand="zeros").double()   # soft threshold at 0 is the identity
    x = torch.randn(2, 5, 3, 3, dtype=torch.float64)
    y = m(x)
    torch.testing.assert_close(y[:, :5], x)
    torch.testing.assert_close(y[:, 5:], torch.zeros(2, 2, 3, 3, dtype=torch.float64))


@pytest.mark.parametrize("fused", [True, False])
def test_repeat_expansion_fills_every_channel(fused):
    m = WHTPointwise(3, 8, init=0.0, expand="repeat", fused=fused).double()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(m(x), x.repeat(1, 3, 1, 1)[:, :8])   # zero thresholds: identity on the copies
    m = WHTPointwise(3, 8, init=0.3, expand="repeat", fused=fused).double()
    y = m(x)
    assert (y.std(dim=(0, 2, 3)) > 0.3).all()   # no channel is left with threshold terms only
    reduce = WHTPointwise(8, 3, init=0.3, expand="repeat").double()   # no expansion: same map as zeros
    same = WHTPointwise(8, 3, init=0.3).double()
    x8 = torch.randn(2, 8, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(reduce(x8), same(x8))


def test_zero_padded_expansion_gradients_blow_up_after_batch_norm():
    """The failure ``expand="repeat"`` fixes: with zero padding the extra channels are threshold
    terms only, tiny, and batch norm divides them by their tiny standard deviation."""
    torch.manual_seed(0)
    x = torch.randn(16, 16, 8, 8)
    norms = {}
    for expand in ("zeros", "repeat"):
        layer = WHTPointwise(16, 96, expand=expand)
        nn.BatchNorm2d(96)(layer(x)).pow(2).mean().backward()
        norms[expand] = layer.threshold.grad.norm().item()
    assert norms["zeros"] > 100 * norms["repeat"]


def test_parameter_counts():
    m = WHTPointwise(320, 1280)
    assert m.n == 2048 and m.conv_equivalent_params == 320 * 1280
    assert m.num_parameters == 2047                        # seed 000: at most 2^d - 1 thresholds
    m = WHTPointwise(320, 320, block_size=64, scale=True)
    assert m.n == 320 and m.num_parameters == (320 - 5) + 320
    assert WHTPointwise(96, 24, keep_dc=False).num_parameters == 128
    assert WHTSpatial(256, 8, 8).num_parameters == 63 + 64
    assert WHTSpatial(256, 8, 8).conv_equivalent_params == 9 * 256


def test_pointwise_errors():
    m = WHTPointwise(8, 4)
    with pytest.raises(ValueError, match=r"\(N, 8, H, W\)"):
        m(torch.zeros(2, 8, 4))
    with pytest.raises(ValueError, match=r"\(N, 8, H, W\)"):
        m(torch.zeros(2, 6, 4, 4))
    with pytest.raises(ValueError, match="float32 or float64"):
        m(torch.zeros(2, 8, 4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match=">= 0"):
        WHTPointwise(8, 8, init=-1.0)
    with pytest.raises(ValueError, match="block_size"):
        WHTPointwise(8, 8, block_size=6)
    with pytest.raises(ValueError, match="stride"):
        WHTPointwise(8, 8, 0)
    with pytest.raises(ValueError, match="threshold must be one of"):
        WHTPointwise(8, 8, threshold="relu")
    with pytest.raises(ValueError, match="expand must be one of"):
        WHTPointwise(8, 16, expand="tile")


def dense_spatial(m: WHTSpatial, x: torch.Tensor) -> torch.Tensor:
    hp, wp = m.padded
    a = torch.as_tensor(hadamard(hp), dtype=x.dtype)
    b = torch.as_tensor(hadamard(wp), dtype=x.dtype)
    xp = torch.nn.functional.pad(x, (0, wp - x.shape[-1], 0, hp - x.shape[-2]))
    z = a @ xp @ b
    y = apply_threshold(z, m.thresh.thresholds().detach(), m.thresh.kind)
    y[..., 0, 0] = z[..., 0, 0]
    y = y * m.thresh.scale.detach()
    return ((a / hp) @ y @ (b / wp))[..., :x.shape[-2], :x.shape[-1]]


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("size", [(8, 8), (5, 7), (3, 16)])
def test_spatial_matches_dense_reference_and_gradcheck(size, fused, one_thread):
    m = randomise(WHTSpatial(3, *size, fused=fused).double())
    x = 2 * torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(m(x), dense_spatial(m, x.detach()))
    t, s = (p.detach().clone().requires_grad_() for p in (m.thresh.threshold, m.thresh.scale))

    def f(x, t, s):
        return functional_call(m, {"thresh.threshold": t, "thresh.scale": s}, (x,))

    assert gradcheck(f, (x, t, s))


@pytest.mark.parametrize("kind", ["soft", "hard", "smooth"])
def test_spatial_fused_matches_composed_with_order(kind):
    m = randomise(WHTSpatial(4, 6, 5, threshold=kind, order="walsh", keep_dc=False).double())
    x = 2 * torch.randn(2, 4, 6, 5, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 4, 6, 5, dtype=torch.float64)
    assert_fused_matches_composed(m, x, g)


def test_spatial_errors():
    m = WHTSpatial(4, 8, 8)
    with pytest.raises(ValueError, match=r"\(N, 4, 8, 8\)"):
        m(torch.zeros(1, 4, 8, 9))
    with pytest.raises(ValueError, match=r"\(N, 4, 8, 8\)"):
        m(torch.zeros(4, 8, 8))


def small_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 32, 1, bias=False),
                         nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, groups=32),
                                       nn.Conv2d(32, 24, 1, stride=2, bias=False)))


def test_swap_by_predicate_and_report():
    net = small_net()
    before = sum(p.numel() for p in net.parameters())
    report = swap_layers(net, lambda name, conv: True)
    assert [r.name for r in report.rows] == ["1", "2.1"]
    assert isinstance(net[1], WHTPointwise) and isinstance(net[2][1], WHTPointwise)
    assert net[2][1].stride == 2 and isinstance(net[0], nn.Conv2d)
    assert report.model_before == before
    assert report.model_after == before - 16 * 32 - 32 * 24 + net[1].num_parameters + net[2][1].num_parameters
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 24, 4, 4)
    text = str(report)
    assert "2.1" in text and f"{report.model_after:,}" in text


def test_swap_by_name_and_errors():
    net = small_net()
    report = swap_layers(net, ["2.1"], lambda c: WHTPointwise(c.in_channels, c.out_channels, c.stride[0],
                                                              block_size=8))
    assert len(report.rows) == 1 and net[2][1].block_size == 8
    with pytest.raises(ValueError, match="1×1"):
        swap_layers(small_net(), ["0"])
    with pytest.raises(ValueError, match="no module"):
        swap_layers(small_net(), ["9"])


@pytest.mark.parametrize("order", ["hadamard", "walsh"])
def test_coefficients_are_what_the_layers_threshold(order):
    """With hard thresholds, keeping exactly the coefficients above ``thresholds()`` (same index)
    and inverting gives the layer's output."""
    from mnf.transforms import block_ifwht, ifwht2d
    m = randomise(WHTPointwise(6, 10, 2, block_size=4, threshold="hard", keep_dc=False, order=order).double())
    x = 2 * torch.randn(2, 6, 5, 5, dtype=torch.float64)
    z = m.coefficients(x)
    assert z.shape == (2, m.n, 3, 3)
    kept = z * (z.abs() > m.thresholds().detach().view(-1, 1, 1))
    torch.testing.assert_close(block_ifwht(kept, 4, dim=1, order=order)[:, :10], m(x))
    sp = randomise(WHTSpatial(3, 5, 6, threshold="hard", scale=False, keep_dc=False, order=order).double())
    xs = 2 * torch.randn(2, 3, 5, 6, dtype=torch.float64)
    z = sp.coefficients(xs)
    assert z.shape == (2, 3, 8, 8)
    kept = z * (z.abs() > sp.thresh.thresholds().detach())
    torch.testing.assert_close(ifwht2d(kept, order=order)[..., :5, :6], sp(xs))
