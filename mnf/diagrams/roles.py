"""Figure 5: which layer every model variant puts in each role, and the list of variants."""
from __future__ import annotations

from matplotlib.figure import Figure
from torch import nn

from mnf.diagrams.canvas import FONT, SMALL, Canvas
from mnf.diagrams.layers import describe, kind_of
from mnf.plots import COLUMN_WIDTH


def variants() -> list[tuple[str, dict]]:
    """Every layer option of the package as ``(model name, keyword arguments)``: the plain model
    of each family, then one variant per non-default value of each role keyword of
    ``mnf.models.mobilenet_v2`` (``pointwise``, ``depthwise``, ``last``) and of
    ``mnf.models.resnet20`` (``conv3x3``), as ``mnf.models.policy.ROLES`` lists them;
    ``tests/test_diagrams.py`` checks that every value is there.  Keywords combine freely (the adder
    MobileNetV2 of Urso (2022) is ``pointwise="adder", depthwise="adder"``)."""
    from mnf.models.policy import ROLES
    out = []
    for name in ("mobilenet_v2", "resnet20"):
        out.append((name, {}))
        for role, values in ROLES[name].items():
            out += [(name, {role: v}) for v in values if v != "conv"]
    return out


def _mobilenet_roles(model: nn.Module) -> dict[str, nn.Module]:
    from mnf.models.mobilenet_v2 import InvertedResidual
    blocks = [m for m in model.features if isinstance(m, InvertedResidual)]
    with_shortcut = next(b for b in blocks if isinstance(b.shortcut, nn.Sequential))
    body = list(blocks[-1].body)
    weighted = [m for m in body if kind_of(m) != "other"]
    last = model.features[-3] if isinstance(model.features[-1], (nn.ReLU, nn.ReLU6)) else model.features[-1]
    return {"stem\n3×3": model.features[0], "expansion\n1×1": weighted[0], "depthwise\n3×3": weighted[1],
            "projection\n1×1": weighted[2], "shortcut\n1×1 *": with_shortcut.shortcut[0], "last\n1×1": last,
            "classifier": model.classifier}


def _resnet_roles(model: nn.Module) -> dict[str, nn.Module]:
    inner = next(b for b in model.stages if isinstance(b.shortcut, nn.Identity))
    transition = next(b for b in model.stages if not isinstance(b.shortcut, nn.Identity))
    return {"stem\n3×3": model.stem[0], "3×3 layers": inner.f1, "down-\nsampling 3×3": transition.f1,
            "shortcut\n1×1": transition.shortcut[0], "classifier": model.fc}


def _role_label(module: nn.Module) -> str:
    text = describe(module).replace("+ 1×1 ", "+ pw ")     # the pointwise half of a separable pair
    return (text.replace(" depthwise ", " dw ").replace("depthwise ", "dw ").replace(" + ", " +\n")
            .replace("3×3 ", "").replace("1×1 ", ""))


def variant_roles() -> Figure:
    """A grid: one row per variant of :func:`variants`, one column per layer role, each cell the
    layer the variant builds in that role (read from a small model of each variant), coloured by
    kind; a bold frame marks a layer that differs from the plain model."""
    from mnf.models import build
    c = Canvas()
    label_w, y = 1.75, 0.0
    for family, roles_of, kwargs in (("MobileNetV2", _mobilenet_roles, dict(layout="cifar", blocks=(1,) * 7)),
                                     ("ResNet-20", _resnet_roles, dict(blocks=1))):
        rows = [(name, kw) for name, kw in variants() if name == ("mobilenet_v2" if family == "MobileNetV2"
                                                                  else "resnet20")]
        plain = roles_of(build(rows[0][0], **kwargs))
        cols = list(plain)
        cw = (COLUMN_WIDTH - label_w - 0.05) / len(cols)
        c.text(0.05, y - 0.05, family, size=FONT, weight="bold", va="top")
        for j, col in enumerate(cols):
            c.text(label_w + (j + 0.5) * cw, y - 0.05, col, size=SMALL, ha="center", va="top")
        y -= 0.5
        for name, kw in rows:
            roles = roles_of(build(name, **kwargs, **kw))
            label = "plain" if not kw else ", ".join(f"{k}={v!r}" for k, v in kw.items())
            c.text(0.05, y - 0.19, label, size=SMALL, va="center", family="monospace")
            for j, col in enumerate(cols):
                m = roles[col]
                c.box(label_w + (j + 0.5) * cw, y, _role_label(m), w=cw - 0.06, h=0.38, kind=kind_of(m),
                      size=SMALL, bold=kind_of(m) != kind_of(plain[col]))
            y -= 0.43
        y -= 0.15
    c.text(0.05, y, "* CIFAR layout only: a stride-1 block that changes the channels.   "
           "dw = depthwise, pw = pointwise.\n"
           "Bold frame: differs from the plain model.  Role keywords combine, e.g. the adder MobileNetV2\n"
           "of Urso (2022) is pointwise='adder', depthwise='adder'.", size=SMALL, va="top", linespacing=1.4)
    c.bottom = y - 0.6
    c.legend(["conv", "adder", "wht"], c.bottom - 0.05, ncol=3)
    return c.done()

