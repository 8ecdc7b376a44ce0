"""Parameters, multiplications, additions and activation memory of a model, layer by layer.

``cost_table(model, (1, 3, 32, 32))`` runs one forward pass on a zero input (made on the model's
device, in its dtype) with forward hooks and counts, for every *counted* module (a leaf, or an
``Adder2d`` / ``WHTPointwise`` / ``WHTSpatial`` taken as a whole), with ``K`` the number of inputs
one output reads and ``N`` the output's numel:

==================  ====================================  =========================================
module              multiplications                       additions / subtractions
==================  ====================================  =========================================
Conv2d, Linear      ``N·K`` (one per MAC)                 ``N·K`` (one per MAC) ``+ N`` with a bias
Adder2d             0                                     ``3·N·K``: ``x − w``, ``|·|``, accumulate
WHT layer           0 (a module may report its own)       ``n·log2 n`` per length-``n`` transform
BatchNorm           ``N`` (inference form ``a·x + b``)    ``N``
average pool        ``N`` (the division)                  numel of the input
ReLU, dropout, …    0 (comparisons are not counted)       0
==================  ====================================  =========================================

BatchNorm is counted, not folded: after a convolution it could be folded into the weights, after
an adder or WHT layer it cannot, so the multiplier-free story has to pay for it.  A WHT layer
counts a forward and an inverse transform per vector (``WHTPointwise``: one length-``n`` vector
per pixel, ``n`` = next power of two ≥ the channels; ``WHTSpatial``: one ``H·W`` image per
channel) plus ``n`` additions for soft-thresholding; a module defining
``op_counts(input, output) -> (mults, adds)`` is asked instead.  ``activation_bytes`` is the
size of each counted module's output, and its total what a backward pass keeps, roughly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from mnf import _check
from mnf.metrics import model_dtype, probe, resolve_device

WHT_NAMES = ("WHTPointwise", "WHTSpatial")
WHOLE = ("Adder2d",) + WHT_NAMES


@dataclass
class LayerCost:
    """One counted module: name, class, output shape, and its counts for one forward pass."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    mults: int
    adds: int
    activation_bytes: int


@dataclass
class CostReport:
    """Per-layer :class:`LayerCost` rows; ``totals`` sums them; ``str()`` / ``to_markdown()`` print them."""

    layers: list[LayerCost]
    input_size: tuple[int, ...]
    params_total: int = 0
    columns: tuple[str, ...] = field(default=("params", "mults", "adds", "activation_bytes"), repr=False)

    @property
    def totals(self) -> dict[str, int]:
        """``{"params", "mults", "adds", "activation_bytes"}`` summed over the layers (params over the model)."""
        sums = {c: sum(getattr(row, c) for row in self.layers) for c in self.columns}
        sums["params"] = self.params_total
        return sums

    def rows(self) -> list[list[str]]:
        out = [[r.name, r.kind, "×".join(map(str, r.output_shape))] + [f"{getattr(r, c):,}" for c in self.columns]
               for r in self.layers]
        return out + [["total", "", ""] + [f"{v:,}" for v in self.totals.values()]]

    def __str__(self) -> str:
        head = ["layer", "type", "output"] + list(self.columns)
        rows = [head] + self.rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        return "\n".join("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                         for r in rows)

    def to_markdown(self) -> str:
        head = ["layer", "type", "output"] + list(self.columns)
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * len(self.columns)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in self.rows()])


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def wht_adds(n: int) -> int:
    """Additions of one fast WHT of length ``n`` (a power of two): ``n·log2 n``."""
    from mnf.transforms.orderings import check_size
    n = check_size(n, "n")
    return n * (n.bit_length() - 1)


def op_counts(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
    """``(multiplications, additions)`` of one call ``y = module(x)`` under the rules above."""
    kind, n = type(module).__name__, y.numel()
    if hasattr(module, "op_counts"):
        return tuple(int(v) for v in module.op_counts(x, y))  # type: ignore[return-value]
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        k = module.weight[0].numel()
        return n * k, n * k + (n if module.bias is not None else 0)
    if kind == "Adder2d":
        return 0, 3 * n * module.weight[0].numel()
    if kind == "WHTPointwise":
        length = _pow2(max(x.shape[1], y.shape[1]))
        vectors = y.shape[0] * x.shape[2] * x.shape[3]
        return 0, vectors * (2 * wht_adds(length) + length)
    if kind == "WHTSpatial":
        length = _pow2(x.shape[2]) * _pow2(x.shape[3])
        vectors = x.shape[0] * x.shape[1]
        return 0, vectors * (2 * wht_adds(length) + length)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return n, n
    if isinstance(module, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
        return n, x.numel()
    return 0, 0


def counted_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaves and whole adder/WHT layers, in definition order (their submodules are not listed)."""
    out, skip = [], []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in skip):
            continue
        if type(module).__name__ in WHOLE or next(module.children(), None) is None:
            out.append((name or type(module).__name__, module))
            skip.append(name)
    return out


def cost_table(model: nn.Module, input_size: tuple[int, ...] = (1, 3, 32, 32),
               device: torch.device | str | None = None) -> CostReport:
    """Count ``model`` on a zero input of ``input_size``.

    The input is made on the model's device in its floating dtype (:func:`mnf.metrics.model_device`,
    :func:`mnf.metrics.model_dtype`; ``device``, if given, must be the model's, see
    :func:`mnf.metrics.resolve_device`); a model with neither parameters nor buffers runs on the
    CPU.  The forward pass runs in eval mode under ``no_grad`` with forward hooks; modes and hooks
    are restored / removed afterwards, also when the model raises.  The report holds Python ints.
    ``activation_bytes`` uses the model's dtype (8 bytes a value for a float64 model).
    ``input_size``: four ints >= 1 (else ``ValueError``); a size the model's layers cannot take
    raises the model's own error.
    """
    _check.module("model", model, "cost_table")
    if not isinstance(input_size, (tuple, list)):
        raise _check.ArgumentTypeError(f"input_size must be (N, C, H, W), four positive ints, got {input_size!r}")
    if len(input_size) != 4 or not all(_check.is_int(d) and d >= 1 for d in input_size):
        raise ValueError(f"input_size must be (N, C, H, W), four positive ints, got {input_size!r}")
    input_size = tuple(int(d) for d in input_size)
    _check.size(f"an input of input_size={input_size}", math.prod(input_size), 8, "cost_table")
    device = resolve_device(model, device)
    rows: list[LayerCost] = []

    def hook_for(name: str):
        def hook(m: nn.Module, args: tuple, y: torch.Tensor) -> None:
            mults, adds = op_counts(m, args[0], y)
            rows.append(LayerCost(name, type(m).__name__, tuple(y.shape), sum(p.numel() for p in m.parameters()),
                                  mults, adds, y.numel() * y.element_size()))
        return hook

    with probe(model, [(module, hook_for(name)) for name, module in counted_modules(model)]):
        model(torch.zeros(input_size, device=device, dtype=model_dtype(model)))
    return CostReport(rows, tuple(input_size), sum(p.numel() for p in model.parameters()))
