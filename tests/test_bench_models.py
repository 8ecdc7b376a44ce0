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


def test_step_rates_ratios_within_rounds():
    """Quiet and loaded rates, loaded/quiet and the ratio to the baseline, each a median of
    per-round ratios; the baseline's own ratio is exactly 1."""
    from mnf.bench.models import step_rates
    rows = step_rates(["vanilla", "last_wht"], batch=4, rounds=2, steps=1, load=True, baseline="vanilla")
    assert set(rows) == {"vanilla", "last_wht"}
    for row in rows.values():
        assert set(row) == {"quiet", "loaded", "ratio", "vs_baseline"}
        assert row["quiet"] > 0 and row["loaded"] > 0 and row["ratio"] > 0
    assert rows["vanilla"]["vs_baseline"] == 1.0
    with pytest.raises(ValueError, match="baseline 'resnet20' is not one of the variants"):
        step_rates(["vanilla"], batch=4, rounds=1, steps=1, baseline="resnet20")
