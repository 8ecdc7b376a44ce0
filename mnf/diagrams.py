"""Block diagrams of the book's networks: boxes and arrows drawn with matplotlib.

One function per diagram; each returns a ``matplotlib.figure.Figure`` at most
:data:`mnf.plots.COLUMN_WIDTH` inches wide, made with ``pyplot``, so in a notebook a cell shows it
with ``plt.show()`` (returning it as the cell's value as well would show it twice).
The layers, channel counts and parameter counts in the boxes are read from the modules that
``mnf.models`` builds, so a diagram follows the code rather than a hand-written description:

- :func:`inverted_residual` -- MobileNetV2's block: 1×1 expansion, 3×3 depthwise, linear 1×1
  projection, shortcut (stride 1 and stride 2 side by side);
- :func:`adder_inverted_residual` -- the same block with adder layers, as in Urso (2022);
- :func:`ds_adder_resnet_block` -- ResNet-20's adder block and its depthwise-separable version;
- :func:`wht_layer_flow` -- the end of MobileNetV2 with a WHT layer in place of the last 1×1
  convolution (Gözler & Işık 2022, Fig. 3.7): pad, transform, soft threshold, inverse transform;
- :func:`variant_roles` -- which layer every model variant puts in each role (from
  :func:`variants`, which enumerates the options of ``mnf.models.policy``).

Colours: blue layers multiply, orange (adder) and green (WHT) layers do not, grey boxes are
batch norm, activations and pooling (batch norm multiplies at inference, ``a·x + b``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch, Patch
from torch import nn

from mnf.plots import COLUMN_WIDTH

# kind: (face colour, legend text)
KINDS = {
    "conv": ("#c6dbef", "conv / linear: multiplies"),
    "adder": ("#fdd0a2", "adder: additions only"),
    "wht": ("#c7e9c0", "WHT: additions, shifts, thresholds"),
    "other": ("#e8e8e8", "BN, activation, pooling"),
}
FONT = 9          # box text
SMALL = 8         # shapes, notes, parameter counts (the book's minimum)


# --------------------------------------------------------------------------- naming modules

def kind_of(module: nn.Module) -> str:
    """``"conv"``, ``"adder"``, ``"wht"`` or ``"other"``: the colour a module gets."""
    name = type(module).__name__
    if name in ("Conv2d", "Linear"):
        return "conv"
    if name == "Adder2d":
        return "adder"
    if name.startswith("WHT"):
        return "wht"
    if isinstance(module, nn.Sequential):
        kinds = {kind_of(m) for m in module}
        return next((k for k in ("adder", "wht", "conv") if k in kinds), "other")
    return "other"


def _k(module: nn.Module) -> int:
    k = module.kernel_size
    return k if isinstance(k, int) else k[0]


def describe(module: nn.Module) -> str:
    """A short name for a layer: ``"3×3 depthwise conv"``, ``"1×1 adder"``, ``"1-D WHT"``, ..."""
    name = type(module).__name__
    if name in ("Conv2d", "Adder2d"):
        k, word = _k(module), "conv" if name == "Conv2d" else "adder"
        depthwise = module.groups > 1 and module.groups == module.in_channels
        return f"{k}×{k} {'depthwise ' if depthwise else ''}{word}"
    if name == "WHTPointwise":
        return "1-D WHT"
    if name == "WHTSpatial":
        return "2-D WHT"
    if name == "Linear":
        return "linear"
    if isinstance(module, nn.Sequential):
        parts = [describe(m) for m in module if kind_of(m) != "other"]
        return " + ".join(parts) if parts else "identity"
    if isinstance(module, nn.Identity):
        return "identity"
    return {"BatchNorm2d": "BN", "ReLU": "ReLU", "ReLU6": "ReLU6"}.get(name, name)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _channels(module: nn.Module) -> str:
    cin, cout = getattr(module, "in_channels", None), getattr(module, "out_channels", None)
    if cin is None and isinstance(module, nn.Linear):
        cin, cout = module.in_features, module.out_features
    return f"{cin} → {cout}" if cin is not None else ""


# --------------------------------------------------------------------------- drawing

@dataclass
class _Canvas:
    """Axes in inches, y pointing up, the top at y = 0 (content goes downwards)."""

    width: float = COLUMN_WIDTH
    fig: Figure = field(init=False)
    ax: plt.Axes = field(init=False)
    bottom: float = 0.0

    def __post_init__(self) -> None:
        self.fig = plt.figure(figsize=(self.width, 4.0))
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.ax.axis("off")

    def box(self, x: float, y: float, text: str, *, w: float, h: float, kind: str = "other",
            dashed: bool = False, size: float = FONT, bold: bool = False) -> tuple[float, float, float, float]:
        """A rounded box with its top edge centred at ``(x, y)``; returns ``(x, top, w, h)``."""
        face = KINDS[kind][0] if kind in KINDS else kind
        self.ax.add_patch(FancyBboxPatch((x - w / 2, y - h), w, h, boxstyle="round,pad=0,rounding_size=0.06",
                                         facecolor=face, edgecolor="#333333",
                                         linewidth=1.6 if bold else 0.8, linestyle="--" if dashed else "-"))
        self.ax.text(x, y - h / 2, text, ha="center", va="center", fontsize=size, linespacing=1.25)
        self.bottom = min(self.bottom, y - h)
        return x, y, w, h

    def arrow(self, x0: float, y0: float, x1: float, y1: float, text: str = "", side: float = 0.08) -> None:
        self.ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                         arrowprops=dict(arrowstyle="-|>", color="#333333", lw=0.9, shrinkA=0, shrinkB=0,
                                         mutation_scale=9))
        if text:
            self.ax.text(x0 + side, (y0 + y1) / 2, text, ha="left", va="center", fontsize=SMALL, color="#444444")
        self.bottom = min(self.bottom, y1)

    def line(self, xs: Sequence[float], ys: Sequence[float], **kw) -> None:
        self.ax.plot(xs, ys, color="#333333", lw=0.9, solid_capstyle="butt", **kw)
        self.bottom = min(self.bottom, *ys)

    def text(self, x: float, y: float, text: str, size: float = FONT, **kw) -> None:
        self.ax.text(x, y, text, fontsize=size, **kw)

    def plus(self, x: float, y: float, r: float = 0.11) -> None:
        """A summation node centred at ``(x, y)``."""
        self.ax.add_patch(Circle((x, y), r, facecolor="white", edgecolor="#333333", lw=0.9))
        self.ax.text(x, y, "+", ha="center", va="center", fontsize=FONT + 1)
        self.bottom = min(self.bottom, y - r)

    def legend(self, kinds: Sequence[str], y: float, ncol: int = 2) -> None:
        handles = [Patch(facecolor=KINDS[k][0], edgecolor="#333333", lw=0.8, label=KINDS[k][1]) for k in kinds]
        self.ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(self.width / 2, y),
                       bbox_transform=self.ax.transData, ncol=ncol, fontsize=SMALL, frameon=False,
                       handlelength=1.4, columnspacing=1.2)
        self.bottom = min(self.bottom, y - 0.25 * (-(-len(kinds) // ncol)) - 0.1)

    def done(self, top: float = 0.1) -> Figure:
        """Fit the figure's height to what was drawn and return it."""
        height = top - self.bottom + 0.1
        self.fig.set_size_inches(self.width, height)
        self.ax.set_xlim(0, self.width)
        self.ax.set_ylim(self.bottom - 0.1, top)
        return self.fig


