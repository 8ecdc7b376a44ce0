"""mnf.compress: SVD factorization, activation pruning, weight quantization."""
import pytest
import torch
from torch import nn

from mnf.compress import (activation_counts, factorize, factorize_layer, fake_quantize, find_chains, prune,
                          quantize, quantize_tensor, QuantizedConv2d, QuantizedLinear)


def params(model):
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------ factorization

@pytest.mark.parametrize("layer", [nn.Linear(12, 7), nn.Conv2d(4, 6, 3, stride=2, padding=1)])
def test_full_rank_factorization_is_exact(layer):
    torch.manual_seed(0)
    x = torch.randn(5, 12) if isinstance(layer, nn.Linear) else torch.randn(2, 4, 9, 9)
    full = min(layer.weight.shape[0], layer.weight[0].numel())
    new, row = factorize_layer(layer, rank=full)
    assert row.rank == full and row.rel_error < 1e-6
    torch.testing.assert_close(new(x), layer(x), atol=1e-5, rtol=1e-5)


def test_error_falls_with_rank_and_matches_singular_values():
    torch.manual_seed(0)
    layer = nn.Linear(30, 20)
    s = torch.linalg.svdvals(layer.weight.detach().double())
    errors = []
    for r in range(1, 21):
        _, row = factorize_layer(layer, rank=r)
        errors.append(row.rel_error)
        expected = (s[r:] ** 2).sum().sqrt() / (s ** 2).sum().sqrt()   # Eckart–Young
        assert row.rel_error == pytest.approx(float(expected), abs=1e-6)
    assert all(a >= b for a, b in zip(errors, errors[1:]))


def test_energy_picks_smallest_sufficient_rank():
    layer = nn.Linear(4, 4, bias=False)
    layer.weight.data = torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.5]))
    total = 9 + 4 + 1 + 0.25
    _, row = factorize_layer(layer, energy=13 / total)
    assert row.rank == 2
    _, row = factorize_layer(layer, energy=13.01 / total)
    assert row.rank == 3


def test_reported_params_and_macs():
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 4 * 4, 10))
    before = params(model)
    report = factorize(model, rank=2, input_size=(1, 8, 4, 4))
    conv, fc = report.rows
    assert conv.params_before == 16 * 72 + 16 and conv.params_after == 2 * (16 + 72) + 16
    assert conv.macs_before == 16 * 72 * 16 and conv.macs_after == 2 * (16 + 72) * 16   # 16 positions
    assert fc.params_after == 2 * (256 + 10) + 10 and fc.macs_after == 2 * (256 + 10)
    assert params(model) == before - report.params_saved
    assert isinstance(model[0], nn.Sequential) and model[0][1].kernel_size == (1, 1)
    assert model(torch.randn(3, 8, 4, 4)).shape == (3, 10)


def test_factorize_refuses_unsupported_layers():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4), nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match="0: Conv2d with groups=4"):
        factorize(model, rank=1, layers=["0"])
    with pytest.raises(TypeError, match="1: BatchNorm2d cannot be factorized"):
        factorize(model, rank=1, layers=["1"])
    with pytest.raises(ValueError, match="exactly one of rank and energy"):
        factorize(nn.Linear(3, 3), rank=1, energy=0.5)
    with pytest.raises(ValueError, match="no nn.Linear"):
        factorize(model, rank=1)


def test_factorize_refuses_adder_layer():
    from mnf.layers.adder import Adder2d
    model = nn.Sequential(Adder2d(2, 2, 1))
    with pytest.raises(TypeError, match="0: Adder2d cannot be factorized"):
        factorize(model, rank=1, layers=["0"])


# ------------------------------------------------------------------ pruning

def kill(layer, units, bias=-100.0):
    """Make ``units`` of a Linear/Conv2d (+ReLU) always zero: zero their weights, very negative bias."""
    with torch.no_grad():
        layer.weight[units] = 0
        layer.bias[units] = bias


def test_pruning_dead_linear_units_keeps_function_and_shrinks():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 40), nn.ReLU(), nn.Linear(40, 30), nn.ReLU(), nn.Dropout(0.1), nn.Linear(30, 3))
    kill(model[0], list(range(0, 40, 3)))
    kill(model[2], list(range(0, 30, 2)))
    x = torch.randn(200, 5)
    model.eval()
    y0 = model(x)
    before = params(model)
    report = prune(model, x)
    (a, b), (c, d) = [(r.units_before, r.units_after) for r in report.rows]
    assert (a, c) == (40, 30) and b <= 26 and d <= 15          # random units may be dead too
    assert model[0].out_features == b and model[2].in_features == b and model[5].in_features == d
    assert params(model) == report.params_after < before
    torch.testing.assert_close(model(x), y0, atol=1e-5, rtol=1e-5)


def test_pruning_conv_bn_chain_and_fold():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1))
    model.eval()
    with torch.no_grad():   # channels 1 and 5: BN output always very negative
        model[1].bias[[1, 5]] = -1e4
    x = torch.randn(6, 3, 8, 8)
    y0 = model(x)
    report = prune(model, x)
    assert report.rows[0].units_after == 6 and model[1].num_features == 6 and model[3].in_channels == 6
    torch.testing.assert_close(model(x), y0, atol=1e-5, rtol=1e-5)


