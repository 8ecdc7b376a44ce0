"""Per-role layer factory: which module plays "pointwise", "depthwise" or "last 1×1".

A model asks for a layer by *role* and the policy name picks the module::

    pointwise("wht", 32, 192)   # WHTPointwise(32, 192, expand="repeat"): drop-in for Conv2d(32, 192, 1)
    depthwise("adder", 192, stride=2, size=32)   # Adder2d(192, 192, 3, 2, 1, groups=192)

``mnf.layers.adder`` / ``mnf.layers.wht`` are imported only when a policy needs them, so the
plain ``"conv"`` models work without them.
"""
from __future__ import annotations

from torch import nn

POINTWISE = ("conv", "wht", "adder")
DEPTHWISE = ("conv", "adder", "wht2d")
LAST = ("conv", "wht")


def check(role: str, name: str, valid: tuple[str, ...]) -> str:
    """Return ``name`` if it is one of ``valid``, else raise a ValueError listing them."""
    if not isinstance(name, str):
        from mnf._check import ArgumentTypeError
        raise ArgumentTypeError(f"{role} layer must be one of {', '.join(map(repr, valid))}, got {name!r} "
                                f"of type {type(name).__name__}")
    if name not in valid:
        raise ValueError(f"unknown {role} layer {name!r}; valid: {', '.join(map(repr, valid))}")
    return name


def pointwise(kind: str, cin: int, cout: int, stride: int = 1) -> nn.Module:
    """A 1×1 layer ``(N, cin, H, W) -> (N, cout, H/stride, W/stride)`` without bias."""
    check("pointwise", kind, POINTWISE)
    if kind == "conv":
        return nn.Conv2d(cin, cout, 1, stride, bias=False)
    if kind == "adder":
        from mnf.layers.adder import Adder2d
        return Adder2d(cin, cout, 1, stride)
    from mnf.layers.wht import WHTPointwise
    # repeat, not zero-pad, on expansion: zero-padded extra channels carry only threshold terms,
    # which the batch norm after the layer blows up (see WHTPointwise)
    return WHTPointwise(cin, cout, stride, expand="repeat")


def depthwise(kind: str, channels: int, stride: int, size: int | tuple[int, int]) -> nn.Module:
    """A per-channel 3×3 layer ``(N, C, H, W) -> (N, C, H/stride, W/stride)``, padding 1.

    ``size`` is the input's ``(H, W)`` (``"wht2d"`` is built for one resolution).  ``"wht2d"``
    is the 2-D WHT layer, a stride-1 operator; for stride 2 it is followed by keeping every
    second row and column, which is what a stride-2 3×3 convolution with padding 1 computes
    from its stride-1 output.
    """
    check("depthwise", kind, DEPTHWISE)
    if kind == "conv":
        return nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False)
    if kind == "adder":
        from mnf.layers.adder import Adder2d
        return Adder2d(channels, channels, 3, stride, 1, groups=channels)
    from mnf.layers.wht import WHTSpatial
    h, w = (size, size) if isinstance(size, int) else size
    layer = WHTSpatial(channels, h, w)
    return layer if stride == 1 else nn.Sequential(layer, nn.AvgPool2d(1, stride))


def full(kind: str, cin: int, cout: int, kernel_size: int, stride: int = 1, padding: int = 0) -> nn.Module:
    """A dense ``kernel_size``² layer without bias: ``"conv"`` (Conv2d) or ``"adder"`` (Adder2d)."""
    check("dense", kind, ("conv", "adder"))
    if kind == "conv":
        return nn.Conv2d(cin, cout, kernel_size, stride, padding, bias=False)
    from mnf.layers.adder import Adder2d
    return Adder2d(cin, cout, kernel_size, stride, padding)
