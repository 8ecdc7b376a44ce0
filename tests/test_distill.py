"""fit(teacher=..., distill=..., temperature=...) and mobilenet_v2(wht_options=...)."""
import pytest
import torch

from mnf.data import stratified_subset
from mnf.layers.wht import WHTPointwise
from mnf.models import build, mobilenet_v2
from mnf.train import fit

SMALL = dict(layout="imagenet", width=0.25, stem_stride=2, blocks=(1, 1, 1, 1, 1, 1, 1), dropout=0.0)


def _data(n=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (10 * n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(10).repeat(n)
    return x, y, x[:20], y[:20]


def _train(**kw):
    torch.manual_seed(0)
    model = mobilenet_v2(**SMALL)
    fit(model, _data(), epochs=1, batch_size=20, progress=False, **kw)
    return model


def test_distill_zero_is_plain_training_and_teacher_changes_the_result():
    torch.manual_seed(1)
    teacher = mobilenet_v2(**SMALL)
    plain, zero, half = _train(), _train(teacher=teacher, distill=0.0), _train(teacher=teacher, distill=0.5)
    for a, b in zip(plain.parameters(), zero.parameters()):
        torch.testing.assert_close(a, b)
    assert any(not torch.allclose(a, b) for a, b in zip(plain.parameters(), half.parameters()))
    assert all(p.grad is None for p in teacher.parameters()) and not teacher.training


@pytest.mark.parametrize("kw, error, message", [
    (dict(distill=1.5), ValueError, r"distill must be a finite number in \[0, 1\], got 1.5"),
    (dict(temperature=0), ValueError, "temperature"),
    (dict(teacher="vanilla"), TypeError, "teacher"),
])
def test_bad_distillation_arguments(kw, error, message):
    with pytest.raises(error, match=message):
        _train(**kw)


def test_teacher_with_other_classes_is_refused():
    with pytest.raises(ValueError, match="the teacher gives 12 logits, the model 10"):
        _train(teacher=mobilenet_v2(**SMALL, num_classes=12))


def test_teacher_is_not_the_model():
    model = mobilenet_v2(**SMALL)
    with pytest.raises(ValueError, match="teacher is the model being trained"):
        fit(model, _data(), epochs=1, batch_size=20, progress=False, teacher=model)


def test_wht_options_reach_every_block_layer_and_survive_build():
    model = mobilenet_v2(**SMALL, pointwise="wht", wht_options=dict(scale=True, threshold="smooth"))
    layers = [m for m in model.modules() if isinstance(m, WHTPointwise)]
    assert layers and all(m.scale is not None and m.kind == "smooth" for m in layers)
    plain = mobilenet_v2(**SMALL, pointwise="wht", wht_options=dict(scale=False))
    extra = sum(m.n for m in layers)   # one scale per coefficient
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in plain.parameters()) + extra
    again = build(**model.arch)
    assert again.state_dict().keys() == model.state_dict().keys()


@pytest.mark.parametrize("options, error, message", [
    (dict(sclae=True), ValueError, r"unknown wht_options \['sclae'\]"),
    ("scale", TypeError, "wht_options must be a dict"),
    (dict(scale="yes"), TypeError, "scale"),
])
def test_bad_wht_options(options, error, message):
    with pytest.raises(error, match=message):
        mobilenet_v2(**SMALL, pointwise="wht", wht_options=options)


def test_the_policy_gives_block_wht_layers_scales():
    layers = [m for m in mobilenet_v2(**SMALL, pointwise="wht").modules() if isinstance(m, WHTPointwise)]
    assert all(m.scale is not None for m in layers)
    last = mobilenet_v2(**SMALL, last="wht").features[-1]
    assert isinstance(last, WHTPointwise) and last.scale is None   # the last layer keeps its defaults
