"""Whole cost tables of a WHT MobileNetV2 and of adder ResNet-20s against counts derived here.

The expected totals are computed from the layer formulas of ``mnf.cost``'s docstring and the
published layouts written out below (stage table, channels, strides), without calling the model
or cost code; the literals pin the tables as they were before the issue-17 refactor.
"""
import math

import pytest

from mnf.cost import cost_table
from mnf.models import mobilenet_v2, resnet20


def pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


class Tally:
    """Running ``params``, ``mults`` and ``adds`` of one forward pass on a single image."""

    def __init__(self) -> None:
        self.params = self.mults = self.adds = 0

    def add(self, params: int = 0, mults: int = 0, adds: int = 0) -> None:
        self.params += params
        self.mults += mults
        self.adds += adds

    def conv(self, cin: int, cout: int, k: int, side: int, groups: int = 1) -> None:
        """A bias-free convolution with ``side``² outputs per channel: one MAC per weight read."""
        macs = cout * side * side * (cin // groups) * k * k
        self.add(cout * (cin // groups) * k * k, macs, macs)

    def adder(self, cin: int, cout: int, k: int, side: int, groups: int = 1) -> None:
        """``Adder2d``: ``x − w``, ``|·|`` and accumulate per weight read, no multiplications."""
        self.add(cout * (cin // groups) * k * k, 0, 3 * cout * side * side * (cin // groups) * k * k)

    def bn(self, channels: int, side: int) -> None:
        self.add(2 * channels, channels * side * side, channels * side * side)

    def wht_pointwise(self, cin: int, cout: int, side: int) -> None:
        """Soft thresholds, ``keep_dc``, no scales: two length-``n`` transforms plus ``n`` per pixel."""
        n = pow2(max(cin, cout))
        self.add(n - 1, 0, side * side * (2 * n * int(math.log2(n)) + n))

    def wht_spatial(self, channels: int, side: int) -> None:
        """Soft thresholds and scales over the ``p = pow2(side)²`` coefficients of every image."""
        p = pow2(side) ** 2
        self.add((p - 1) + p, channels * p, channels * (2 * p * int(math.log2(p)) + p))


CIFAR_STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))   # Sandler et al. Table 2 with the 24-channel stage at stride 1 (CIFAR)


def wht_mobilenet_counts(classes: int = 10) -> tuple[int, int, int]:
    """CIFAR-layout MobileNetV2, width 1, pointwise="wht" without scales, depthwise="wht2d", last="wht", 32×32 input."""
    t_ = Tally()
    side, cin = 32, 32
    t_.conv(3, 32, 3, side)
    t_.bn(32, side)
    for t, c, n, s in CIFAR_STAGES:
        for j in range(n):
            stride = s if j == 0 else 1
            hidden = cin * t
            out = -(-side // stride)
            t_.wht_pointwise(cin, hidden, side)
            t_.bn(hidden, side)
            t_.wht_spatial(hidden, side)
            if stride == 2:   # every second row and column of the stride-1 result: AvgPool2d(1, 2)
                t_.add(0, hidden * out * out, hidden * side * side)
            t_.bn(hidden, out)
            t_.wht_pointwise(hidden, c, out)
            t_.bn(c, out)
            if stride == 1 and cin != c:
                t_.wht_pointwise(cin, c, side)
                t_.bn(c, side)
            cin, side = c, out
    t_.wht_pointwise(320, 320, side)
    t_.add(0, 320, 320 * side * side)                        # global average pool
    t_.add(320 * classes + classes, 320 * classes, 320 * classes + classes)   # Linear with bias
    return t_.params, t_.mults, t_.adds


def adder_resnet_counts(kind: str, classes: int = 10) -> tuple[int, int, int]:
    """ResNet-20 (3 blocks per stage) with adder 3×3 layers ("adder") or separable adder blocks
    everywhere except the two down-sampling 3×3 layers ("separable_adder"); 32×32 input."""
    t_ = Tally()
    side, cin = 32, 16
    t_.conv(3, 16, 3, side)
    t_.bn(16, side)
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for j in range(3):
            s = stride if j == 0 else 1
            out = side // s
            for i, o, sd, transition in ((cin, cout, s, s != 1 or cin != cout), (cout, cout, 1, False)):
                if kind == "separable_adder" and not transition:
                    t_.adder(i, i, 3, out, groups=i)
                    t_.bn(i, out)
                    t_.adder(i, o, 1, out)
                else:
                    t_.adder(i, o, 3, out)
                t_.bn(o, out)
            if s != 1 or cin != cout:
                t_.adder(cin, cout, 1, out)
                t_.bn(cout, out)
            cin, side = cout, out
    t_.add(0, 64, 64 * side * side)                            # global average pool
    t_.conv(64, classes, 1, 1)                                 # classifier as a 1×1 conv
    t_.bn(classes, 1)
    return t_.params, t_.mults, t_.adds


def totals(model) -> dict[str, int]:
    return cost_table(model, (1, 3, 32, 32)).totals


def test_wht_mobilenet_v2_table_is_unchanged():
    got = totals(mobilenet_v2(layout="cifar", pointwise="wht", depthwise="wht2d", last="wht",
                              wht_options=dict(scale=False)))   # the thresholds-only layer the tally counts
    params, mults, adds = wht_mobilenet_counts()
    assert (got["params"], got["mults"], got["adds"]) == (params, mults, adds)
    assert got == {"params": 67_746, "mults": 3_479_488, "adds": 57_824_906, "activation_bytes": 20_933_160}


@pytest.mark.parametrize("kind, literal", [
    ("adder", {"params": 272_484, "mults": 643_786, "adds": 121_758_346, "activation_bytes": 2_654_544}),
    ("separable_adder", {"params": 61_732, "mults": 803_530, "adds": 25_567_882, "activation_bytes": 4_571_472}),
])
def test_adder_resnet20_table_is_unchanged(kind, literal):
    got = totals(resnet20(conv3x3=kind))
    assert (got["params"], got["mults"], got["adds"]) == adder_resnet_counts(kind)
    assert got == literal
