"""Figure 4: the end of MobileNetV2 with the FWHT layer in place of the last 1×1 convolution."""
from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from mnf.diagrams.canvas import SMALL, Canvas, Step, flow
from mnf.diagrams.layers import channels, describe, params


def wht_layer_flow() -> Figure:
    """The end of MobileNetV2 (ImageNet layout, 10 classes): left the original last 1×1
    convolution, right the WHT layer of Gözler & Işık (2022, Fig. 3.7) in its place: zero-pad the
    channels to a power of two, transform, soft-threshold every coefficient but the first,
    transform back, keep the input's channels; the classifier then reads 320 features."""
    from mnf.models import mobilenet_v2
    plain = mobilenet_v2(layout="imagenet")
    wht_model = mobilenet_v2(layout="imagenet", last="wht")
    conv, bn, act = plain.features[-3], plain.features[-2], plain.features[-1]
    layer = wht_model.features[-1]
    cin, n = layer.in_channels, layer.n
    c = Canvas()
    # left: the original head
    xl, wl = 1.45, 2.5
    c.text(xl, -0.05, "MobileNetV2", ha="center", va="top", weight="bold")
    flow(c, xl, -0.42, [
        Step(f"H×W×{conv.in_channels}   (last block)", "tensor"),
        Step(f"{describe(conv)}\n{channels(conv)}  ({params(conv):,} weights)", "conv"),
        Step(f"{describe(bn)}, {describe(act)}", h=0.26, attached=True),
        Step(f"H×W×{conv.out_channels}", "tensor"),
        Step("global average pool", h=0.3),
        Step(f"linear {channels(plain.classifier)}\n({params(plain.classifier):,} weights)", "conv"),
    ], wl)
    # right: the WHT layer
    xr, wr = 4.85, 3.1
    c.text(xr, -0.05, "with the FWHT layer", ha="center", va="top", weight="bold")
    thresholds = params(layer)
    steps = [
        Step(f"H×W×{cin}   (last block)", "tensor"),
        Step(f"zero-pad the channels {cin} → {n}", "wht", h=0.3),
        Step(f"WHT of length {n}\n(additions and subtractions only)", "wht"),
        Step(r"soft threshold  $S_T(z)=\mathrm{sign}(z)\,(|z|-T)_+$" + "\n"
              + ("first (DC) coefficient passes unchanged" if layer.keep_dc else "on every coefficient"), "wht"),
        Step(f"inverse WHT, ÷{n}  (a shift)", "wht", h=0.3),
        Step(f"keep the first {layer.out_channels} channels", "wht", h=0.3),
        Step(f"H×W×{layer.out_channels}", "tensor"),
        Step("global average pool", h=0.3),
        Step(f"linear {channels(wht_model.classifier)}\n({params(wht_model.classifier):,} weights)", "conv"),
    ]
    spans = flow(c, xr, -0.42, steps, wr)
    top, bottom = spans[1][0] + 0.08, spans[5][1] - 0.08
    c.ax.add_patch(FancyBboxPatch((xr - wr / 2 - 0.1, bottom), wr + 0.2, top - bottom,
                                  boxstyle="round,pad=0,rounding_size=0.08", facecolor="none",
                                  edgecolor="#2a7a2a", lw=1.0, linestyle="--"))
    c.ax.text(xr - wr / 2 - 0.17, (top + bottom) / 2, f"FWHT layer: {thresholds:,} trainable thresholds T",
              rotation=90, ha="right", va="center", fontsize=SMALL, color="#2a7a2a")
    c.legend(["conv", "wht", "other"], c.bottom - 0.15, ncol=3)
    return c.done()

