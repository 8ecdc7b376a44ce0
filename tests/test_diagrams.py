"""mnf.diagrams: every diagram is a Figure one column wide; the variant grid lists every variant."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mnf import diagrams  # noqa: E402
from mnf.models import build, mobilenet_v2, resnet20  # noqa: E402
from mnf.models.policy import DEPTHWISE, LAST, POINTWISE  # noqa: E402
from mnf.models.resnet import CONV3X3  # noqa: E402
from mnf.plots import COLUMN_WIDTH  # noqa: E402

DIAGRAMS = ["inverted_residual", "adder_inverted_residual", "ds_adder_resnet_block", "wht_layer_flow",
            "variant_roles"]


def texts(fig: Figure) -> str:
    return "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)


@pytest.mark.parametrize("name", DIAGRAMS)
def test_each_diagram_is_a_figure_one_column_wide(name):
    fig = getattr(diagrams, name)()
    try:
        assert isinstance(fig, Figure)
        width, height = fig.get_size_inches()
        assert 0 < width <= COLUMN_WIDTH and 0 < height
        fig.canvas.draw()                     # renders (mathtext included) without error
        # nothing drawn outside the figure: every text lies within the canvas
        box = fig.bbox
        for t in fig.axes[0].texts:
            extent = t.get_window_extent()
            assert extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1, t.get_text()
            assert extent.y0 >= box.y0 - 1 and extent.y1 <= box.y1 + 1, t.get_text()
    finally:
        plt.close(fig)


def test_variants_cover_every_option_of_the_policies():
    found = diagrams.variants()
    assert {name for name, _ in found} == {"mobilenet_v2", "resnet20"}   # the classifier families with roles
    mobilenet = [kw for name, kw in found if name == "mobilenet_v2"]
    resnet = [kw for name, kw in found if name == "resnet20"]
    assert {} in mobilenet and {} in resnet
    for role, values in (("pointwise", POINTWISE), ("depthwise", DEPTHWISE), ("last", LAST)):
        assert {v for kw in mobilenet for k, v in kw.items() if k == role} | {"conv"} == set(values)
    assert {kw["conv3x3"] for kw in resnet if kw} | {"conv"} == set(CONV3X3)
    for name, kw in found:                    # every listed variant builds
        build(name, **kw, **({"blocks": (1,) * 7} if name == "mobilenet_v2" else {"blocks": 1}))


def test_variant_grid_lists_every_variant():
    fig = diagrams.variant_roles()
    try:
        shown = texts(fig)
        for name, kw in diagrams.variants():
            label = "plain" if not kw else ", ".join(f"{k}={v!r}" for k, v in kw.items())
            assert label in shown
        labels = [t.get_text() for t in fig.axes[0].texts]
        assert labels.count("plain") == 2                      # one plain row per model family
        for family in ("MobileNetV2", "ResNet-20"):
            assert family in shown
    finally:
        plt.close(fig)


def test_block_diagrams_show_the_layers_the_models_build():
    shown = texts(diagrams.adder_inverted_residual())
    assert "1×1 adder" in shown and "3×3 depthwise adder" in shown and "3×3 depthwise conv" in shown
    assert "linear bottleneck" in shown
    shown = texts(diagrams.ds_adder_resnet_block())
    assert shown.count("3×3 depthwise adder") == 2 and shown.count("1×1 adder") == 2
    shown = texts(diagrams.wht_layer_flow())
    layer = mobilenet_v2(layout="imagenet", last="wht").features[-1]
    assert f"{layer.in_channels} → {layer.n}" in shown and f"{sum(p.numel() for p in layer.parameters()):,}" in shown
    plt.close("all")


@pytest.mark.parametrize("make", [lambda: mobilenet_v2(layout="imagenet", width=0.5),
                                  lambda: mobilenet_v2(layout="cifar", width=0.25, pointwise="wht"),
                                  lambda: resnet20(conv3x3="separable_adder", blocks=1)])
def test_out_shape_matches_a_forward_pass(make):
    model = make().eval()
    layers = list(model.features) if hasattr(model, "features") else [model.stem, *model.stages]
    shape = (3, 32, 32)
    x = torch.zeros(1, *shape)
    with torch.no_grad():
        for layer in layers:
            x = layer(x)
            shape = diagrams.out_shape(layer, shape)
            assert shape == tuple(x.shape[1:]), layer
