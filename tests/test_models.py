"""Model families: exact parameter counts of the published layouts, shapes, policies, errors."""
import importlib.util

import pytest
import torch

from mnf.models import build, mobilenet_v2, resnet20
from mnf.models.mobilenet_v2 import make_divisible

HAS_ADDER = importlib.util.find_spec("mnf.layers.adder") is not None
HAS_WHT = importlib.util.find_spec("mnf.layers.wht") is not None
needs_adder = pytest.mark.skipif(not HAS_ADDER, reason="mnf.layers.adder not written yet")
needs_wht = pytest.mark.skipif(not HAS_WHT, reason="mnf.layers.wht not written yet")
TINY = dict(width=0.25, blocks=(1, 1, 1, 1, 1, 1, 1))


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("kwargs, expected", [
    (dict(layout="imagenet", num_classes=10), 2_236_682),    # seed 000 Table 4.2 (torchvision)
    (dict(layout="cifar", num_classes=10), 2_296_922),       # seed 002 Table 4.2
    (dict(layout="cifar", num_classes=100), 2_412_212),
])
def test_mobilenet_v2_parameter_counts(kwargs, expected):
    assert count(mobilenet_v2(**kwargs)) == expected


@pytest.mark.parametrize("num_classes, expected", [(10, 272_484), (100, 278_424)])  # seed 002 Table 3.2
def test_resnet20_parameter_counts(num_classes, expected):
    assert count(resnet20(num_classes)) == expected


@needs_adder
@pytest.mark.parametrize("num_classes, expected", [(10, 272_484), (100, 278_424)])
def test_adder_resnet20_has_the_same_count(num_classes, expected):
    assert count(resnet20(num_classes, layer="adder")) == expected


@needs_adder
@pytest.mark.parametrize("num_classes, thesis, all_separable", [(10, 61_732, 41_780), (100, 67_672, 47_720)])
def test_dw_adder_resnet20_counts(num_classes, thesis, all_separable):
    assert count(resnet20(num_classes, layer="dw_adder")) == thesis  # seed 002 Table 4.1
    assert count(resnet20(num_classes, layer="dw_adder", separable_transitions=True)) == all_separable


@needs_adder
def test_adder_mobilenet_keeps_the_count():
    assert count(mobilenet_v2("cifar", pointwise="adder", depthwise="adder")) == 2_296_922


def test_mobilenet_v2_last_wht_count_without_the_layer():
    """Seed 000's 1,814,922 = the ImageNet layout minus the 320→1280 conv + BN, classifier on 320."""
    full = mobilenet_v2("imagenet")
    dropped = 320 * 1280 + 2 * 1280 + (1280 - 320) * 10
    assert count(full) - dropped == 1_814_922


@needs_wht
def test_mobilenet_v2_last_wht_count():
    from mnf.layers.wht import WHTPointwise
    model = mobilenet_v2("imagenet", last="wht")
    assert count(model) == 1_814_922 + count(WHTPointwise(320, 320))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("layout, size", [("cifar", 32), ("imagenet", 64)])
def test_mobilenet_v2_shapes_and_strides(layout, size):
    model = mobilenet_v2(layout, num_classes=7, **TINY).eval()
    assert model(torch.randn(2, 3, size, size)).shape == (2, 7)
    feats = model.features(torch.randn(1, 3, 32, 32))
    assert feats.shape[-1] == (4 if layout == "cifar" else 1)  # total stride 8 vs 32


def test_cifar_layout_has_expansion_and_conv_shortcuts():
    model = mobilenet_v2("cifar")
    first, second = model.features[3], model.features[4]
    assert len(first.body) == 8 and isinstance(first.shortcut, torch.nn.Sequential)  # t=1, 32→16
    assert second.body[3].stride == (1, 1)                                           # 24-stage stride 1
    imagenet = mobilenet_v2("imagenet")
    assert len(imagenet.features[3].body) == 5 and imagenet.features[3].shortcut is None


def test_width_and_blocks():
    assert make_divisible(32 * 0.25) == 8 and make_divisible(24 * 0.5) == 16
    small, big = mobilenet_v2(width=0.5), mobilenet_v2()
    assert count(small) < count(big)
    assert len(mobilenet_v2(**TINY).features) == 3 + 7 + 3
    assert len(resnet20(blocks=1).stages) == 3


def test_build_registry_and_arch_roundtrip():
    model = build("mobilenet_v2", width=0.5, num_classes=100)
    again = build(model.arch["name"], **model.arch["kwargs"])
    assert again.arch == model.arch and count(again) == count(model)
    assert build("resnet20").arch == {"name": "resnet20", "kwargs": dict(num_classes=10, layer="conv", blocks=3,
                                                                          separable_transitions=False)}


@pytest.mark.parametrize("call, words", [
    (lambda: build("vgg"), ["'mobilenet_v2'", "'resnet20'"]),
    (lambda: mobilenet_v2(pointwise="fft"), ["'conv'", "'wht'", "'adder'"]),
    (lambda: mobilenet_v2(depthwise="wht"), ["'wht2d'"]),
    (lambda: mobilenet_v2(last="adder"), ["'conv'", "'wht'"]),
    (lambda: mobilenet_v2(layout="tiny"), ["'imagenet'", "'cifar'"]),
    (lambda: resnet20(layer="wht"), ["'dw_adder'"]),
    (lambda: mobilenet_v2(blocks=(1, 2)), ["7"]),
])
def test_bad_names_list_the_valid_ones(call, words):
    with pytest.raises(ValueError) as info:
        call()
    assert all(w in str(info.value) for w in words)


@needs_adder
@pytest.mark.parametrize("kwargs", [dict(pointwise="adder"), dict(depthwise="adder")])
def test_adder_policies_run(kwargs):
    from mnf.layers.adder import Adder2d
    model = mobilenet_v2(**TINY, **kwargs)
    assert any(isinstance(m, Adder2d) for m in model.modules())
    model(torch.randn(2, 3, 16, 16)).sum().backward()


@needs_wht
@pytest.mark.parametrize("kwargs", [dict(pointwise="wht"), dict(depthwise="wht2d"), dict(last="wht")])
def test_wht_policies_run(kwargs):
    model = mobilenet_v2(**TINY, **kwargs)
    names = {type(m).__name__ for m in model.modules()}
    assert names & {"WHTPointwise", "WHTSpatial"}
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    out.sum().backward()
