"""mnf.models.small: the SE layer against its dense formula, the WHT variants, costs and errors."""
import numpy as np
import pytest
import torch
from torch import nn

from mnf.cost import cost_table
from mnf.layers.wht import WHTSpatial
from mnf.models.small import Gate, OrthonormalWHT2d, SqueezeExcite, small_cnn
from mnf.transforms import hadamard

VARIANTS = [dict(), dict(conv3x3="wht2d"), dict(se="wht2d"), dict(se="none"), dict(pre_gap="wht2d"),
            dict(conv3x3="wht2d", se="wht2d", pre_gap="wht2d", threshold="smooth"),
            dict(conv3x3="wht2d", pre_gap="wht2d", stem_stride=2)]


def test_squeeze_excite_matches_dense_formula():
    torch.manual_seed(0)
    se = SqueezeExcite(8, reduction=4).double()
    x = torch.randn(3, 8, 5, 6, dtype=torch.float64)
    xn = x.numpy()
    w1, b1 = se.fc1.weight.detach().numpy()[:, :, 0, 0], se.fc1.bias.detach().numpy()
    w2, b2 = se.fc2.weight.detach().numpy()[:, :, 0, 0], se.fc2.bias.detach().numpy()
    m = xn.mean(axis=(2, 3))                                   # (N, C)
    s = 1 / (1 + np.exp(-(np.maximum(m @ w1.T + b1, 0) @ w2.T + b2)))
    assert np.allclose(se(x).detach().numpy(), xn * s[:, :, None, None])
    assert sum(p.numel() for p in se.parameters()) == 2 * 8 * 2 + 2 + 8


def test_wht2d_before_pooling_is_a_scaled_mean_without_a_nonlinearity():
    """What the chapter shows: mean_hw(WHTSpatial(x)) = scale[0,0]·mean_hw(x) on a power-of-two map."""
    torch.manual_seed(1)
    layer = WHTSpatial(4, 8, 8, scale=True).double()
    with torch.no_grad():
        layer.thresh.threshold.uniform_(0.2, 3.0)
        layer.thresh.scale.uniform_(0.5, 1.5)
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    pooled = layer(x).mean(dim=(2, 3))
    assert torch.allclose(pooled, layer.thresh.scale[0, 0] * x.mean(dim=(2, 3)))
    # the dense formula of the layer itself, per image: H (s ⊙ soft(H x H)) H / 64, DC kept
    h = torch.as_tensor(hadamard(8), dtype=torch.float64)
    z = h @ x @ h
    t = layer.thresh.thresholds().detach()
    y = torch.sign(z) * torch.relu(z.abs() - t)
    y[..., 0, 0] = z[..., 0, 0]
    dense = h @ (layer.thresh.scale.detach() * y) @ h / 64
    assert torch.allclose(layer(x), dense)
    assert not torch.allclose(torch.relu(layer(x)).mean(dim=(2, 3)),
                              layer.thresh.scale[0, 0] * torch.relu(x).mean(dim=(2, 3)))


