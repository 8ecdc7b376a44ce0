"""Thresholding functions and the Threshold module: values, gradients in x and T, errors."""
import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from mnf.layers.threshold import Threshold, hard_threshold, smooth_threshold, soft_threshold, threshold


def away_from_kinks(shape, t, margin=0.05, seed=0):
    """float64 values whose |x| is at least ``margin`` away from T and from 0."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    bad = ((x.abs() - t).abs() < margin) | (x.abs() < margin)
    return torch.where(bad, x + 3 * margin * torch.sign(x + 1e-3), x)


def test_values_match_the_formulas():
    x = np.linspace(-3, 3, 61)
    t = 1.0
    xt = torch.as_tensor(x)
    np.testing.assert_allclose(soft_threshold(xt, t), np.sign(x) * np.maximum(np.abs(x) - t, 0))
    np.testing.assert_allclose(hard_threshold(xt, t), np.where(np.abs(x) > t, x, 0.0))
    np.testing.assert_allclose(smooth_threshold(xt, t), np.tanh(x) * np.maximum(np.abs(x) - t, 0))
    # eq. 3.3.1 piecewise form: x + T below -T, 0 inside, x - T above T
    np.testing.assert_allclose(soft_threshold(torch.tensor([-2.5, 0.5, 2.5]), 1.0), [-1.5, 0.0, 1.5])


@pytest.mark.parametrize("fn", [soft_threshold, smooth_threshold])
def test_gradcheck_in_x_and_t(fn):
    t = torch.tensor([0.3, 0.8, 1.2], dtype=torch.float64, requires_grad=True)
    x = away_from_kinks((5, 3), t.detach()).requires_grad_()
    assert gradcheck(fn, (x, t))


def test_smooth_gradients_match_closed_form():
    t = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    x = away_from_kinks((200,), 0.5).requires_grad_()
    gx, gt = torch.autograd.grad(smooth_threshold(x, t).sum(), (x, t))
    xd = x.detach()
    on = (xd.abs() > 0.5).double()
    th = torch.tanh(xd)
    torch.testing.assert_close(gx, (1 - th ** 2) * torch.relu(xd.abs() - 0.5) + th.abs() * on)
    torch.testing.assert_close(gt, -(th * on).sum())


def test_hard_threshold_gradients():
    t = torch.tensor([0.4, 1.0], dtype=torch.float64, requires_grad=True)
    x = away_from_kinks((6, 2), t.detach()).requires_grad_()
    gx, gt = torch.autograd.grad(hard_threshold(x, t).sum(), (x, t))
    keep = (x.detach().abs() > t.detach()).double()
    torch.testing.assert_close(gx, keep)                                 # exact
    torch.testing.assert_close(gt, -(torch.sign(x.detach()) * keep).sum(0))  # the soft surrogate
    assert gradcheck(lambda x: hard_threshold(x, t.detach()), (x,))


def test_hard_threshold_scalar_t_broadcasts():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    _, gt = torch.autograd.grad(hard_threshold(x, t).sum(), (x, t))
    assert gt.shape == ()


def test_unknown_kind():
    with pytest.raises(ValueError, match="soft"):
        threshold(torch.zeros(3), 0.1, "relu")


@pytest.mark.parametrize("kind", ["soft", "hard", "smooth"])
def test_module_matches_functional(kind):
    m = Threshold((3, 4), kind, init=torch.linspace(0.1, 1.2, 12).view(3, 4), scale=True).double()
    with torch.no_grad():
        m.scale.uniform_(0.5, 2.0)
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    expected = threshold(x, m.threshold.detach().abs(), kind) * m.scale.detach()
    torch.testing.assert_close(m(x), expected)


def test_module_keep_dc_and_parameter_count():
    m = Threshold(8, "smooth", init=0.5, keep_dc=True).double()
    assert m.threshold.shape == (7,)
    x = torch.randn(10, 8, dtype=torch.float64)
    y = m(x)
    torch.testing.assert_close(y[:, 0], x[:, 0])                        # DC passes through
    torch.testing.assert_close(y[:, 1:], smooth_threshold(x[:, 1:], 0.5))


def test_module_threshold_is_abs_of_parameter_and_learns():
    m = Threshold(4, init=0.2).double()
    with torch.no_grad():
        m.threshold[0] = -0.3
    assert m.thresholds()[0].item() == pytest.approx(0.3)
    x = away_from_kinks((3, 4), 0.3).requires_grad_()
    assert gradcheck(lambda x, th: threshold(x, th.abs()), (x, m.threshold.detach().clone().requires_grad_()))


def test_module_errors():
    with pytest.raises(ValueError, match=">= 0"):
        Threshold(4, init=-0.1)
    with pytest.raises(ValueError, match="broadcast"):
        Threshold(4, init=torch.ones(3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        Threshold(4)(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="shape"):
        Threshold(0)
