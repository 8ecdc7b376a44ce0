"""Parameters, multiplications, additions and activation memory of a model, layer by layer.

``cost_table(model, (1, 3, 32, 32))`` runs one forward pass on a zero input (made on the model's
device, in its dtype) with forward hooks and counts, for every *counted* module (a leaf, or a
module that counts itself, taken as a whole), with ``K`` the number of inputs one output reads
and ``N`` the output's numel:

==================  ====================================  =========================================
module              multiplications                       additions / subtractions
==================  ====================================  =========================================
Conv2d, Linear      ``N·K`` (one per MAC)                 ``N·K`` (one per MAC) ``+ N`` with a bias
BatchNorm           ``N`` (inference form ``a·x + b``)    ``N``
average pool        ``N`` (the division)                  numel of the input
ReLU, dropout, …    0 (comparisons are not counted)       0
counts itself       its ``op_counts(x, y)``               its ``op_counts(x, y)``
==================  ====================================  =========================================

A module counts itself by defining ``op_counts(x, y) -> (mults, adds)`` for one call
``y = module(x)`` (the :class:`CountsOps` protocol); the mnf layers do: ``Adder2d`` (0 and
``3·N·K``: ``x − w``, ``|·|``, accumulate), ``WHTPointwise`` / ``WHTSpatial`` (a forward and an
inverse transform per vector, ``n·log2 n`` additions each, plus the thresholds and scales),
the quantized layers of :mod:`mnf.compress.quantize` and ``mnf.models.small.Gate``.  Such a
module is counted as a whole: its submodules are not listed.

BatchNorm is counted, not folded: after a convolution it could be folded into the weights, after
an adder or WHT layer it cannot, so the multiplier-free story has to pay for it.
``activation_bytes`` is the size of each counted module's output, and its total what a backward
pass keeps, roughly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from mnf import _check
from mnf.metrics import model_dtype, probe, resolve_device


@runtime_checkable
class CountsOps(Protocol):
    """A module that reports its own ``(multiplications, additions)`` for one call ``y = module(x)``."""

    def op_counts(self, x: torch.Tensor, y: torch.Tensor) -> tuple[int, int]: ...


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


def op_counts(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
    """``(multiplications, additions)`` of one call ``y = module(x)`` under the rules above."""
    if isinstance(module, CountsOps):
        mults, adds = module.op_counts(x, y)
        return int(mults), int(adds)
    n = y.numel()
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        k = module.weight[0].numel()
        return n * k, n * k + (n if module.bias is not None else 0)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return n, n
    if isinstance(module, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
        return n, x.numel()
    return 0, 0


def counted_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaves and modules that count themselves (:class:`CountsOps`), in definition order (the
    submodules of the latter are not listed)."""
    out, skip = [], []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in skip):
            continue
        if isinstance(module, CountsOps) or next(module.children(), None) is None:
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
