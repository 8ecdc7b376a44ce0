"""Model families: exact parameter counts of the published layouts, shapes, policies, errors."""
import importlib.util
import inspect
import json

import pytest
import torch

from mnf.models import MODELS, build, dense_autoencoder, mf_autoencoder, mobilenet_v2, resnet20, small_cnn
from mnf.models.policy import KINDS, ROLES
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
    assert count(resnet20(num_classes=num_classes)) == expected


@needs_adder
@pytest.mark.parametrize("num_classes, expected", [(10, 272_484), (100, 278_424)])
def test_adder_resnet20_has_the_same_count(num_classes, expected):
    assert count(resnet20(num_classes=num_classes, conv3x3="adder")) == expected


@needs_adder
@pytest.mark.parametrize("num_classes, thesis, all_separable", [(10, 61_732, 41_780), (100, 67_672, 47_720)])
def test_separable_adder_resnet20_counts(num_classes, thesis, all_separable):
    assert count(resnet20(num_classes=num_classes, conv3x3="separable_adder")) == thesis  # seed 002 Table 4.1
    assert count(resnet20(num_classes=num_classes, conv3x3="separable_adder", separable_transitions=True)) \
        == all_separable


@needs_adder
def test_adder_mobilenet_keeps_the_count():
    assert count(mobilenet_v2(layout="cifar", pointwise="adder", depthwise="adder")) == 2_296_922


def test_mobilenet_v2_last_wht_count_without_the_layer():
    """Seed 000's 1,814,922 = the ImageNet layout minus the 320→1280 conv + BN, classifier on 320."""
    full = mobilenet_v2(layout="imagenet")
    dropped = 320 * 1280 + 2 * 1280 + (1280 - 320) * 10
    assert count(full) - dropped == 1_814_922


@needs_wht
def test_mobilenet_v2_last_wht_count():
    from mnf.layers.wht import WHTPointwise
    model = mobilenet_v2(layout="imagenet", last="wht")
    assert count(model) == 1_814_922 + count(WHTPointwise(320, 320))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("layout, size", [("cifar", 32), ("imagenet", 64)])
def test_mobilenet_v2_shapes_and_strides(layout, size):
    model = mobilenet_v2(layout=layout, num_classes=7, **TINY).eval()
    assert model(torch.randn(2, 3, size, size)).shape == (2, 7)
    feats = model.features(torch.randn(1, 3, 32, 32))
    assert feats.shape[-1] == (4 if layout == "cifar" else 1)  # total stride 8 vs 32


def test_cifar_layout_has_expansion_and_conv_shortcuts():
    model = mobilenet_v2(layout="cifar")
    first, second = model.features[3], model.features[4]
    assert len(first.body) == 8 and isinstance(first.shortcut, torch.nn.Sequential)  # t=1, 32→16
    assert second.body[3].stride == (1, 1)                                           # 24-stage stride 1
    imagenet = mobilenet_v2(layout="imagenet")
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
    assert build("resnet20").arch == {"name": "resnet20", "kwargs": dict(num_classes=10, conv3x3="conv", blocks=3,
                                                                          separable_transitions=False)}


