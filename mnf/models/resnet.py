"""ResNet-20 for CIFAR in the AdderNet arrangement (Chen et al. 2020; seed 002 Appendix C).

Stem ``Conv2d(3, 16, 3)`` + BN + ReLU (always a convolution), three stages of ``blocks`` basic
blocks at 16 / 32 / 64 channels (strides 1, 2, 2), 8×8 average pool, and the classifier as a
1×1 conv (no bias) + BN on the ``num_classes`` outputs.  A block is
``relu(bn2(f2(relu(bn1(f1(x))))) + shortcut(x))``; the shortcut is a 1×1 layer (stride 2) + BN
where the shape changes, identity elsewhere.

``conv3x3`` (the role: the 3×3 layers ``f1``, ``f2``) takes a kind of ``mnf.models.policy``;
the 1×1 shortcuts are dense layers of the same family (``"conv"`` or ``"adder"``):

- ``"conv"``: Conv2d.  272,484 parameters (10 classes) / 278,424 (100), seed 002 Table 3.2.
- ``"adder"``: Adder2d, same shapes, same counts.
- ``"separable_adder"``: seed 002 §4.4 replaces an adder 3×3 by ``dwAdder 3×3, BN, ReLU,
  pwAdder 1×1``.  Replacing *every* 3×3 that way gives 41,780 / 47,720.  Seed 002 Table 4.1
  reports 61,732 / 67,672: that is exactly the count when the two down-sampling 3×3 layers
  (first block of stages 2 and 3: 16→32 and 32→64, stride 2) stay dense Adder2d (+3,920 and
  +16,032 = +19,952), so this is what ``"separable_adder"`` builds; ``separable_transitions=True``
  makes those separable too.
"""
from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from mnf import _check
from mnf.models.policy import ROLES, check, conv3x3, full

CONV3X3 = ROLES["resnet20"]["conv3x3"]


class BasicBlock(nn.Module):
    """Two 3×3 layers with BN and a shortcut: ``(N, cin, H, W) -> (N, cout, H/stride, W/stride)``.

    ``kind``: the ``conv3x3`` kind (see the module doc); ``separable_transitions``: a
    ``"separable_adder"`` block makes its shape-changing 3×3 layer separable too.
    """

    def __init__(self, cin: int, cout: int, stride: int, kind: str, separable_transitions: bool = False):
        super().__init__()
        dense = "adder" if kind == "separable_adder" else kind

        def layer3x3(i: int, o: int, s: int) -> nn.Module:
            transition = s != 1 or i != o
            if kind == "separable_adder" and (separable_transitions or not transition):
                return conv3x3(kind, i, o, s)
            return full(dense, i, o, 3, s, 1)

        self.f1, self.bn1 = layer3x3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.f2, self.bn2 = layer3x3(cout, cout, 1), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(full(dense, cin, cout, 1, stride), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.f1(x)))
        return self.relu(self.bn2(self.f2(y)) + self.shortcut(x))


class ResNetCIFAR(nn.Module):
    """``(N, 3, 32, 32)`` images → ``(N, num_classes)`` logits.  See the module docstring."""

    def __init__(self, *, num_classes: int = 10, conv3x3: str = "conv", blocks: int = 3,
                 separable_transitions: bool = False):
        super().__init__()
        check("conv3x3", conv3x3, CONV3X3)
        num_classes = _check.positive_int("num_classes", num_classes, "resnet20")
        blocks = _check.positive_int("blocks", blocks, "resnet20")
        separable_transitions = _check.flag("separable_transitions", separable_transitions, "resnet20")
        _check.size(f"the classifier of num_classes={num_classes}", 64 * num_classes, 4, "resnet20")
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        stages, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for j in range(blocks):
                stages.append(BasicBlock(cin, cout, stride if j == 0 else 1, conv3x3, separable_transitions))
                cin = cout
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(64, num_classes, 1, bias=False)
        self.bn = nn.BatchNorm2d(num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.fc(self.pool(self.stages(self.stem(x))))).flatten(1)


def resnet20(*, num_classes: int = 10, conv3x3: str = "conv", blocks: int = 3,
             separable_transitions: bool = False) -> ResNetCIFAR:
    """ResNet-(6·blocks+2), default ResNet-20; ``conv3x3`` is ``"conv" | "adder" | "separable_adder"``.

    The model carries ``model.arch = {"name": "resnet20", "kwargs": {...}}`` for checkpoints.
    """
    kwargs = dict(num_classes=num_classes, conv3x3=conv3x3, blocks=blocks, separable_transitions=separable_transitions)
    model = ResNetCIFAR(**kwargs)
    kwargs = {k: v.item() if isinstance(v, np.generic) else v for k, v in kwargs.items()}  # plain numbers
    model.arch = {"name": "resnet20", "kwargs": kwargs}
    return model
