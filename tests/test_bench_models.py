"""mnf.bench.models: the step runs, roles cover every layer, the profile adds up."""
import pytest
from torch import nn

from mnf.bench.models import VARIANTS, make_step, profile, roles
from mnf.models import build


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_step_runs_and_learns(variant):
    step = make_step(variant, batch=4, channels_last=True)
    losses = [step() for _ in range(8)]
    assert all(loss == loss for loss in losses)  # no NaN
    assert min(losses[-3:]) < losses[0]  # a fixed batch: SGD lowers its loss


@pytest.mark.parametrize("variant", [v for v, (name, _) in VARIANTS.items() if name == "mobilenet_v2"])
def test_roles_cover_every_layer(variant):
    name, kwargs = VARIANTS[variant]
    model = build(name, **kwargs)
    role_of = roles(model)
    leaves = [m for m in model.modules() if next(m.children(), None) is None
              and not isinstance(m, (nn.Identity, nn.Dropout, nn.AdaptiveAvgPool2d))]
    # every leaf layer is a role or inside one (wht2d at stride 2 is a Sequential with its pooling)
    covered = {id(sub) for m in role_of for sub in m.modules()}
    assert all(id(m) in covered for m in leaves)
    assert {"stem", "depthwise", "projection", "last", "classifier"} <= set(role_of.values())


def test_profile_adds_up():
    prof = profile("vanilla", batch=4, steps=2)
    step, other = prof.pop("step")["total"], prof.pop("other")["total"]
    inside = sum(t["forward"] + t["backward"] for t in prof.values())
    assert all(t["forward"] > 0 and t["backward"] > 0 for t in prof.values())
    assert 0 < inside < step and other > 0  # the probes' intervals lie within the step


def test_profile_refuses_resnet():
    with pytest.raises(ValueError, match="not a MobileNetV2 variant"):
        profile("resnet20", batch=2, steps=1)