@dataclass
class _Step:
    """One element of a vertical flow: a layer box, an attached grey strip, or a tensor shape."""

    text: str
    kind: str = "other"          # box colour; "tensor" for a shape label without a box
    h: float = 0.46
    attached: bool = False       # drawn right under the previous box, no arrow
    dashed: bool = False
    bold: bool = False


def _flow(c: _Canvas, x: float, y: float, steps: Sequence[_Step], w: float) -> list[tuple[float, float]]:
    """Draw ``steps`` top-down centred on ``x``; returns the (top, bottom) y of every step."""
    spans, gap = [], 0.22
    for i, s in enumerate(steps):
        if i and not s.attached:
            c.arrow(x, y, x, y - gap)
            y -= gap
        if s.kind == "tensor":
            c.ax.text(x, y - 0.11, s.text, ha="center", va="center", fontsize=SMALL, color="#444444",
                      style="italic")
            spans.append((y, y - 0.22))
            y -= 0.22
            c.bottom = min(c.bottom, y)
        else:
            c.box(x, y, s.text, w=w, h=s.h, kind=s.kind, dashed=s.dashed, bold=s.bold)
            spans.append((y, y - s.h))
            y -= s.h
    return spans


def _shape(shape: Sequence[int]) -> str:
    """``(C, H, W)`` as the tables of the theses write it: ``H×W×C``."""
    c, h, w = shape
    return f"{h}×{w}×{c}"


