"""Mixed precision: the Numba-backed layers under ``torch.autocast`` and with float16/bfloat16 inputs.

The kernels are float32/float64 only; ``Adder2d``, ``WHTPointwise``, ``WHTSpatial`` (and ``fwht``,
see test_transforms.py) compute half-precision inputs in float32 and return float32.
"""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mnf.models as M
from mnf.adder import adder2d
from mnf.layers import Adder2d, Threshold, WHTPointwise, WHTSpatial
from mnf.models.policy import DEPTHWISE, LAST, POINTWISE

HALVES = [torch.bfloat16, torch.float16]
EPS = {torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}  # unit roundoff
MF_LAYERS = (Adder2d, WHTPointwise, WHTSpatial)


# ---------------------------------------------------------------- every model variant
def _mobilenet(layout="cifar", size=16, **roles):
    return lambda: M.mobilenet_v2(layout=layout, width=0.25, blocks=[1] * 7, input_size=size, **roles)


def _variants():
    """name -> (builder, image side, "cls" | "ae"): every value of every policy role, and more."""
    out = {}
    for role, values in (("pointwise", POINTWISE), ("depthwise", DEPTHWISE), ("last", LAST)):
        for value in values:
            if value != "conv" or role == "pointwise":  # the all-conv model once
                out[f"mobilenet-{role}={value}"] = (_mobilenet(**{role: value}), 16, "cls")
    for pw, dw in (("wht", "adder"), ("adder", "wht2d")):  # multiplier-free throughout
        out[f"mobilenet-{pw}/{dw}/wht"] = (_mobilenet(pointwise=pw, depthwise=dw, last="wht"), 16, "cls")
    out["mobilenet-imagenet-wht/wht2d/wht"] = (
        _mobilenet("imagenet", 32, pointwise="wht", depthwise="wht2d", last="wht"), 32, "cls")
    for kind in M.resnet.CONV3X3:
        out[f"resnet-{kind}"] = (lambda kind=kind: M.resnet20(conv3x3=kind, blocks=1), 16, "cls")
    out["resnet-separable_adder-transitions"] = (
        lambda: M.resnet20(conv3x3="separable_adder", blocks=1, separable_transitions=True), 16, "cls")
    out["conv_autoencoder"] = (lambda: M.conv_autoencoder(channels=(8, 4, 8)), 16, "ae")
    # no convolution or linear layer: autocast leaves mf_autoencoder in float32 end to end
    for kind in M.autoencoder.CONV3X3:
        out[f"mf_autoencoder-{kind}"] = (
            lambda kind=kind: M.mf_autoencoder(channels=(8, 4, 8), conv3x3=kind), 16, "ae")
    return out


VARIANTS = _variants()


def _build(name):
    make, size, kind = VARIANTS[name]
    torch.manual_seed(0)
    model = make()
    g = torch.Generator().manual_seed(1)
    x = (torch.rand if kind == "ae" else torch.randn)(4, 3, size, size, generator=g)
    return model, x, kind


def _loss(out, x, kind):
    return F.mse_loss(out, x) if kind == "ae" else F.cross_entropy(out, torch.arange(len(x)) % 10)


def test_variants_cover_every_policy_value():
    names = " ".join(VARIANTS)
    for role, values in (("pointwise", POINTWISE), ("depthwise", DEPTHWISE), ("last", LAST)):
        assert all(f"{role}={v}" in names or v == "conv" for v in values)
    assert all(f"resnet-{v}" in VARIANTS for v in M.resnet.CONV3X3)
    assert all(f"mf_autoencoder-{v}" in VARIANTS for v in M.autoencoder.CONV3X3)