def expected_params(w: int, conv3x3: str = "conv", se: str = "se", pre_gap: str = "none", stem_stride: int = 1,
                    **_) -> int:
    """Parameter count of small_cnn(width=w, ...) from the layer formulas."""
    bn = lambda c: 2 * c  # noqa: E731
    side = 32 // stem_stride
    total = 27 * w + bn(w)                                        # stem
    for cin, cout, size in ((w, w, side), (w, 2 * w, side // 2), (2 * w, 4 * w, side // 4)):
        total += 9 * cin * cout + 2 * bn(cout)                    # f1, bn1, bn2
        total += 9 * cout * cout if conv3x3 == "conv" else size * size - 1
        if se == "se":
            hidden = cout // 4
            total += 2 * cout * hidden + hidden + cout
        elif se == "wht2d":
            total += size * size - 1
        if cin != cout:
            total += cin * cout + bn(cout)                        # 1×1 shortcut + BN
    if pre_gap == "wht2d":
        total += 2 * (side // 4) ** 2 - 1                         # thresholds (no DC) and scales
    return total + 4 * w * 10 + 10                                # classifier


@pytest.mark.parametrize("kw", VARIANTS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "baseline")
def test_variants_shapes_parameters_and_gradients(kw):
    torch.manual_seed(0)
    model = small_cnn(width=8, **kw)
    defaults = dict(width=8, num_classes=10, conv3x3="conv", se="se", pre_gap="none", threshold="soft", stem_stride=1)
    assert model.arch == {"name": "small_cnn", "kwargs": dict(defaults, **kw)}
    assert sum(p.numel() for p in model.parameters()) == expected_params(8, **kw)
    x = torch.randn(4, 3, 32, 32)
    out = model(x)
    assert out.shape == (4, 10)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_cost_counts_the_se_rescaling_and_the_wht_layers():
    base, wht = cost_table(small_cnn(width=8)), cost_table(small_cnn(width=8, se="wht2d"))
    gates = [r for r in base.layers if r.kind == "Gate"]
    assert [r.mults for r in gates] == [8 * 32 * 32 + 8, 16 * 16 * 16 + 16, 32 * 8 * 8 + 32]
    assert [r.adds for r in gates] == [8, 16, 32]
    spatial = [r for r in wht.layers if r.kind == "WHTSpatial"]      # inside OrthonormalWHT2d
    # per channel image: two 2-D transforms of Hp·Wp points (Hp·Wp·log2(Hp·Wp) additions each) + thresholds
    assert [r.adds for r in spatial] == [c * (2 * n * int(np.log2(n)) + n) for c, n in ((8, 1024), (16, 256), (32, 64))]
    assert all(r.mults == 0 for r in spatial)
    assert Gate().op_counts(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)) == (2 * 3 * 16 + 6, 6)


@pytest.mark.parametrize("kw, match", [
    (dict(conv3x3="dense"), "conv3x3"), (dict(se="cbam"), "se"), (dict(pre_gap="conv"), "pre_gap"),
    (dict(threshold="relu"), "threshold"), (dict(width=2), "width"), (dict(num_classes=0), "num_classes"),
    (dict(stem_stride=4), "stem_stride"),
])
def test_bad_arguments_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        small_cnn(**kw)


def test_bad_input_and_se_arguments_raise():
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\)"):
        small_cnn(width=8)(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="reduction"):
        SqueezeExcite(8, reduction=16)
    with pytest.raises(ValueError, match="channels"):
        SqueezeExcite(0)
    with pytest.raises(ValueError, match="power of two"):
        OrthonormalWHT2d(4, 6)


@pytest.mark.parametrize("kind", ["soft", "hard", "smooth"])
def test_orthonormal_wrapper_is_the_layer_on_orthonormal_coefficients(kind):
    """y = S·WHTSpatial(x/S): the dense orthonormal 2-D transform, threshold in its units, inverse."""
    torch.manual_seed(2)
    layer = OrthonormalWHT2d(3, 8, threshold=kind, init=0.3, scale=True).double()
    with torch.no_grad():
        layer.wht.thresh.threshold.uniform_(0.1, 1.0)
        layer.wht.thresh.scale.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    h = torch.as_tensor(hadamard(8), dtype=torch.float64) / np.sqrt(8)      # orthonormal
    z = h @ x @ h
    t = layer.wht.thresh.thresholds().detach()
    y = {"soft": torch.sign(z) * torch.relu(z.abs() - t), "hard": z * (z.abs() > t),
         "smooth": torch.tanh(z) * torch.relu(z.abs() - t)}[kind]
    y[..., 0, 0] = z[..., 0, 0]
    assert torch.allclose(layer(x), h @ (layer.wht.thresh.scale.detach() * y) @ h)