def _layer_steps(modules: Sequence[nn.Module], shapes: dict[int, tuple], *, with_params: bool = True,
                 compare: Sequence[nn.Module] | None = None, bottleneck: bool = False) -> list[_Step]:
    """Steps for a chain of layers: a box per weighted layer, BN and activations merged into a
    grey strip under it, the output shape after each strip.  ``compare``: the same chain in the
    convolutional model; layers whose kind differs from it get a bold frame.  ``bottleneck``:
    say so when the chain ends in a BN without activation (MobileNetV2's linear bottleneck)."""
    steps: list[_Step] = []
    i = 0
    while i < len(modules):
        m = modules[i]
        label = describe(m)
        extra = _channels(m)
        if with_params and _params(m):
            extra += f"  ({_params(m):,} weights)"
        bold = compare is not None and kind_of(compare[i]) != kind_of(m)
        steps.append(_Step(f"{label}\n{extra}".strip(), kind_of(m), bold=bold))
        j = i + 1
        strip = []
        while j < len(modules) and kind_of(modules[j]) == "other":
            strip.append(describe(modules[j]))
            j += 1
        if strip:
            linear = bottleneck and strip == ["BN"] and j == len(modules)
            text = "BN  (no activation: linear bottleneck)" if linear else ", ".join(strip)
            steps.append(_Step(text, "other", h=0.26, attached=True))
        if id(modules[j - 1]) in shapes:
            steps.append(_Step(_shape(shapes[id(modules[j - 1])]), "tensor"))
        i = j
    return steps


