"""Operation counts against hand computation on tiny nets."""
import importlib.util

import pytest
from torch import nn

from mnf.cost import cost_table
from mnf.models import mobilenet_v2, resnet20

needs_adder = pytest.mark.skipif(importlib.util.find_spec("mnf.layers.adder") is None, reason="no mnf.layers.adder")


def tiny_conv_net():
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 5))


def test_conv_net_by_hand():
    report = cost_table(tiny_conv_net(), (1, 2, 4, 4))
    rows = {r.kind: r for r in report.layers}
    # conv: 3·4·4 = 48 outputs, each reads 2·3·3 = 18 inputs
    assert (rows["Conv2d"].mults, rows["Conv2d"].adds, rows["Conv2d"].params) == (864, 864, 54)
    assert (rows["BatchNorm2d"].mults, rows["BatchNorm2d"].adds) == (48, 48)
    assert (rows["ReLU"].mults, rows["ReLU"].adds) == (0, 0)
    assert (rows["AdaptiveAvgPool2d"].mults, rows["AdaptiveAvgPool2d"].adds) == (3, 48)
    assert (rows["Linear"].mults, rows["Linear"].adds, rows["Linear"].params) == (15, 15 + 5, 20)
    assert report.totals == {"params": 54 + 6 + 20, "mults": 864 + 48 + 3 + 15, "adds": 864 + 48 + 48 + 20,
                             "activation_bytes": 4 * (48 * 3 + 3 + 3 + 5)}
    assert rows["Conv2d"].output_shape == (1, 3, 4, 4)


@needs_adder
def test_adder_layer_has_no_multiplications():
    from mnf.layers.adder import Adder2d
    net = nn.Sequential(Adder2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))
    row = cost_table(net, (2, 3, 5, 5)).layers[0]
    outputs, k = 2 * 4 * 5 * 5, 3 * 3 * 3
    assert (row.kind, row.mults, row.adds, row.params) == ("Adder2d", 0, 3 * outputs * k, 4 * k)
    dw = cost_table(nn.Sequential(Adder2d(4, 4, 3, padding=1, groups=4)), (1, 4, 6, 6)).layers[0]
    assert dw.adds == 3 * (4 * 36) * 9 and dw.mults == 0


@needs_adder
def test_adder_resnet_moves_multiplications_to_additions():
    conv, adder = cost_table(resnet20()).totals, cost_table(resnet20(conv3x3="adder")).totals
    assert conv["params"] == adder["params"] == 272_484
    assert adder["mults"] < conv["mults"] / 20 and adder["adds"] > 2.5 * conv["adds"]


def test_report_printing_and_params_total():
    model = mobilenet_v2(width=0.25, blocks=(1,) * 7)
    report = cost_table(model)
    assert report.totals["params"] == sum(p.numel() for p in model.parameters())
    text, md = str(report), report.to_markdown()
    assert text.splitlines()[0].split()[:3] == ["layer", "type", "output"] and "total" in text.splitlines()[-1]
    assert md.startswith("| layer |") and md.count("\n") == len(report.layers) + 2
    assert model.training  # restored


def test_bad_input_size():
    with pytest.raises(ValueError, match="N, C, H, W"):
        cost_table(tiny_conv_net(), (2, 4, 4))


def test_modules_count_themselves_through_op_counts():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Conv2d(2, 2, 1)

        def forward(self, x):
            return self.inner(x)

        def op_counts(self, x, y):
            return 7, 11

    report = cost_table(nn.Sequential(Custom(), nn.ReLU()), (1, 2, 4, 4))
    assert [(r.kind, r.mults, r.adds) for r in report.layers] == [("Custom", 7, 11), ("ReLU", 0, 0)]  # as a whole
    impostor = type("Adder2d", (nn.Module,), {"forward": lambda self, x: x})   # a class name alone means nothing
    assert cost_table(nn.Sequential(impostor()), (1, 2, 4, 4)).layers[0].adds == 0
