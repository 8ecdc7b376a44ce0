"""mnf.compress.sharing (k-means weight sharing) and mnf.compress.distort (distorted pruning)."""
import itertools
import math

import pytest
import torch
from torch import nn

from mnf.compress import fake_quantize, find_chains
from mnf.compress.distort import amplitude, distort_, unit_shifts
from mnf.compress.sharing import index_bits, kmeans_1d, share_tensor, share_weights, shared_bits


def sse(v, codebook):
    return float(((v[:, None] - codebook[None, :]) ** 2).min(1).values.sum())


# ------------------------------------------------------------------ k-means in one dimension

def test_kmeans_is_a_fixed_point_and_finds_separated_clusters():
    # Lloyd's algorithm stops at a local optimum: every value at its nearest centre, every centre
    # the mean of its values; on well separated groups that is the global optimum
    torch.manual_seed(0)
    v = torch.randn(9).double()
    s = torch.sort(v).values
    best = min(sum(float(((s[a:b] - s[a:b].mean()) ** 2).sum()) for a, b in zip((0,) + cut, cut + (9,)))
               for cut in itertools.combinations(range(1, 9), 2))     # 1-D optimum: contiguous runs
    for init in ("linear", "quantile"):
        codebook, index = kmeans_1d(v, 3, init=init)
        got = float(((v - codebook.double()[index]) ** 2).sum())
        assert got == pytest.approx(sse(v, codebook.double()), rel=1e-5) and got >= best - 1e-9
    groups = torch.cat([torch.randn(50) * 0.01 + c for c in (-3.0, 0.5, 4.0)])
    codebook, index = kmeans_1d(groups, 3)
    torch.testing.assert_close(codebook, torch.tensor([-3.0, 0.5, 4.0]), atol=0.01, rtol=0)
    assert torch.equal(index, torch.arange(3).repeat_interleave(50))


def test_kmeans_centres_are_cluster_means_and_sorted():
    torch.manual_seed(1)
    v = torch.randn(1000)
    codebook, index = kmeans_1d(v, 8)
    assert torch.all(codebook[1:] >= codebook[:-1])
    for j in range(8):
        members = v[index == j]
        if len(members):
            assert float(members.double().mean()) == pytest.approx(float(codebook[j]), abs=1e-5)


def test_kmeans_exact_when_k_covers_the_distinct_values():
    v = torch.tensor([0.5, -1.0, 0.5, 2.0, -1.0, 2.0, 2.0])
    codebook, index = kmeans_1d(v, 3)
    torch.testing.assert_close(codebook[index], v)


def test_more_values_never_hurt_much_and_error_falls():
    torch.manual_seed(2)
    w = torch.randn(64, 32) * 0.1
    errors = []
    for k in (2, 4, 8, 16, 32):
        index, codebook = share_tensor(w, k)
        assert index.shape == w.shape and index.dtype == torch.uint8 and codebook.shape == (k,)
        errors.append(float(torch.linalg.norm(w - codebook[index.long()]) / torch.linalg.norm(w)))
    assert all(a > b for a, b in zip(errors, errors[1:]))


def test_kmeans_beats_uniform_grid_with_as_many_levels():
    # a heavy-tailed layer: a uniform grid wastes levels on the empty tails
    torch.manual_seed(3)
    w = torch.distributions.Laplace(0.0, 0.05).sample((4096,))
    for bits in (2, 3, 4):
        index, codebook = share_tensor(w, 2 ** bits)
        shared = float(torch.linalg.norm(w - codebook[index.long()]))
        uniform = nn.Linear(4096, 1, bias=False)
        uniform.weight.data = w[None].clone()
        fake_quantize(nn.Sequential(uniform), bits, per_channel=False)
        assert shared < float(torch.linalg.norm(w - uniform.weight.data[0]))


def test_storage_cost():
    assert index_bits(2) == 1 and index_bits(16) == 4 and index_bits(17) == 5 and index_bits(256) == 8
    assert shared_bits(1000, 16) == 1000 * 4 + 32 * 16
    assert shared_bits(1000, 16, codebook_bits=16) == 1000 * 4 + 16 * 16


@pytest.mark.parametrize("bad", [1, 0, -3, 2.0, True, "4", 70000])
def test_bad_k_raises(bad):
    with pytest.raises(ValueError, match="k must be an int"):
        kmeans_1d(torch.randn(10), bad)


def test_bad_values_raise():
    with pytest.raises(ValueError, match="empty"):
        kmeans_1d(torch.empty(0), 4)
    with pytest.raises(ValueError, match="NaN"):
        kmeans_1d(torch.tensor([1.0, float("nan")]), 2)
    with pytest.raises(ValueError, match="init"):
        kmeans_1d(torch.randn(5), 2, init="random")
    with pytest.raises(ValueError, match="n must be"):
        shared_bits(-1, 4)


