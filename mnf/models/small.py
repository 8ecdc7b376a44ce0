"""A small residual CIFAR-10 network with squeeze-and-excitation, and its 2-D WHT variants.

Pan, Badawi & Cetin [pan2022block] use 2-D Walsh-Hadamard layers (``mnf.layers.WHTSpatial``) in
three places: in place of 3×3 convolutions, in place of squeeze-and-excitation (SE) layers, and,
with trainable weights, before global average pooling.  :func:`small_cnn` builds one small network
in which each of the three can be switched on by itself, so that a chapter can train the baseline
and each variant under the same budget.

Layout for a ``(N, 3, 32, 32)`` input, ``width = w`` and ``stem_stride = s`` (sides of the
feature maps on the right)::

    stem     Conv2d(3, w, 3, s, padding=1) + BN + ReLU                 32/s
    block 1  ResidualBlock(w, w, stride 1)                             32/s
    block 2  ResidualBlock(w, 2w, stride 2)                            16/s
    block 3  ResidualBlock(2w, 4w, stride 2)                            8/s
    head     [OrthonormalWHT2d(4w, 8/s, scale=True) + ReLU]  (pre_gap="wht2d")
             global average pooling, Linear(4w, num_classes)

A :class:`ResidualBlock` computes ``relu(gate(bn2(f2(relu(bn1(f1(x)))))) + shortcut(x))``:

- ``f1``: ``Conv2d(cin, cout, 3, stride, 1)`` -- always a convolution: it mixes the channels and
  does the down-sampling;
- ``f2``: ``Conv2d(cout, cout, 3, 1, 1)``, or with ``conv3x3="wht2d"`` an
  :class:`OrthonormalWHT2d` without scales (thresholds only: with soft thresholds no
  multiplications);
- ``gate``: :class:`SqueezeExcite` (``se="se"``, reduction 4), an :class:`OrthonormalWHT2d`
  without scales in its place (``se="wht2d"``) or nothing (``se="none"``);
- ``shortcut``: identity, or ``Conv2d(cin, cout, 1, stride)`` + BN where the shape changes.

The convolutions have no bias (a batch norm follows each); the SE layer's two 1×1 convolutions
have biases.  The ReLU between the pre-pooling WHT layer and the pooling is needed: the mean of
a ``2^k × 2^k`` map is its DC coefficient divided by ``4^k``, which the layer passes through
(scaled by ``scale[0, 0]``), so without a nonlinearity in between the pooled features would be
``scale[0, 0] · mean(x)`` whatever the other thresholds and scales are.

Why :class:`OrthonormalWHT2d` and not a bare ``WHTSpatial``: ``WHTSpatial``'s forward transform
is unnormalised, so on an ``S × S`` map of unit-variance values its coefficients have a standard
deviation of about ``S``, while its thresholds start at 0.1, far below that scale, and SGD moves
them slowly relative to it (a threshold ``T = S·θ`` has ``∂L/∂T = (∂L/∂θ) / S``, so a step of
the same learning rate changes ``T / S`` by ``S²`` times less than it changes ``θ``).  Dividing
the input by ``S`` (a shift, ``S`` is a power of two) and multiplying the output by ``S``
computes the same kind of layer with thresholds in units of the orthonormal transform's
coefficients, which have the size of the input values.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mnf.models.policy import ROLES, check

CONV3X3, GATES, PRE_GAP = (ROLES["small_cnn"][role] for role in ("conv3x3", "se", "pre_gap"))


class Gate(nn.Module):
    """``x · sigmoid(s)``: ``x`` ``(N, C, H, W)``, ``s`` ``(N, C, 1, 1)`` → ``(N, C, H, W)``.

    A leaf module so that :func:`mnf.cost.cost_table` counts the rescaling: ``N·C·H·W``
    multiplications, plus per channel one division and one addition for the sigmoid
    ``1 / (1 + exp(−s))`` (the exponential is not counted).
    """

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        return x * torch.sigmoid(s)

    def op_counts(self, x: Tensor, y: Tensor) -> tuple[int, int]:
        channels = y.shape[0] * y.shape[1]
        return y.numel() + channels, channels


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): ``(N, C, H, W) → (N, C, H, W)``.

    ``y = x · sigmoid(W2 relu(W1 mean_hw(x) + b1) + b2)`` with ``W1`` ``(C/r, C)`` and ``W2``
    ``(C, C/r)`` (1×1 convolutions with bias): one weight per channel, computed from the
    whole image, rescales that channel.  Parameters: ``2·C·C/r + C/r + C``.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        if isinstance(reduction, bool) or not isinstance(reduction, int) or not 1 <= reduction <= channels:
            raise ValueError(f"reduction must be an int in [1, channels={channels}], got {reduction!r}")
        hidden = channels // reduction
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = Gate()

    def forward(self, x: Tensor) -> Tensor:
        return self.gate(x, self.fc2(self.act(self.fc1(self.pool(x)))))


class OrthonormalWHT2d(nn.Module):
    """``WHTSpatial`` with thresholds in orthonormal units: ``(N, C, S, S) → (N, C, S, S)``, ``S = 2^k``.

    ``y = S · WHTSpatial(x / S)``.  The coefficients ``WHTSpatial`` computes from ``x / S`` are
    ``H x H / S``, those of the orthonormal 2-D transform of ``x``, and ``S`` times its inverse
    ``H (·) H / S²`` is the orthonormal inverse, so the layer is::

        y = Q f_θ(Q x Q) Q,   Q = H_S / √S   (orthonormal, symmetric)

    with ``θ`` measured against coefficients that have the size of the input values (see the
    module doc for why that matters when training).  For soft and hard thresholds this is the
    same map as a ``WHTSpatial`` with thresholds ``S·θ``.  The two scalings are shifts by ``k``
    bits, not counted as multiplications by :func:`mnf.cost.cost_table`, which counts the inner
    ``wht`` (a :class:`~mnf.layers.WHTSpatial`) as a whole.

    Args:
        channels: ``C``.
        size: ``S``, a power of two (the side of the square maps).
        threshold, init, scale: as for :class:`~mnf.layers.WHTSpatial` (``keep_dc=True``).
    """

    def __init__(self, channels: int, size: int, *, threshold: str = "soft", init: float = 0.1,
                 scale: bool = False) -> None:
        super().__init__()
        from mnf.layers.wht import WHTSpatial

        if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size & (size - 1):
            raise ValueError(f"size must be a power of two (the side of square maps), got {size!r}")
        self.size = size
        self.wht = WHTSpatial(channels, size, size, threshold=threshold, init=init, scale=scale)

    def forward(self, x: Tensor) -> Tensor:
        return self.wht(x / self.size) * self.size

    def extra_repr(self) -> str:
        return f"thresholds in units of the orthonormal transform (input / {self.size}, output · {self.size})"


class ResidualBlock(nn.Module):
    """``(N, cin, H, W) → (N, cout, H/stride, W/stride)``; see the module doc.

    ``size`` is the side of the *output* maps (the WHT layers are built for one resolution).
    """

    def __init__(self, cin: int, cout: int, stride: int, size: int, conv3x3: str, gate: str,
                 threshold: str = "soft") -> None:
        super().__init__()

        def wht2d() -> nn.Module:
            return OrthonormalWHT2d(cout, size, threshold=threshold)

        self.f1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.f2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False) if conv3x3 == "conv" else wht2d()
        self.bn2 = nn.BatchNorm2d(cout)
        self.gate: nn.Module = (SqueezeExcite(cout) if gate == "se" else wht2d() if gate == "wht2d"
                                else nn.Identity())
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.f1(x)))
        return self.relu(self.gate(self.bn2(self.f2(y))) + self.shortcut(x))


class SmallCNN(nn.Module):
    """``(N, 3, 32, 32)`` float images → ``(N, num_classes)`` logits; see the module doc."""

    def __init__(self, *, width: int = 16, num_classes: int = 10, conv3x3: str = "conv", se: str = "se",
                 pre_gap: str = "none", threshold: str = "soft", stem_stride: int = 1) -> None:
        super().__init__()
        from mnf.layers.threshold import check_kind

        check("conv3x3", conv3x3, CONV3X3)
        check("se", se, GATES)
        check("pre_gap", pre_gap, PRE_GAP)
        check_kind(threshold)
        if isinstance(width, bool) or not isinstance(width, int) or width < 4:
            raise ValueError(f"width must be an int >= 4, got {width!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if stem_stride not in (1, 2) or isinstance(stem_stride, bool):
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
        w, side = width, 32 // stem_stride
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(w),
                                  nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(ResidualBlock(w, w, 1, side, conv3x3, se, threshold),
                                    ResidualBlock(w, 2 * w, 2, side // 2, conv3x3, se, threshold),
                                    ResidualBlock(2 * w, 4 * w, 2, side // 4, conv3x3, se, threshold))
        self.head: nn.Module = nn.Identity()
        if pre_gap == "wht2d":
            self.head = nn.Sequential(OrthonormalWHT2d(4 * w, side // 4, threshold=threshold, scale=True), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * w, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, 32, 32):
            raise ValueError(f"SmallCNN expects input of shape (N, 3, 32, 32), got {tuple(x.shape)}")
        return self.classifier(self.pool(self.head(self.blocks(self.stem(x)))).flatten(1))


def small_cnn(*, width: int = 16, num_classes: int = 10, conv3x3: str = "conv", se: str = "se",
              pre_gap: str = "none", threshold: str = "soft", stem_stride: int = 1) -> SmallCNN:
    """Build a :class:`SmallCNN` (see the module doc) for 32×32 inputs (keyword arguments only).

    width        channels of the first stage; the stages have ``w``, ``2w``, ``4w``.
    conv3x3      the second 3×3 layer of every block: ``"conv"`` or ``"wht2d"``
                 (:class:`OrthonormalWHT2d`, thresholds only).
    se           the gate on every block's residual branch: ``"se"`` (squeeze-and-excitation),
                 ``"wht2d"`` (an :class:`OrthonormalWHT2d`, thresholds only, in its place) or
                 ``"none"``.
    pre_gap      ``"wht2d"``: an :class:`OrthonormalWHT2d` with trainable scales and a ReLU before
                 global average pooling; ``"none"``: pooling follows the last block.
    threshold    the nonlinearity of every ``WHTSpatial``: ``"soft"`` (no multiplications),
                 ``"hard"`` or ``"smooth"`` (soft threshold times ``tanh``, as in [pan2022block]).
    stem_stride  1 (maps of 32, 16, 8 pixels) or 2 (16, 8, 4: about a quarter of the work).

    The model carries ``model.arch = {"name": "small_cnn", "kwargs": {...}}``.
    """
    kwargs = dict(width=width, num_classes=num_classes, conv3x3=conv3x3, se=se, pre_gap=pre_gap,
                  threshold=threshold, stem_stride=stem_stride)
    model = SmallCNN(**kwargs)
    model.arch = {"name": "small_cnn", "kwargs": kwargs}
    return model


__all__ = ["CONV3X3", "GATES", "PRE_GAP", "Gate", "OrthonormalWHT2d", "ResidualBlock", "SmallCNN", "SqueezeExcite",
           "small_cnn"]
