"""MobileNetV2 (Sandler et al. 2018) in its ImageNet and CIFAR layouts, with per-role layer policies.

Stages ``(t, c, n, s)`` = expansion, output channels, blocks, stride of the first block
(Table 3.1 of seed 000)::

    (1, 16, 1, 1) (6, 24, 2, 2) (6, 32, 3, 2) (6, 64, 4, 2) (6, 96, 3, 1) (6, 160, 3, 2) (6, 320, 1, 1)

``layout="imagenet"`` is torchvision's arrangement: stem 3×3 conv stride 2 to 32 channels, no
expansion conv when t = 1, a residual only when stride 1 and channels equal, ReLU6, last 1×1 conv
to 1280, global average pool, dropout 0.2, linear.  ``layout="cifar"`` is the kuangliu
pytorch-cifar arrangement used by seed 002: stem stride 1, 24-channel stage stride 1, an
expansion conv in every block (also t = 1), a 1×1 conv + BN shortcut in stride-1 blocks whose
channels change, ReLU, no dropout.

Parameter counts (verified in tests/test_models.py):

=====================================================  ==========  ===========
model                                                  10 classes  100 classes
=====================================================  ==========  ===========
imagenet layout                                        2,236,682
imagenet layout, ``last="wht"`` minus the WHT layer    1,814,922
cifar layout                                           2,296,922   2,412,212
=====================================================  ==========  ===========

``last="wht"`` drops the 320→1280 conv (409,600) and its BN (2,560) and shrinks the classifier
from 1280·10+10 to 320·10+10 (−9,600): 2,236,682 − 421,760 = 1,814,922, exactly seed 000's
"Mobilenetv2 + FWHT" figure.  So seed 000's count leaves the WHT layer itself out (its trainable
thresholds); with our ``WHTPointwise(320, 320)`` the total is 1,814,922 plus that layer's own
parameters (see ``mobilenet_v2(last="wht")`` and the test).
"""
from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from mnf import _check
from mnf.models.policy import DEPTHWISE, LAST, POINTWISE, check, check_wht_options, depthwise, pointwise

STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
LAYOUTS = ("imagenet", "cifar")


def check_blocks(blocks) -> list[int]:
    """``blocks`` as a list of ``len(STAGES)`` ints >= 1 (``ValueError`` / ``TypeError`` otherwise)."""
    if not isinstance(blocks, (tuple, list)):
        raise _check.ArgumentTypeError(f"mobilenet_v2: blocks must be {len(STAGES)} positive stage depths "
                                       f"(a list or tuple of ints), got {blocks!r}")
    if len(blocks) != len(STAGES) or not all(_check.is_int(n) and n >= 1 for n in blocks):
        raise ValueError(f"mobilenet_v2: blocks must be {len(STAGES)} positive stage depths, got {list(blocks)}")
    return [int(n) for n in blocks]


