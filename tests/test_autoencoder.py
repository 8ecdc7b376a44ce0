"""mnf.models.autoencoder: shapes, multiplier-free layers, PSNR."""
import math

import pytest
import torch
from torch import nn

from mnf.models.autoencoder import conv_autoencoder, dense_autoencoder, mf_autoencoder, psnr


@pytest.mark.parametrize("build", [conv_autoencoder, mf_autoencoder,
                                   lambda **k: mf_autoencoder(conv3x3="separable_adder_wht", **k)])
def test_shapes_and_range(build):
    torch.manual_seed(0)
    model = build(channels=(8, 4, 8))
    x = torch.rand(2, 3, 32, 32)
    y = model(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert model.encode(x).shape == (2, 4, 8, 8)


def test_mf_autoencoder_has_no_convolutions_or_linears():
    for kind in ("adder", "separable_adder_wht"):
        model = mf_autoencoder(channels=(8, 4, 8), conv3x3=kind)
        assert not any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
    with pytest.raises(ValueError, match="unknown conv3x3 layer 'conv'"):
        mf_autoencoder(conv3x3="conv")
    with pytest.raises(ValueError, match="three positive ints"):
        conv_autoencoder(channels=(8, 4))


def test_dense_autoencoder_shape():
    model = dense_autoencoder(features=12, hidden=(6, 2))
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


# ------------------------------------------------------------------ training

def notebook_loop(model, train_x, epochs, batch, seed=0):
    """The loop book/compress/autoencoder.ipynb wrote before train_autoencoder existed."""
    import torch.nn.functional as F
    gen = torch.Generator().manual_seed(seed)
    steps = epochs * (len(train_x) // batch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(train_x), generator=gen)[: steps // epochs * batch].split(batch):
            x = train_x[idx]
            loss = F.mse_loss(model(x), x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
    return losses


def test_train_autoencoder_is_the_chapter_loop(monkeypatch):
    from mnf.models.autoencoder import train_autoencoder
    monkeypatch.delenv("MNF_SMOKE", raising=False)
    images = torch.rand(22, 3, 8, 8, generator=torch.Generator().manual_seed(0))    # 5 batches of 4, 2 left out
    torch.manual_seed(0)
    a = conv_autoencoder(channels=(4, 2, 4))
    b = conv_autoencoder(channels=(4, 2, 4))
    b.load_state_dict(a.state_dict())
    expected = notebook_loop(a, images, epochs=2, batch=4)
    losses = train_autoencoder(b, images, steps=10, batch_size=4, progress=False)
    assert losses == expected and b.training
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_train_autoencoder_uint8_partial_epochs_and_smoke_cap(monkeypatch):
    from mnf.models.autoencoder import train_autoencoder
    monkeypatch.delenv("MNF_SMOKE", raising=False)
    pixels = torch.randint(0, 256, (12, 3, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    torch.manual_seed(0)
    a = conv_autoencoder(channels=(4, 2, 4))
    b = conv_autoencoder(channels=(4, 2, 4))
    b.load_state_dict(a.state_dict())
    from_uint8 = train_autoencoder(a, pixels, steps=7, batch_size=4, seed=3, progress=False)
    from_float = train_autoencoder(b, pixels.float() / 255, steps=7, batch_size=4, seed=3, progress=False)
    assert len(from_uint8) == 7 and from_uint8 == from_float
    assert from_uint8[-1] < from_uint8[0]
    monkeypatch.setenv("MNF_SMOKE", "1")
    assert len(train_autoencoder(b, pixels, steps=50, batch_size=4, progress=True)) == 3


def test_train_autoencoder_refuses_bad_input():
    from mnf.models.autoencoder import train_autoencoder
    model = conv_autoencoder(channels=(4, 2, 4))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        train_autoencoder(model, torch.randn(8, 3, 8, 8), steps=1)
    with pytest.raises(ValueError, match="fewer than one batch"):
        train_autoencoder(model, torch.rand(3, 3, 8, 8), steps=1, batch_size=4)
    with pytest.raises(ValueError, match="steps must be"):
        train_autoencoder(model, torch.rand(8, 3, 8, 8), steps=0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        train_autoencoder(model, torch.rand(8, 3 * 8 * 8), steps=1)


def test_reconstruct_matches_eval_forward():
    from mnf.models.autoencoder import reconstruct
    torch.manual_seed(0)
    model = conv_autoencoder(channels=(4, 2, 4)).train()
    x = torch.rand(5, 3, 8, 8)
    out = reconstruct(model, x, batch_size=2)
    assert model.training
    with torch.no_grad():
        torch.testing.assert_close(out, model.eval()(x))
    pixels = (x * 255).round().to(torch.uint8)
    assert torch.equal(reconstruct(model, pixels), reconstruct(model, pixels.float() / 255))