@pytest.mark.parametrize("name", VARIANTS)
def test_training_step_under_bf16_autocast(name):
    """One SGD step under CPU bf16 autocast: finite loss and grads for every parameter; every
    multiplier-free layer returned float32 equal to itself applied, in float32, to its input."""
    model, x, kind = _build(name)
    model.train()
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((m, i[0].detach(), o.detach())))
             for m in model.modules() if isinstance(m, MF_LAYERS)]
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = _loss(model(x), x, kind)
    for h in hooks:
        h.remove()
    assert torch.isfinite(loss), name
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}: {pname}"
    assert len(seen) == sum(isinstance(m, MF_LAYERS) for m in model.modules())
    with torch.no_grad():
        for m, inp, out in seen:
            assert out.dtype == torch.float32, f"{name}: {m}"
            torch.testing.assert_close(out, m(inp.float()), rtol=0, atol=0)
    opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _calibrate(model, x):
    """BN running statistics := the float32 batch statistics of ``x``; then eval mode."""
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.reset_running_stats()
            bn.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


def _rel(a, b):
    return ((a.float() - b).norm() / b.norm()).item()


def _sensitivity(model, x, ref, eps):
    """Largest relative change of the float32 model's output when ``x`` is perturbed by ``eps``
    relative noise (three draws): what rounding only the input to that precision can do."""
    gens = (torch.Generator().manual_seed(s) for s in range(3))
    return max(_rel(model(x * (1 + eps * torch.randn(x.shape, generator=g))), ref) for g in gens)


FLOOR = {torch.bfloat16: 0.25, torch.float16: 0.05}


@pytest.mark.parametrize("dtype", HALVES)
@pytest.mark.parametrize("name", VARIANTS)
def test_autocast_output_close_to_float32(name, dtype):
    """Autocast output vs the float32 output, in eval mode with BN statistics of this batch.

    These untrained, minimal-depth models are conditioned very differently: deep chains of adder
    layers amplify a relative input perturbation about 1000x (measured: MobileNetV2 with adder
    pointwise layers moves by 1e-4 between float32 and float64, and by more than 100 % when its
    input is perturbed by bf16's relative rounding 2**-8), so no fixed tolerance fits all. The
    tolerance is ``max(FLOOR[dtype], 3 * s)`` with ``s`` that sensitivity of the float32 model at
    the precision's unit roundoff: autocast (bf16/fp16 convolutions and linears, the mnf layers
    in float32) may cost at most three times what rounding just the input costs. That the mnf
    layers themselves compute in float32 is checked exactly by the tests above and below.
    """
    model, x, _ = _build(name)
    _calibrate(model, x)
    with torch.no_grad():
        ref = model(x)
        tol = max(FLOOR[dtype], 3 * _sensitivity(model, x, ref, EPS[dtype]))
        with torch.autocast("cpu", dtype=dtype):
            out = model(x)
        assert torch.isfinite(out).all()
        err = _rel(out, ref)
        assert err <= tol, f"{name} {dtype}: relative error {err:.3f} > tolerance {tol:.3f}"


# ---------------------------------------------------------------- the layers on half inputs
def _layers():
    torch.manual_seed(0)
    layers = {
        "adder": Adder2d(4, 6, 3, stride=2, padding=1),
        "adder-depthwise-bias": Adder2d(6, 6, 3, padding=1, groups=6, bias=True),
        "adder-pointwise-sign": Adder2d(6, 4, 1, filter_grad="sign"),
        "wht-pointwise": WHTPointwise(6, 10, block_size=4, scale=True, expand="repeat"),
        "wht-pointwise-unfused": WHTPointwise(6, 5, 2, fused=False),
        "wht-spatial": WHTSpatial(6, 6, 5),
        "wht-spatial-unfused": WHTSpatial(6, 6, 5, threshold="smooth", fused=False),
    }
    with torch.no_grad():  # thresholds spread over the coefficients' range, so that some bite
        for m in layers.values():
            if not isinstance(m, Adder2d):
                t = m.threshold if isinstance(m, WHTPointwise) else m.thresh.threshold
                t.copy_(torch.rand(t.shape))
    return layers


LAYERS = _layers()
CIN = {"adder": 4}


