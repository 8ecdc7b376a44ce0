"""Adder layers (AdderNet, Urso 2022 ch. 3) and the adaptive learning rate of eq. 3.9-3.10."""
import math

import torch
from torch import nn

from mnf import _check
from mnf.adder import adder2d
from mnf.adder.function import FILTER_GRADS

__all__ = ["Adder2d", "adder2d", "adaptive_lr", "adaptive_scale"]


class Adder2d(nn.Module):
    """Drop-in replacement for ``nn.Conv2d`` computing ``Y = -sum |X - F|`` (eq. 3.1).

    Input (N, in_channels, H, W) -> output (N, out_channels, OH, OW) with
    ``OH = mnf.adder.output_size(H, k, s, p)`` (same for OW).
    ``weight`` has Conv2d's shape (out_channels, in_channels/groups, k, k); ``groups=in_channels``
    gives a depthwise adder layer (dwAdder2D), ``kernel_size=1`` a pointwise one (pwAdder2D).
    Zero padding pads the input with zeros, so a padded tap contributes ``|F|``.
    Initialisation: standard normal filters as in the AdderNet reference code: an L1 distance
    compares F with X directly, and X (after batch norm) has unit scale, so unit-scale filters
    keep the outputs of different filters distinguishable. Follow the layer with batch norm: its
    outputs are always <= 0 and of size about ``C/groups * k * k``.
    ``filter_grad``: ``"full"`` (X - F, eq. 3.4) or ``"sign"`` (sign(X - F), eq. 3.3).

    Dtypes: float32 or float64 input and weight of one dtype (the Numba kernels have no others).
    Under autocast / with float16 or bfloat16 inputs the layer computes in float32 and returns
    float32 (a half-precision weight, e.g. after ``.bfloat16()``, is cast too); gradients flow
    back through the cast, so ``x.grad`` has ``x``'s dtype. Other dtypes raise ``ValueError``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, groups: int = 1, bias: bool = False, filter_grad: str = "full"):
        super().__init__()
        in_channels, out_channels, kernel_size, stride, groups = (
            _check.positive_int(name, value, owner="Adder2d") for name, value in
            (("in_channels", in_channels), ("out_channels", out_channels), ("kernel_size", kernel_size),
             ("stride", stride), ("groups", groups)))
        padding = _check.integer("padding", padding, 0, owner="Adder2d")
        bias = _check.flag("bias", bias, owner="Adder2d")
        _check.choice("filter_grad", filter_grad, FILTER_GRADS, owner="Adder2d")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Adder2d: got in_channels={in_channels}, out_channels={out_channels}, "
                             f"groups={groups}, expected channels divisible by groups")
        _check.size(f"the weight of in_channels={in_channels}, out_channels={out_channels}, "
                    f"kernel_size={kernel_size}, groups={groups}",
                    out_channels * (in_channels // groups) * kernel_size ** 2, 4, "Adder2d")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.groups, self.filter_grad = stride, padding, groups, filter_grad
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels // groups, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check.tensor("x", x, owner="Adder2d")
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Adder2d: got input of shape {tuple(x.shape)}, "
                             f"expected (N, {self.in_channels}, H, W)")
        y = adder2d(x, self.weight, self.stride, self.padding, self.groups, self.filter_grad)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)

    def op_counts(self, x: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
        """(multiplications, additions) of one forward pass producing ``y`` (for ``mnf.cost``).

        Each output reads ``K = in_channels/groups · k²`` inputs and pays ``x − w``, ``|·|`` and
        the accumulation for each: ``(0, 3·y.numel()·K)`` (the bias, if any, is not counted).
        """
        return 0, 3 * y.numel() * self.weight[0].numel()

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups}, "
                f"bias={self.bias is not None}, filter_grad={self.filter_grad!r}")


def adaptive_scale(grad: torch.Tensor, eta: float = 0.2) -> torch.Tensor:
    """``alpha_l * grad`` with the local rate ``alpha_l = eta * sqrt(k) / ||grad||_2`` (eq. 3.9).

    ``k = grad.numel()``. The result has L2 norm ``eta * sqrt(k)`` (RMS ``eta``) whatever the
    layer's raw gradient scale; a zero gradient is returned unchanged. ``eta``: finite, > 0.
    """
    _check.tensor("grad", grad, owner="adaptive_scale")
    eta = _check.real("eta", eta, 0, low_open=True, owner="adaptive_scale")
    norm = torch.linalg.vector_norm(grad)
    if norm == 0:
        return grad
    return grad * (eta * math.sqrt(grad.numel()) / norm)


def adaptive_lr(model: nn.Module, eta: float = 0.2) -> list:
    """Apply AdderNet's adaptive learning rate (eq. 3.9-3.10) to every :class:`Adder2d` weight.

    Registers a gradient hook on each ``Adder2d.weight`` that replaces the gradient ``g`` of that
    backward pass by ``adaptive_scale(g, eta)``; any optimizer and scheduler then applies
    ``Delta F_l = gamma * alpha_l * g`` with its own global rate ``gamma`` (eq. 3.10). Only adder
    filters are touched: batch norm, classifier, biases and any other parameters keep their raw
    gradients. Interplay: the scaled gradient is what the optimizer sees, so SGD momentum
    accumulates scaled gradients (as in the AdderNet reference code, which scales inside the
    backward pass), while weight decay is added by the optimizer afterwards and is *not* scaled
    by ``alpha_l``. With gradient accumulation each backward pass is normalised separately.
    Returns the hook handles; call ``h.remove()`` on each to switch the rule off.
    """
    _check.module("model", model, owner="adaptive_lr")
    eta = _check.real("eta", eta, 0, low_open=True, owner="adaptive_lr")
    return [m.weight.register_hook(lambda g: adaptive_scale(g, eta))
            for m in model.modules() if isinstance(m, Adder2d)]
