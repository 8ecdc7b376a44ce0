"""Figures 1-3: MobileNetV2's inverted residual block (plain and adder) and ResNet-20's adder block."""
from __future__ import annotations

from typing import Sequence

from matplotlib.figure import Figure
from torch import nn

from mnf.diagrams.canvas import SMALL, Canvas, Step, column, layer_steps, shape_text
from mnf.diagrams.layers import out_shape
from mnf.plots import COLUMN_WIDTH


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
    c = Canvas()
    w = 2.55
    for x, first, title in ((1.6, False, "stride 1: shortcut"), (5.0, True, "stride 2: no shortcut")):
        block, x_shape, shapes = _mobilenet_block(model, 3, first, 224)
        steps = layer_steps(list(block.body), shapes, bottleneck=True)
        column(c, x, w, title, x_shape, steps, "identity" if block.shortcut is not None else None)
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
    c = Canvas()
    w = 2.55
    column(c, 1.6, w, "convolutional MobileNetV2", x_shape,
           layer_steps(list(block.body), shapes, bottleneck=True), "identity")
    column(c, 5.0, w, "adder MobileNetV2", x_shape,
           layer_steps(list(twin.body), twin_shapes, compare=list(block.body), bottleneck=True), "identity")
    c.legend(["conv", "adder", "other"], c.bottom - 0.15, ncol=3)
    c.text(COLUMN_WIDTH / 2, c.bottom - 0.05,
           "CIFAR layout: where a stride-1 block changes the channels, the shortcut is a 1×1 layer + BN\n"
           "(a 1×1 adder in the adder network).", size=SMALL, ha="center", va="top")
    c.bottom -= 0.45
    return c.done()



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
    c = Canvas()
    w = 2.7
    for x_pos, kind, title in ((1.6, "adder", "adder ResNet-20 block"),
                               (5.0, "separable_adder", "depthwise-separable adder block")):
        model = resnet20(conv3x3=kind)
        block = model.stages[4]                     # stage 2, second block: 32 → 32, stride 1
        x_shape, _ = _trace([model.stem, *model.stages], (3, 32, 32), block)
        chain = _resnet_chain(block)
        shapes = {id(chain[-1]): x_shape}
        steps = layer_steps(chain, shapes)
        column(c, x_pos, w, title, x_shape, steps, "identity" if isinstance(block.shortcut, nn.Identity) else "1×1",
               after=[Step("ReLU", "other", h=0.26), Step(shape_text(x_shape), "tensor")])
    c.legend(["adder", "other"], c.bottom - 0.15)
    return c.done()

