"""Drawing: a canvas in inches, boxes, arrows, vertical flows of layers and residual blocks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch, Patch
from torch import nn

from mnf.diagrams.layers import channels, describe, kind_of, params
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


@dataclass
class Canvas:
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
class Step:
    """One element of a vertical flow: a layer box, an attached grey strip, or a tensor shape."""

    text: str
    kind: str = "other"          # box colour; "tensor" for a shape label without a box
    h: float = 0.46
    attached: bool = False       # drawn right under the previous box, no arrow
    dashed: bool = False
    bold: bool = False


def flow(c: Canvas, x: float, y: float, steps: Sequence[Step], w: float) -> list[tuple[float, float]]:
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


def shape_text(shape: Sequence[int]) -> str:
    """``(C, H, W)`` as the tables of the theses write it: ``H×W×C``."""
    c, h, w = shape
    return f"{h}×{w}×{c}"


def layer_steps(modules: Sequence[nn.Module], shapes: dict[int, tuple], *, with_params: bool = True,
                 compare: Sequence[nn.Module] | None = None, bottleneck: bool = False) -> list[Step]:
    """Steps for a chain of layers: a box per weighted layer, BN and activations merged into a
    grey strip under it, the output shape after each strip.  ``compare``: the same chain in the
    convolutional model; layers whose kind differs from it get a bold frame.  ``bottleneck``:
    say so when the chain ends in a BN without activation (MobileNetV2's linear bottleneck)."""
    steps: list[Step] = []
    i = 0
    while i < len(modules):
        m = modules[i]
        label = describe(m)
        extra = channels(m)
        if with_params and params(m):
            extra += f"  ({params(m):,} weights)"
        bold = compare is not None and kind_of(compare[i]) != kind_of(m)
        steps.append(Step(f"{label}\n{extra}".strip(), kind_of(m), bold=bold))
        j = i + 1
        strip = []
        while j < len(modules) and kind_of(modules[j]) == "other":
            strip.append(describe(modules[j]))
            j += 1
        if strip:
            linear = bottleneck and strip == ["BN"] and j == len(modules)
            text = "BN  (no activation: linear bottleneck)" if linear else ", ".join(strip)
            steps.append(Step(text, "other", h=0.26, attached=True))
        if id(modules[j - 1]) in shapes:
            steps.append(Step(shape_text(shapes[id(modules[j - 1])]), "tensor"))
        i = j
    return steps



def _shortcut(c: Canvas, x: float, w: float, y_from: float, y_plus: float, label: str) -> None:
    """A shortcut from the input (at ``y_from``) round the right of the column into ``+``."""
    right = x + w / 2 + 0.2
    c.line([x, right], [y_from, y_from])
    c.line([right, right], [y_from, y_plus])
    c.arrow(right, y_plus, x + 0.11, y_plus)
    c.ax.text(right + 0.06, (y_from + y_plus) / 2, label, ha="left", va="center", fontsize=SMALL,
              rotation=90, color="#444444")


def column(c: Canvas, x: float, w: float, title: str, x_shape: tuple, steps: list[Step],
           shortcut: str | None, after: list[Step] = ()) -> None:
    """A residual block column: title, input shape, ``steps``, optional ``+`` with a shortcut."""
    c.text(x, -0.05, title, ha="center", va="top", size=FONT, weight="bold")
    spans = flow(c, x, -0.42, [Step(shape_text(x_shape), "tensor"), *steps], w)
    y = spans[-1][1]
    if shortcut is not None:
        y_plus = y - 0.22 - 0.11
        c.arrow(x, y, x, y_plus + 0.11)
        c.plus(x, y_plus)
        _shortcut(c, x, w, spans[0][1] + 0.0, y_plus, shortcut)
        y = y_plus - 0.11
    if after:
        c.arrow(x, y, x, y - 0.22)
        flow(c, x, y - 0.22, list(after), w)

