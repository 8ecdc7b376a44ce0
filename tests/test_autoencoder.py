"""mnf.models.autoencoder: shapes, multiplier-free layers, PSNR."""
import math

import pytest
import torch
from torch import nn

from mnf.models.autoencoder import conv_autoencoder, dense_autoencoder, mf_autoencoder, psnr


@pytest.mark.parametrize("build", [conv_autoencoder, mf_autoencoder, lambda **k: mf_autoencoder(layer="wht", **k)])
def test_shapes_and_range(build):
    torch.manual_seed(0)
    model = build(channels=(8, 4, 8))
    x = torch.rand(2, 3, 32, 32)
    y = model(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert model.encode(x).shape == (2, 4, 8, 8)


def test_mf_autoencoder_has_no_convolutions_or_linears():
    for layer in ("adder", "wht"):
        model = mf_autoencoder(channels=(8, 4, 8), layer=layer)
        assert not any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
    with pytest.raises(ValueError, match="unknown layer"):
        mf_autoencoder(layer="conv")
    with pytest.raises(ValueError, match="three positive ints"):
        conv_autoencoder(channels=(8, 4))


def test_dense_autoencoder_shape():
    model = dense_autoencoder(12, hidden=(6, 2))
    assert [m.out_features for m in model if isinstance(m, nn.Linear)] == [6, 2, 6, 12]
    assert model(torch.randn(3, 12)).shape == (3, 12)


def test_psnr_formula():
    x = torch.zeros(2, 3, 4, 4)
    y = torch.full_like(x, 0.1)
    assert float(psnr(x, y)) == pytest.approx(20.0)                  # 10·log10(1 / 0.01)
    assert float(psnr(x * 255, y * 255, data_range=255)) == pytest.approx(20.0)
    y[1] = 0.01
    per = psnr(x, y, per_image=True)
    assert per.shape == (2,) and per.tolist() == pytest.approx([20.0, 40.0])
    assert math.isinf(float(psnr(x, x)))
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, y[0])
