"""What the diagrams say about a module: its kind (colour), a short name, its shapes."""
from __future__ import annotations

from torch import nn

from mnf.layers import Adder2d, WHTPointwise, WHTSpatial
from mnf.models.mobilenet_v2 import InvertedResidual
from mnf.models.resnet import BasicBlock
from mnf.models.small import ResidualBlock


def kind_of(module: nn.Module) -> str:
    """``"conv"``, ``"adder"``, ``"wht"`` or ``"other"``: the colour a module gets."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        return "conv"
    if isinstance(module, Adder2d):
        return "adder"
    if isinstance(module, (WHTPointwise, WHTSpatial)):
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
    if isinstance(module, (nn.Conv2d, Adder2d)):
        k, word = _k(module), "conv" if isinstance(module, nn.Conv2d) else "adder"
        depthwise = module.groups > 1 and module.groups == module.in_channels
        return f"{k}×{k} {'depthwise ' if depthwise else ''}{word}"
    if isinstance(module, WHTPointwise):
        return "1-D WHT"
    if isinstance(module, WHTSpatial):
        return "2-D WHT"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.Sequential):
        parts = [describe(m) for m in module if kind_of(m) != "other"]
        return " + ".join(parts) if parts else "identity"
    if isinstance(module, nn.Identity):
        return "identity"
    return "BN" if isinstance(module, nn.BatchNorm2d) else type(module).__name__


def params(module: nn.Module) -> int:
    """The number of weights of ``module``."""
    return sum(p.numel() for p in module.parameters())



def channels(module: nn.Module) -> str:
    """``"cin → cout"`` of a layer (``""`` for one without channel counts)."""
    cin, cout = getattr(module, "in_channels", None), getattr(module, "out_channels", None)
    if cin is None and isinstance(module, nn.Linear):
        cin, cout = module.in_features, module.out_features
    return f"{cin} → {cout}" if cin is not None else ""



def out_shape(module: nn.Module, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """The ``(C, H, W)`` that ``module`` returns for an input of shape ``(C, H, W)``, from its
    attributes (no arithmetic on tensors): convolutions, adder and WHT layers, pooling with a
    kernel, containers (``nn.Sequential``, MobileNetV2 and ResNet blocks); anything else keeps the shape."""
    c, h, w = shape
    if isinstance(module, nn.Sequential):
        for m in module:
            shape = out_shape(m, shape)
        return shape
    if isinstance(module, InvertedResidual):
        return out_shape(module.body, shape)
    if isinstance(module, (BasicBlock, ResidualBlock)):   # ResNet-20's and small_cnn's blocks
        return out_shape(module.f2, out_shape(module.f1, shape))
    if isinstance(module, (nn.Conv2d, Adder2d, nn.AvgPool2d, nn.MaxPool2d)):
        def pair(v):
            return (v, v) if isinstance(v, int) else tuple(v)
        (kh, kw), (sh, sw), (ph, pw) = pair(module.kernel_size), pair(module.stride), pair(module.padding)
        return (getattr(module, "out_channels", c), (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
    if isinstance(module, WHTPointwise):
        return module.out_channels, -(-h // module.stride), -(-w // module.stride)
    return shape