def _input(name, dtype):
    c = CIN.get(name, 6)
    x32 = 2 * torch.randn(2, c, 6, 5, generator=torch.Generator().manual_seed(3))
    return x32, x32.to(dtype)


def _taps(m):
    if isinstance(m, Adder2d):
        return m.in_channels // m.groups * m.kernel_size ** 2
    return m.n if isinstance(m, WHTPointwise) else math.prod(m.padded)


@pytest.mark.parametrize("dtype", HALVES)
@pytest.mark.parametrize("name", LAYERS)
def test_layer_half_input_computes_in_float32(name, dtype):
    m = LAYERS[name]
    x32, xh = _input(name, dtype)
    xh.requires_grad_()
    xu = xh.detach().float().requires_grad_()       # the upcast input
    params = list(m.parameters())
    y, yu = m(xh), m(xu)
    assert y.dtype == torch.float32 and y.shape == yu.shape
    torch.testing.assert_close(y, yu, rtol=0, atol=0)
    # and the float32 layer on the unrounded input, up to the input's rounding
    bound = 2 * _taps(m) * EPS[dtype] * x32.abs().max().item()
    assert (y - m(x32)).abs().max().item() <= bound
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(4))
    gx, *gp = torch.autograd.grad(y, [xh, *params], g)
    gxu, *gpu = torch.autograd.grad(yu, [xu, *params], g)
    assert gx.dtype == dtype
    torch.testing.assert_close(gx, gxu.to(dtype), rtol=0, atol=0)
    for a, b in zip(gp, gpu):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with torch.no_grad():
        want32 = m(x32)
        with torch.autocast("cpu", dtype=dtype):    # autocast active: the same results
            torch.testing.assert_close(m(xh), yu.detach(), rtol=0, atol=0)
            torch.testing.assert_close(m(x32), want32, rtol=0, atol=0)


@pytest.mark.parametrize("name", LAYERS)
def test_layer_float64_still_float64(name):
    x32, _ = _input(name, torch.float32)
    x = x32.double().requires_grad_()
    y = copy.deepcopy(LAYERS[name]).double()(x)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == torch.float64


@pytest.mark.parametrize("dtype", HALVES)
def test_half_parameters(dtype):
    """A layer converted to half precision (``.to(dtype)``) computes in float32 as well."""
    torch.manual_seed(0)
    for m, shape in ((Adder2d(3, 4, 3, padding=1), (2, 3, 4, 4)), (WHTPointwise(3, 4), (2, 3, 4, 4)),
                     (WHTSpatial(3, 4, 4), (2, 3, 4, 4)), (Threshold(8, scale=True), (2, 8))):
        m = m.to(dtype)
        x = torch.randn(shape).to(dtype).requires_grad_()
        y = m(x)
        assert y.dtype == torch.float32
        y.sum().backward()
        assert x.grad.dtype == dtype
        assert all(p.grad is not None and p.grad.dtype == dtype for p in m.parameters())


def test_unsupported_dtypes_still_raise():
    w = torch.zeros(1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"got dtypes torch.int64 \(input\) and torch.float32 \(weight\), "
                                         r"expected both float32 or both float64"):
        adder2d(torch.zeros(1, 1, 3, 3, dtype=torch.int64), w)
    with pytest.raises(ValueError, match=r"torch.bfloat16 \(input\) and torch.float64 \(weight\)"):
        adder2d(torch.zeros(1, 1, 3, 3, dtype=torch.bfloat16), w.double())
    with pytest.raises(ValueError, match=r"torch.float64 \(input\) and torch.float32 \(weight\)"):
        adder2d(torch.zeros(1, 1, 3, 3, dtype=torch.float64), w)
    with pytest.raises(ValueError, match=r"WHTPointwise expects a float32 or float64 .*got torch.int32"):
        WHTPointwise(4, 4)(torch.zeros(1, 4, 2, 2, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"WHTSpatial expects a float32 or float64 input .*got torch.uint8"):
        WHTSpatial(4, 2, 2)(torch.zeros(1, 4, 2, 2, dtype=torch.uint8))