def out_shape(module: nn.Module, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """The ``(C, H, W)`` that ``module`` returns for an input of shape ``(C, H, W)``, from its
    attributes (no arithmetic on tensors): convolutions, adder and WHT layers, pooling with a
    kernel, containers (``nn.Sequential``, MobileNetV2 and ResNet blocks); anything else keeps the shape."""
    c, h, w = shape
    if isinstance(module, nn.Sequential):
        for m in module:
            shape = out_shape(m, shape)
        return shape
    if hasattr(module, "body"):                          # MobileNetV2's InvertedResidual
        return out_shape(module.body, shape)
    if hasattr(module, "f1") and hasattr(module, "f2"):  # ResNet's BasicBlock
        return out_shape(module.f2, out_shape(module.f1, shape))
    name = type(module).__name__
    if name in ("Conv2d", "Adder2d", "AvgPool2d", "MaxPool2d"):
        def pair(v):
            return (v, v) if isinstance(v, int) else tuple(v)
        (kh, kw), (sh, sw), (ph, pw) = pair(module.kernel_size), pair(module.stride), pair(module.padding)
        return (getattr(module, "out_channels", c), (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
    if name == "WHTPointwise":
        return module.out_channels, -(-h // module.stride), -(-w // module.stride)
    return shape


def _trace(layers: Sequence[nn.Module], shape: tuple[int, int, int], target: nn.Module
           ) -> tuple[tuple[int, int, int], dict[int, tuple]]:
    """Follow ``shape`` through ``layers`` (applied in order) to ``target``, one of them: its input
    shape and the output shape of each module of ``target.body`` (or of ``target``)."""
    for layer in layers:
        if layer is target:
            inner = list(getattr(layer, "body", [layer]))
            shapes, current = {}, shape
            for m in inner:
                current = out_shape(m, current)
                shapes[id(m)] = current
            return shape, shapes
        shape = out_shape(layer, shape)
    raise ValueError("_trace: the target module is not among the layers")


def _shortcut(c: _Canvas, x: float, w: float, y_from: float, y_plus: float, label: str) -> None:
    """A shortcut from the input (at ``y_from``) round the right of the column into ``+``."""
    right = x + w / 2 + 0.2
    c.line([x, right], [y_from, y_from])
    c.line([right, right], [y_from, y_plus])
    c.arrow(right, y_plus, x + 0.11, y_plus)
    c.ax.text(right + 0.06, (y_from + y_plus) / 2, label, ha="left", va="center", fontsize=SMALL,
              rotation=90, color="#444444")


def _block(c: _Canvas, x: float, w: float, title: str, x_shape: tuple, steps: list[_Step],
           shortcut: str | None, after: list[_Step] = ()) -> None:
    """A residual block column: title, input shape, ``steps``, optional ``+`` with a shortcut."""
    c.text(x, -0.05, title, ha="center", va="top", size=FONT, weight="bold")
    spans = _flow(c, x, -0.42, [_Step(_shape(x_shape), "tensor"), *steps], w)
    y = spans[-1][1]
    if shortcut is not None:
        y_plus = y - 0.22 - 0.11
        c.arrow(x, y, x, y_plus + 0.11)
        c.plus(x, y_plus)
        _shortcut(c, x, w, spans[0][1] + 0.0, y_plus, shortcut)
        y = y_plus - 0.11
    if after:
        c.arrow(x, y, x, y - 0.22)
        _flow(c, x, y - 0.22, list(after), w)


# --------------------------------------------------------------------------- 1, 2: MobileNetV2 blocks

def _mobilenet_block_modules(model: nn.Module, stage: int, first: bool) -> nn.Module:
    """The first (or else the second) block of stage ``stage`` (1-based) of a MobileNetV2."""
    from mnf.models.mobilenet_v2 import STAGES, InvertedResidual
    blocks = [m for m in model.features if isinstance(m, InvertedResidual)]
    depths = model.arch["kwargs"]["blocks"] or [n for *_, n, _ in STAGES]
    return blocks[sum(depths[: stage - 1]) + (0 if first else 1)]


def _mobilenet_block(model: nn.Module, stage: int, first: bool, size: int) -> tuple[nn.Module, tuple, dict]:
    """That block, its input shape and the output shapes of its layers for a ``size``² input."""
    block = _mobilenet_block_modules(model, stage, first)
    x_shape, shapes = _trace(list(model.features), (3, size, size), block)
    return block, x_shape, shapes


def inverted_residual() -> Figure:
    """MobileNetV2's inverted residual block (ImageNet layout, third stage of Table 3.1 at 224×224):
    left a stride-1 block with its identity shortcut, right the stride-2 block that starts the
    stage (no shortcut: the shape changes)."""
    from mnf.models import mobilenet_v2
    model = mobilenet_v2(layout="imagenet", num_classes=1000)
    c = _Canvas()
    w = 2.55
    for x, first, title in ((1.6, False, "stride 1: shortcut"), (5.0, True, "stride 2: no shortcut")):
        block, x_shape, shapes = _mobilenet_block(model, 3, first, 224)
        steps = _layer_steps(list(block.body), shapes, bottleneck=True)
        _block(c, x, w, title, x_shape, steps, "identity" if block.shortcut is not None else None)
    c.legend(["conv", "other"], c.bottom - 0.15)
    return c.done()


def adder_inverted_residual() -> Figure:
    """The CIFAR-layout inverted residual block of Urso (2022) (stage 3, second block, 32×32 input):
    left with convolutions, right with adder layers in the pointwise and depthwise roles.  Boxes
    with a bold frame are the layers the adder network replaces; batch norm stays."""
    from mnf.models import mobilenet_v2
    conv = mobilenet_v2(layout="cifar")
    adder = mobilenet_v2(layout="cifar", pointwise="adder", depthwise="adder")
    block, x_shape, shapes = _mobilenet_block(conv, 3, False, 32)
    twin, _, twin_shapes = _mobilenet_block(adder, 3, False, 32)     # same structure, other layers
    c = _Canvas()
    w = 2.55
    _block(c, 1.6, w, "convolutional MobileNetV2", x_shape,
           _layer_steps(list(block.body), shapes, bottleneck=True), "identity")
    _block(c, 5.0, w, "adder MobileNetV2", x_shape,
           _layer_steps(list(twin.body), twin_shapes, compare=list(block.body), bottleneck=True), "identity")
    c.legend(["conv", "adder", "other"], c.bottom - 0.15, ncol=3)
    c.text(COLUMN_WIDTH / 2, c.bottom - 0.05,
           "CIFAR layout: where a stride-1 block changes the channels, the shortcut is a 1×1 layer + BN\n"
           "(a 1×1 adder in the adder network).", size=SMALL, ha="center", va="top")
    c.bottom -= 0.45
    return c.done()


# --------------------------------------------------------------------------- 3: ResNet-20 blocks

def _resnet_chain(block: nn.Module) -> list[nn.Module]:
    """A BasicBlock's layers in the order its forward applies them, up to the sum."""
    def flat(m: nn.Module) -> list[nn.Module]:
        return list(m) if isinstance(m, nn.Sequential) else [m]
    return [*flat(block.f1), block.bn1, block.relu, *flat(block.f2), block.bn2]


def ds_adder_resnet_block() -> Figure:
    """A ResNet-20 basic block of the second stage (32 channels, 16×16 maps) with adder layers
    (left) and in the depthwise-separable adder version of Urso (2022, Fig. 4.1) (right): each
    3×3 adder becomes a 3×3 depthwise adder, BN, ReLU and a 1×1 pointwise adder."""
    from mnf.models import resnet20
    c = _Canvas()
    w = 2.7
    for x_pos, layer, title in ((1.6, "adder", "adder ResNet-20 block"),
                                (5.0, "dw_adder", "depthwise-separable adder block")):
        model = resnet20(layer=layer)
        block = model.stages[4]                     # stage 2, second block: 32 → 32, stride 1
        x_shape, _ = _trace([model.stem, *model.stages], (3, 32, 32), block)
        chain = _resnet_chain(block)
        shapes = {id(chain[-1]): x_shape}
        steps = _layer_steps(chain, shapes)
        _block(c, x_pos, w, title, x_shape, steps, "identity" if isinstance(block.shortcut, nn.Identity) else "1×1",
               after=[_Step("ReLU", "other", h=0.26), _Step(_shape(x_shape), "tensor")])
    c.legend(["adder", "other"], c.bottom - 0.15)
    return c.done()


# --------------------------------------------------------------------------- 4: WHT layer

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
    c = _Canvas()
    # left: the original head
    xl, wl = 1.45, 2.5
    c.text(xl, -0.05, "MobileNetV2", ha="center", va="top", weight="bold")
    _flow(c, xl, -0.42, [
        _Step(f"H×W×{conv.in_channels}   (last block)", "tensor"),
        _Step(f"{describe(conv)}\n{_channels(conv)}  ({_params(conv):,} weights)", "conv"),
        _Step(f"{describe(bn)}, {describe(act)}", h=0.26, attached=True),
        _Step(f"H×W×{conv.out_channels}", "tensor"),
        _Step("global average pool", h=0.3),
        _Step(f"linear {_channels(plain.classifier)}\n({_params(plain.classifier):,} weights)", "conv"),
    ], wl)
    # right: the WHT layer
    xr, wr = 4.85, 3.1
    c.text(xr, -0.05, "with the FWHT layer", ha="center", va="top", weight="bold")
    thresholds = _params(layer)
    steps = [
        _Step(f"H×W×{cin}   (last block)", "tensor"),
        _Step(f"zero-pad the channels {cin} → {n}", "wht", h=0.3),
        _Step(f"WHT of length {n}\n(additions and subtractions only)", "wht"),
        _Step(r"soft threshold  $S_T(z)=\mathrm{sign}(z)\,(|z|-T)_+$" + "\n"
              + ("first (DC) coefficient passes unchanged" if layer.keep_dc else "on every coefficient"), "wht"),
        _Step(f"inverse WHT, ÷{n}  (a shift)", "wht", h=0.3),
        _Step(f"keep the first {layer.out_channels} channels", "wht", h=0.3),
        _Step(f"H×W×{layer.out_channels}", "tensor"),
        _Step("global average pool", h=0.3),
        _Step(f"linear {_channels(wht_model.classifier)}\n({_params(wht_model.classifier):,} weights)", "conv"),
    ]
    spans = _flow(c, xr, -0.42, steps, wr)
    top, bottom = spans[1][0] + 0.08, spans[5][1] - 0.08
    c.ax.add_patch(FancyBboxPatch((xr - wr / 2 - 0.1, bottom), wr + 0.2, top - bottom,
                                  boxstyle="round,pad=0,rounding_size=0.08", facecolor="none",
                                  edgecolor="#2a7a2a", lw=1.0, linestyle="--"))
    c.ax.text(xr - wr / 2 - 0.17, (top + bottom) / 2, f"FWHT layer: {thresholds:,} trainable thresholds T",
              rotation=90, ha="right", va="center", fontsize=SMALL, color="#2a7a2a")
    c.legend(["conv", "wht", "other"], c.bottom - 0.15, ncol=3)
    return c.done()


# --------------------------------------------------------------------------- 5: variants and roles

def variants() -> list[tuple[str, dict]]:
    """Every layer option of the package as ``(model name, keyword arguments)``: the plain model
    of each family, then one variant per non-default value of each role keyword of
    ``mnf.models.mobilenet_v2`` (``mnf.models.policy.POINTWISE``, ``DEPTHWISE``, ``LAST``) and of
    ``mnf.models.resnet20`` (``mnf.models.resnet.LAYERS``); ``tests/test_diagrams.py`` checks
    that these are all the families in ``mnf.models.MODELS``.  Keywords combine freely (the adder
    MobileNetV2 of Urso (2022) is ``pointwise="adder", depthwise="adder"``)."""
    from mnf.models.policy import DEPTHWISE, LAST, POINTWISE
    from mnf.models.resnet import LAYERS
    options = {"mobilenet_v2": {"pointwise": POINTWISE, "depthwise": DEPTHWISE, "last": LAST},
               "resnet20": {"layer": LAYERS}}
    out = []
    for name, roles in options.items():
        out.append((name, {}))
        for role, values in roles.items():
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
    c = _Canvas()
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


__all__ = ["KINDS", "adder_inverted_residual", "describe", "ds_adder_resnet_block", "inverted_residual",
           "kind_of", "variant_roles", "variants", "wht_layer_flow"]