def test_share_weights_in_place_report_and_errors():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    report = share_weights(model, k=4)
    assert [r.name for r in report.rows] == ["0", "4"]
    for name in ("0", "4"):
        assert torch.unique(dict(model.named_modules())[name].weight).numel() <= 4
    conv = report.rows[0]
    assert conv.weights == 8 * 27 and conv.bits_before == 32 * 216 and conv.bits_after == 216 * 2 + 32 * 4
    assert report.float_params == 8 + 16 + 10       # conv bias, BN weight and bias, linear bias
    before, after = report.model_bytes
    assert before == 4 * sum(p.numel() for p in model.parameters())
    assert after == -(-(216 * 2 + 128 + 1280 * 2 + 128) // 8) + 4 * 34
    assert model(torch.randn(2, 3, 6, 6)).shape == (2, 10)
    with pytest.raises(TypeError, match="BatchNorm2d"):
        share_weights(model, k=4, layers=["1"])
    with pytest.raises(ValueError, match="no layer named"):
        share_weights(model, k=4, layers=["9"])
    with pytest.raises(ValueError, match="list of names"):
        share_weights(model, k=4, layers="0")
    with pytest.raises(ValueError, match="no nn.Linear"):
        share_weights(nn.Sequential(nn.ReLU()), k=4)


def test_share_weights_handles_adder_layers():
    from mnf.layers.adder import Adder2d
    torch.manual_seed(5)
    model = nn.Sequential(Adder2d(4, 4, 3))
    report = share_weights(model, k=8)
    assert report.rows[0].kind == "Adder2d" and torch.unique(model[0].weight).numel() <= 8


# ------------------------------------------------------------------ distortion

def test_amplitude_is_one_minus_population_variance():
    w = torch.tensor([1.0, -1.0, 1.0, -1.0]) * 0.5      # variance 0.25
    assert amplitude(w) == pytest.approx(0.75)
    assert amplitude(torch.tensor([3.0])) == 1.0
    assert amplitude(torch.tensor([10.0, -10.0])) == 0.0  # clamped: a wide tensor gets no noise
    with pytest.raises(ValueError):
        amplitude(torch.tensor([1, 2]))


def test_distort_is_bounded_reproducible_and_uniform():
    w = torch.zeros(20000)
    used = distort_([w], generator=torch.Generator().manual_seed(0))
    assert used == [1.0] and w.abs().max() <= 1.0 and abs(float(w.mean())) < 0.02
    assert float(w.var()) == pytest.approx(1 / 3, rel=0.03)             # U(-1, 1)
    again = torch.zeros(20000)
    distort_([again], generator=torch.Generator().manual_seed(0))
    assert torch.equal(w, again)
    x = torch.ones(5)
    assert distort_(x, amount=0.0) == [0.0] and torch.equal(x, torch.ones(5))


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "1", True])
def test_distort_bad_amount_raises(bad):
    with pytest.raises(ValueError, match="amount"):
        distort_([torch.zeros(3)], amount=bad)


def test_distort_bad_tensors_raise():
    with pytest.raises(ValueError, match="no tensors"):
        distort_([])
    with pytest.raises(ValueError, match="floating-point"):
        distort_([torch.zeros(3, dtype=torch.long)])


def test_unit_shifts_finds_batch_norm_and_bias():
    mlp = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 1))
    assert [t is mlp[0].bias for t in unit_shifts(mlp)] == [True]
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))
    assert [t is conv[1].bias for t in unit_shifts(conv)] == [True]
    from mnf.models import mobilenet_v2
    net = mobilenet_v2(width=0.25, blocks=(1,) * 7, stem_stride=2)
    shifts = unit_shifts(net)
    assert len(shifts) == 2 * len(find_chains(net))                   # both BNs of every expansion
    with pytest.raises(ValueError, match="no prunable chain"):
        unit_shifts(nn.Sequential(nn.Linear(2, 2)))


def test_distortion_kills_units_of_a_shared_representation():
    # every unit fires on the whole unit square; kicks of amplitude ~1 leave some dead everywhere
    torch.manual_seed(6)
    layer = nn.Linear(2, 400)
    layer.weight.data.uniform_(0.1, 0.5)
    layer.bias.data.uniform_(0.0, 0.3)
    grid = torch.rand(2000, 2)
    assert bool((layer(grid) > 0).any(0).all())
    distort_(layer.parameters(), generator=torch.Generator().manual_seed(0))
    dead = ~(layer(grid) > 0).any(0)
    assert 0 < int(dead.sum()) < 400
    assert math.isfinite(float(layer.weight.detach().sum()))