@pytest.mark.parametrize("call, words", [
    (lambda: build("vgg"), ["'mobilenet_v2'", "'resnet20'"]),
    (lambda: mobilenet_v2(pointwise="fft"), ["'conv'", "'wht'", "'adder'"]),
    (lambda: mobilenet_v2(depthwise="wht"), ["'wht2d'"]),
    (lambda: mobilenet_v2(last="adder"), ["'conv'", "'wht'"]),
    (lambda: mobilenet_v2(layout="tiny"), ["'imagenet'", "'cifar'"]),
    (lambda: resnet20(conv3x3="wht"), ["conv3x3", "'separable_adder'"]),
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
    from mnf.layers import WHTPointwise, WHTSpatial
    model = mobilenet_v2(**TINY, **kwargs)
    assert any(isinstance(m, (WHTPointwise, WHTSpatial)) for m in model.modules())
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    out.sum().backward()


# ----------------------------------------------------------------- the vocabulary (issue 17)

SMALL = {"mobilenet_v2": TINY, "resnet20": dict(blocks=1), "small_cnn": dict(width=8),
         "conv_autoencoder": dict(channels=(4, 2, 4)), "mf_autoencoder": dict(channels=(4, 2, 4)),
         "dense_autoencoder": dict(features=12, hidden=(6, 3))}


def shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_builder_is_keyword_only_and_rebuilds_from_its_arch(name):
    assert all(p.kind is p.KEYWORD_ONLY for p in inspect.signature(MODELS[name]).parameters.values())
    torch.manual_seed(0)
    model = MODELS[name](**SMALL[name])
    assert model.arch["name"] == name and json.loads(json.dumps(model.arch)) == model.arch  # plain data
    again = build(**model.arch)
    assert again.arch == model.arch and shapes(again) == shapes(model)
    assert build(model.arch["name"], **model.arch["kwargs"]).arch == model.arch


def test_positional_arguments_are_refused():
    for call in (lambda: resnet20(10), lambda: mobilenet_v2("cifar"), lambda: small_cnn(8),
                 lambda: mf_autoencoder((4, 2, 4)), lambda: dense_autoencoder(12)):
        with pytest.raises(TypeError):
            call()


@pytest.mark.parametrize("name", [n for n in MODELS if ROLES[n]])
def test_role_keywords_take_kinds_of_the_one_set(name):
    accepted = inspect.signature(MODELS[name]).parameters
    for role, kinds in ROLES[name].items():
        assert role in accepted and set(kinds) <= set(KINDS)
        for kind in kinds:                                       # every kind builds in its role
            assert MODELS[name](**SMALL[name], **{role: kind}).arch["kwargs"][role] == kind
        with pytest.raises(ValueError, match=f"unknown {role} layer 'bogus'"):
            MODELS[name](**SMALL[name], **{role: "bogus"})
    assert set(ROLES) == set(MODELS)


def test_old_keywords_of_a_checkpoint_are_translated():
    model = build("resnet20", blocks=1, layer="dw_adder")
    assert model.arch["kwargs"]["conv3x3"] == "separable_adder" and "layer" not in model.arch["kwargs"]
    assert build("mf_autoencoder", channels=(4, 2, 4), layer="wht").arch["kwargs"]["conv3x3"] == "separable_adder_wht"
    with pytest.raises(ValueError, match="give conv3x3= only"):
        build("resnet20", layer="adder", conv3x3="adder")
    with pytest.raises(TypeError):
        resnet20(layer="adder")                                  # the builders take the new names only


def test_checkpoint_with_old_keywords_loads_and_resume_refuses_clearly(tmp_path):
    from mnf.train import fit, load_checkpoint
    torch.manual_seed(0)
    model = resnet20(blocks=1, conv3x3="separable_adder")
    old = {"name": "resnet20", "kwargs": dict(num_classes=10, layer="dw_adder", blocks=1, separable_transitions=False)}
    torch.save({"arch": old, "model": model.state_dict()}, tmp_path / "checkpoint.pt")
    loaded, _ = load_checkpoint(tmp_path / "checkpoint.pt")
    assert loaded.arch == model.arch
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    x, y = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8), torch.arange(20) % 10
    with pytest.raises(ValueError, match="was written for architecture .*'layer': 'dw_adder'"):
        fit(model, (x, y, x, y), epochs=1, batch_size=10, progress=False, out=tmp_path)


@needs_adder
def test_resume_of_a_model_built_with_a_role_keyword(tmp_path):
    from mnf.train import fit
    x, y = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)), \
        torch.arange(40) % 10
    data = (x, y, x[:10], y[:10])

    def make():
        torch.manual_seed(0)
        return resnet20(blocks=1, conv3x3="separable_adder")

    straight = make()
    fit(straight, data, epochs=2, batch_size=20, progress=False)
    resumed = make()
    fit(resumed, data, epochs=2, batch_size=20, progress=False, out=tmp_path, stop_after=1)
    resumed = make()
    fit(resumed, data, epochs=2, batch_size=20, progress=False, out=tmp_path)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_mobilenet_kinds_per_stage():
    """``pointwise`` / ``depthwise`` as one kind per stage: the listed stages get the listed kind."""
    from mnf.layers.wht import WHTPointwise
    from mnf.models import build
    kw = dict(layout="imagenet", width=0.25, stem_stride=2, blocks=(1, 1, 1, 1, 1, 1, 1))
    kinds = ["conv"] * 3 + ["wht"] * 4
    model = mobilenet_v2(**kw, pointwise=kinds)
    blocks = [m for m in model.features if hasattr(m, "body")]
    for block, kind in zip(blocks, kinds):
        assert any(isinstance(m, WHTPointwise) for m in block.modules()) == (kind == "wht")
    assert build(**model.arch).state_dict().keys() == model.state_dict().keys()
    with pytest.raises(ValueError, match="pointwise must be one kind or 7 kinds"):
        mobilenet_v2(**kw, pointwise=["wht"] * 3)
    with pytest.raises(ValueError, match="unknown pointwise layer 'fft'"):
        mobilenet_v2(**kw, pointwise=["conv"] * 6 + ["fft"])