def per_stage(role: str, kind, valid: tuple[str, ...]) -> list[str]:
    """A role's kind for every stage: one kind for all, or a list/tuple of ``len(STAGES)`` kinds."""
    if isinstance(kind, (list, tuple)):
        if len(kind) != len(STAGES):
            raise ValueError(f"mobilenet_v2: {role} must be one kind or {len(STAGES)} kinds (one per stage), "
                             f"got {len(kind)}: {list(kind)}")
        return [check(role, k, valid) for k in kind]
    return [check(role, kind, valid)] * len(STAGES)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor`` without going below 90 % of it (torchvision)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class InvertedResidual(nn.Module):
    """``[1×1 expand, BN, act] → 3×3 depthwise, BN, act → 1×1 project, BN`` (+ shortcut).

    ``(N, cin, H, W) -> (N, cout, H/stride, W/stride)``; ``size`` is the input ``H`` (= ``W``).
    """

    def __init__(self, cin: int, cout: int, stride: int, t: int, size: int, layout: str,
                 pw: str, dw: str, act: type[nn.Module], wht_options: dict | None = None):
        super().__init__()
        hidden = cin * t
        layers: list[nn.Module] = []
        if t != 1 or layout == "cifar":
            layers += [pointwise(pw, cin, hidden, 1, wht_options), nn.BatchNorm2d(hidden), act()]
        layers += [depthwise(dw, hidden, stride, size), nn.BatchNorm2d(hidden), act()]
        layers += [pointwise(pw, hidden, cout, 1, wht_options), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.shortcut: nn.Module | None = None
        if stride == 1 and cin == cout:
            self.shortcut = nn.Identity()
        elif stride == 1 and layout == "cifar":
            self.shortcut = nn.Sequential(pointwise(pw, cin, cout, 1, wht_options), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x)
        return y if self.shortcut is None else y + self.shortcut(x)


class MobileNetV2(nn.Module):
    """MobileNetV2: ``(N, 3, S, S)`` float images → ``(N, num_classes)`` logits.  See the module doc."""

    def __init__(self, *, layout: str = "cifar", width: float = 1.0, num_classes: int = 10,
                 pointwise: str | list[str] = "conv", depthwise: str | list[str] = "conv", last: str = "conv",
                 blocks: tuple[int, ...] | list[int] | None = None, stem_stride: int | None = None,
                 input_size: int = 32, dropout: float | None = None, wht_options: dict | None = None):
        super().__init__()
        wht_options = check_wht_options(wht_options, "mobilenet_v2")
        check("layout", layout, LAYOUTS)
        pointwise_kinds = per_stage("pointwise", pointwise, POINTWISE)
        depthwise_kinds = per_stage("depthwise", depthwise, DEPTHWISE)
        check("last", last, LAST)
        blocks = [n for _, _, n, _ in STAGES] if blocks is None else check_blocks(blocks)
        width = _check.real("width", width, 0, low_open=True, owner="mobilenet_v2")
        num_classes = _check.positive_int("num_classes", num_classes, "mobilenet_v2")
        stem_stride = _check.optional_int("stem_stride", stem_stride, 1, "mobilenet_v2")
        input_size = _check.positive_int("input_size", input_size, "mobilenet_v2")
        dropout = _check.optional_real("dropout", dropout, 0, 1, high_open=True, owner="mobilenet_v2")
        # the widest layers hold about 2.3M * width² weights: refuse widths no machine could hold
        _check.size(f"the weights of width={width}, num_classes={num_classes}", int(2.3e6 * max(width, 1) ** 2)
                    + 1280 * max(width, 1) * num_classes, 4, "mobilenet_v2")
        cifar = layout == "cifar"
        stem_stride = (1 if cifar else 2) if stem_stride is None else stem_stride
        dropout = (0.0 if cifar else 0.2) if dropout is None else dropout
        act = nn.ReLU if cifar else nn.ReLU6
        cin = make_divisible(32 * width)
        size = -(-input_size // stem_stride)
        layers: list[nn.Module] = [nn.Conv2d(3, cin, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(cin), act()]
        for i, ((t, c, _, s), n) in enumerate(zip(STAGES, blocks)):
            s = 1 if cifar and i == 1 else s
            cout = make_divisible(c * width)
            for j in range(n):
                stride = s if j == 0 else 1
                layers.append(InvertedResidual(cin, cout, stride, t, size, layout, pointwise_kinds[i],
                                               depthwise_kinds[i], act, wht_options))
                cin, size = cout, -(-size // stride)
        if last == "conv":
            features = make_divisible(1280 * max(1.0, width))
            layers += [nn.Conv2d(cin, features, 1, bias=False), nn.BatchNorm2d(features), act()]
        else:
            from mnf.layers.wht import WHTPointwise
            features = cin
            layers.append(WHTPointwise(cin, cin))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.dropout(self.pool(self.features(x)).flatten(1)))


def mobilenet_v2(*, layout: str = "cifar", width: float = 1.0, num_classes: int = 10,
                 pointwise: str | list[str] = "conv", depthwise: str | list[str] = "conv", last: str = "conv",
                 blocks: tuple[int, ...] | list[int] | None = None, stem_stride: int | None = None,
                 input_size: int | None = None, dropout: float | None = None,
                 wht_options: dict | None = None) -> MobileNetV2:
    """Build a :class:`MobileNetV2` (keyword arguments only).

    layout       ``"imagenet"`` (torchvision) or ``"cifar"`` (kuangliu / seed 002).
    width        width multiplier; channels are ``make_divisible(c · width, 8)``.
    num_classes  size of the classifier output.
    pointwise    expansion / projection / shortcut 1×1 layers: ``"conv" | "wht" | "adder"``, or a
                 list of 7 of them, one per stage (e.g. convolutions in the early stages).
    depthwise    3×3 depthwise layers: ``"conv" | "adder" | "wht2d"``, or one per stage.
    last         the last 1×1 (320→1280) conv + BN + act: ``"conv"``, or ``"wht"``: a
                 ``WHTPointwise(320, 320)`` and the classifier on 320 features (seed 000).
    blocks       blocks per stage (7 numbers), default ``(1, 2, 3, 4, 3, 3, 1)``.
    stem_stride  stride of the stem conv, default 2 (imagenet) / 1 (cifar).
    input_size   image side the model is built for (only ``"wht2d"`` needs it), default 224 / 32.
    dropout      before the classifier, default 0.2 (imagenet) / 0 (cifar).
    wht_options  with ``pointwise="wht"``: keyword arguments of every block's ``WHTPointwise``
                 (``scale``, ``threshold``, ``init``, ``block_size``, ``keep_dc``); the blocks'
                 WHT layers have per-coefficient scales [pan2021fast] unless
                 ``dict(scale=False)``; ``last="wht"`` keeps the layer's own defaults.

    The model carries ``model.arch = {"name": "mobilenet_v2", "kwargs": {...}}`` so a checkpoint
    can rebuild it with :func:`mnf.models.build`.
    """
    input_size = (32 if layout == "cifar" else 224) if input_size is None else input_size
    def plain(kind):   # one kind per stage is stored as a list (JSON-like arch for checkpoints)
        return list(kind) if isinstance(kind, (list, tuple)) else kind

    kwargs = dict(layout=layout, width=width, num_classes=num_classes, pointwise=plain(pointwise),
                  depthwise=plain(depthwise), last=last, blocks=None if blocks is None else check_blocks(blocks),
                  stem_stride=stem_stride, input_size=input_size, dropout=dropout,
                  wht_options=check_wht_options(wht_options, "mobilenet_v2") or None)
    model = MobileNetV2(**kwargs)
    kwargs = {k: v.item() if isinstance(v, np.generic) else v for k, v in kwargs.items()}  # plain numbers
    model.arch = {"name": "mobilenet_v2", "kwargs": kwargs}
    return model
