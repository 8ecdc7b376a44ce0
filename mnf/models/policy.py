"""The models' layer vocabulary: a keyword names a *role*, its value a *kind* of layer.

Every builder of :mod:`mnf.models` takes keyword-only arguments.  A layer choice is a keyword
named after the layer of the original network being replaced (its role: ``pointwise``,
``depthwise``, ``last``, ``conv3x3``, ``se``, ``pre_gap``) whose value is one of :data:`KINDS`,
the one set of layer kinds all models draw from; :data:`ROLES` lists, per registered builder,
which kinds each role accepts.  The factories below build a layer of a kind for a role::

    pointwise("wht", 32, 192)   # WHTPointwise(32, 192, expand="repeat", scale=True): for Conv2d(32, 192, 1)
    depthwise("adder", 192, stride=2, size=32)   # Adder2d(192, 192, 3, 2, 1, groups=192)
    conv3x3("separable_adder", 16, 32, stride=2)  # dwAdder 3×3, BN, ReLU, pwAdder 1×1

``mnf.layers.adder`` / ``mnf.layers.wht`` are imported only when a kind needs them, so the
plain ``"conv"`` models work without them.
"""
from __future__ import annotations

from torch import nn

KINDS: dict[str, str] = {
    "conv": "the original layer: nn.Conv2d of the role's shape (no bias)",
    "adder": "Adder2d of the same shape (AdderNet: -sum |x - w|)",
    "wht": "WHTPointwise: a 1×1 layer by a channel Walsh–Hadamard transform, trainable thresholds and scales",
    "wht2d": "WHTSpatial: a 2-D WHT of every channel's image with trainable thresholds "
             "(small_cnn: OrthonormalWHT2d, the same in orthonormal units)",
    "separable_adder": "depthwise Adder2d 3×3, BN, ReLU, pointwise Adder2d 1×1 (Urso 2022 §4.4)",
    "separable_adder_wht": "depthwise Adder2d 3×3, BN, WHTPointwise (channel mixing by the WHT)",
    "se": "the original squeeze-and-excitation gate",
    "none": "no layer in that place",
}

POINTWISE = ("conv", "wht", "adder")
DEPTHWISE = ("conv", "adder", "wht2d")
LAST = ("conv", "wht")
CONV3X3 = ("conv", "adder", "separable_adder", "separable_adder_wht")

ROLES: dict[str, dict[str, tuple[str, ...]]] = {
    "mobilenet_v2": {"pointwise": POINTWISE, "depthwise": DEPTHWISE, "last": LAST},
    "resnet20": {"conv3x3": ("conv", "adder", "separable_adder")},
    "small_cnn": {"conv3x3": ("conv", "wht2d"), "se": ("se", "wht2d", "none"), "pre_gap": ("none", "wht2d")},
    "conv_autoencoder": {},
    "mf_autoencoder": {"conv3x3": ("adder", "separable_adder_wht")},
    "dense_autoencoder": {},
}


def check(role: str, name: str, valid: tuple[str, ...]) -> str:
    """Return ``name`` if it is one of ``valid``, else raise a ValueError listing them."""
    if not isinstance(name, str):
        from mnf._check import ArgumentTypeError
        raise ArgumentTypeError(f"{role} layer must be one of {', '.join(map(repr, valid))}, got {name!r} "
                                f"of type {type(name).__name__}")
    if name not in valid:
        raise ValueError(f"unknown {role} layer {name!r}; valid: {', '.join(map(repr, valid))}")
    return name


WHT_OPTIONS = ("scale", "threshold", "init", "block_size", "keep_dc")


def check_wht_options(options: dict | None, owner: str) -> dict:
    """``options`` (keyword arguments of ``WHTPointwise``, keys from :data:`WHT_OPTIONS`) as a plain dict."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        from mnf._check import ArgumentTypeError
        raise ArgumentTypeError(f"{owner}: wht_options must be a dict of WHTPointwise arguments, got {options!r}")
    unknown = sorted(set(options) - set(WHT_OPTIONS))
    if unknown:
        raise ValueError(f"{owner}: unknown wht_options {unknown}; valid: {', '.join(WHT_OPTIONS)}")
    return dict(options)


def pointwise(kind: str, cin: int, cout: int, stride: int = 1, wht_options: dict | None = None) -> nn.Module:
    """A 1×1 layer ``(N, cin, H, W) -> (N, cout, H/stride, W/stride)`` without bias.

    The ``"wht"`` kind is ``WHTPointwise(cin, cout, stride, expand="repeat", scale=True)``;
    ``wht_options`` changes its keyword arguments (:data:`WHT_OPTIONS`, e.g. ``dict(scale=False)``
    for thresholds only); the other kinds ignore it.
    """
    check("pointwise", kind, POINTWISE)
    if kind == "conv":
        return nn.Conv2d(cin, cout, 1, stride, bias=False)
    if kind == "adder":
        from mnf.layers.adder import Adder2d
        return Adder2d(cin, cout, 1, stride)
    from mnf.layers.wht import WHTPointwise
    # repeat, not zero-pad, on expansion: zero-padded extra channels carry only threshold terms,
    # which the batch norm after the layer blows up (see WHTPointwise)
    # per-coefficient scales by default: with them the layer learns a dyadic convolution over the
    # channels, not only a mask, and in the recorded ablation (mnf/results/mobilenet_ablation) the
    # network learned more per epoch with them; wht_options=dict(scale=False) gives thresholds only
    options = {"scale": True} | check_wht_options(wht_options, "pointwise")
    return WHTPointwise(cin, cout, stride, expand="repeat", **options)


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


def separable_adder(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """``Adder2d(cin, cin, 3, stride, 1, groups=cin)``, BN, ReLU, ``Adder2d(cin, cout, 1)``:
    ``(N, cin, H, W) -> (N, cout, H/stride, W/stride)`` (the ``"separable_adder"`` kind)."""
    from mnf.layers.adder import Adder2d
    return nn.Sequential(Adder2d(cin, cin, 3, stride, 1, groups=cin), nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                         Adder2d(cin, cout, 1))


def separable_adder_wht(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """``Adder2d(cin, cin, 3, stride, 1, groups=cin)``, BN, ``WHTPointwise(cin, cout)``:
    ``(N, cin, H, W) -> (N, cout, H/stride, W/stride)`` (the ``"separable_adder_wht"`` kind)."""
    from mnf.layers.adder import Adder2d
    from mnf.layers.wht import WHTPointwise
    # expand="zeros": the layer the autoencoder chapter was built and measured with
    return nn.Sequential(Adder2d(cin, cin, 3, stride, 1, groups=cin), nn.BatchNorm2d(cin),
                         WHTPointwise(cin, cout, expand="zeros"))


def conv3x3(kind: str, cin: int, cout: int, stride: int = 1) -> nn.Module:
    """A 3×3 layer with padding 1 of a kind of :data:`CONV3X3`: ``(N, cin, H, W) -> (N, cout, H/stride, W/stride)``.

    ``"conv"`` / ``"adder"``: one dense layer; the separable kinds filter each channel with a
    depthwise ``Adder2d`` 3×3 (which also strides), batch-normalise and mix the channels
    (:func:`separable_adder`, :func:`separable_adder_wht`).
    """
    check("conv3x3", kind, CONV3X3)
    if kind in ("conv", "adder"):
        return full(kind, cin, cout, 3, stride, 1)
    return (separable_adder if kind == "separable_adder" else separable_adder_wht)(cin, cout, stride)