def test_pruning_mobilenet_expansion_channels_keeps_function():
    from mnf.models import mobilenet_v2
    torch.manual_seed(0)
    net = mobilenet_v2(width=0.25, blocks=(1, 1, 1, 1, 1, 1, 1))
    net.eval()
    body = net.features[5].body          # expand conv, BN, act, dw conv, BN, act, project, BN
    with torch.no_grad():
        body[4].bias[[0, 3, 7]] = -1e4   # depthwise BN shifts three expansion channels below zero
    x = torch.randn(4, 3, 32, 32)
    y0 = net(x)
    before = params(net)
    report = prune(net, x, layers=["features.5.body.0"])
    hidden = body[0].out_channels
    assert report.rows[0].kind == "expand" and report.rows[0].units_before - hidden == 3
    assert body[1].num_features == body[3].out_channels == body[3].groups == body[4].num_features == hidden
    assert body[6].in_channels == hidden
    assert params(net) < before
    torch.testing.assert_close(net(x), y0, atol=1e-4, rtol=1e-4)


def test_pruning_threshold_and_counts():
    model = nn.Sequential(nn.Linear(1, 3), nn.ReLU(), nn.Linear(3, 1))
    with torch.no_grad():
        model[0].weight[:] = torch.tensor([[1.0], [1.0], [1.0]])
        model[0].bias[:] = torch.tensor([0.0, -0.5, -2.0])
    x = ((torch.arange(101.0) - 50) / 50)[:, None]       # unit 0 fires on x > 0, unit 1 on x > 0.5, unit 2 never
    stats = activation_counts(model, x)["0"]
    assert stats.counts.tolist() == [50, 25, 0]
    report = prune(model, x, threshold=25)
    assert report.rows[0].units_after == 1


def test_pruning_refuses_unsupported_layers():
    from mnf.layers.adder import Adder2d
    model = nn.Sequential(Adder2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))
    with pytest.raises(TypeError, match="0: cannot prune: Adder2d"):
        prune(model, torch.randn(2, 3, 4, 4), layers=["0"])
    with pytest.raises(ValueError, match="no prunable chain"):
        prune(model, torch.randn(2, 3, 4, 4))
    model = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="expected ReLU/ReLU6"):
        prune(model, torch.randn(2, 3), layers=["0"])
    assert find_chains(model) == []


# ------------------------------------------------------------------ quantization

@pytest.mark.parametrize("bits", [2, 4, 8, 12])
@pytest.mark.parametrize("per_channel", [True, False])
def test_quantization_round_trip_bound(bits, per_channel):
    torch.manual_seed(bits)
    w = torch.randn(16, 8, 3, 3) * torch.logspace(-2, 1, 16)[:, None, None, None]
    q, scale = quantize_tensor(w, bits, per_channel)
    assert q.dtype == (torch.int8 if bits <= 8 else torch.int16)
    assert int(q.abs().max()) <= 2 ** (bits - 1) - 1
    err = (w - q.float() * scale).abs()
    assert torch.all(err <= scale / 2 + 1e-6 * scale)
    if per_channel:
        assert scale.shape == (16, 1, 1, 1)


def test_quantize_model_int8_storage_and_close_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16, 5))
    x = torch.randn(4, 3, 4, 4)
    y0 = model(x)
    report = quantize(model, bits=8)
    assert isinstance(model[0], QuantizedConv2d) and isinstance(model[3], QuantizedLinear)
    assert model[0].qweight.dtype == torch.int8
    assert all(r.max_error <= r.bound * (1 + 1e-6) and r.rel_error < 0.01 for r in report.rows)
    before, after = report.weight_bytes
    assert before == 4 * (8 * 27 + 5 * 128) and after == (8 * 27 + 5 * 128) + 4 * (8 + 5)
    assert (model(x) - y0).abs().max() < 0.05 * y0.abs().max()


def test_fake_quantize_error_shrinks_with_bits():
    torch.manual_seed(0)
    errors = []
    for bits in (2, 3, 4, 6, 8):
        model = nn.Sequential(nn.Linear(64, 64))
        errors.append(fake_quantize(model, bits).rows[0].rel_error)
        assert len(torch.unique(model[0].weight[0])) <= 2 ** bits - 1
    assert all(a > b for a, b in zip(errors, errors[1:]))


def test_quantize_refuses_unsupported_layers():
    from mnf.layers.adder import Adder2d
    model = nn.Sequential(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2), Adder2d(2, 2, 1))
    with pytest.raises(TypeError, match="1: BatchNorm2d cannot be weight-quantized"):
        quantize(model, layers=["1"])
    with pytest.raises(TypeError, match="2: Adder2d has no integer-storage"):
        quantize(model, layers=["2"])
    with pytest.raises(ValueError, match="bits must be an int"):
        quantize(model, bits=1)
    report = fake_quantize(model, bits=4)        # Adder2d weights can be fake-quantized
    assert [r.kind for r in report.rows] == ["Conv2d", "Adder2d"]


def test_mnf_models_with_wht_and_resnet_are_handled_or_refused_clearly():
    from mnf.models import mobilenet_v2, resnet20
    net = mobilenet_v2(width=0.25, blocks=(1,) * 7, pointwise="wht")
    with pytest.raises(TypeError, match="features.3.body.0: WHTPointwise cannot be factorized"):
        factorize(net, rank=2, layers=["features.3.body.0"])
    with pytest.raises(TypeError, match="features.3.body.0: WHTPointwise cannot be weight-quantized"):
        quantize(net, layers=["features.3.body.0"])
    report = factorize(net, energy=0.5)            # the remaining convolutions / classifier only
    assert all(r.kind in ("Conv2d", "Linear") for r in report.rows)
    with pytest.raises(ValueError, match="no prunable chain"):
        prune(resnet20(), torch.randn(2, 3, 32, 32))
