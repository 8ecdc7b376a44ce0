"""Replace chosen 1×1 convolutions of a model with WHT layers and report the parameter change.

    report = swap_layers(model, lambda name, conv: conv.out_channels == 1280)   # the last 1×1
    report = swap_layers(model, ["features.18.0"])                              # by name
    print(report)                                                               # a table

Only plain 1×1 convolutions qualify: ``kernel_size == (1, 1)``, ``groups == 1``, no padding or
dilation (a 1×1 depthwise conv is not a channel mix). The model is changed in place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from torch import nn

from mnf import _check
from mnf.layers.wht import WHTPointwise

Select = Callable[[str, nn.Conv2d], bool] | Iterable[str]
Factory = Callable[[nn.Conv2d], nn.Module]


def is_pointwise(conv: nn.Module) -> bool:
    """True for an ``nn.Conv2d`` that mixes channels per pixel (1×1, groups 1, no padding/dilation)."""
    return (isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.groups == 1
            and conv.padding in ((0, 0), "valid") and conv.dilation == (1, 1)
            and conv.stride[0] == conv.stride[1])


def wht_factory(conv: nn.Conv2d) -> nn.Module:
    """Default replacement: ``WHTPointwise(conv.in_channels, conv.out_channels, conv.stride[0])``.

    Expansions repeat their input channels (``WHTPointwise``'s default ``expand="repeat"``), so
    a batch norm after the layer sees signal in every channel.
    """
    return WHTPointwise(conv.in_channels, conv.out_channels, conv.stride[0])


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass
class SwapRow:
    """One replaced layer: its name, channels, stride and parameters before / after."""

    name: str
    in_channels: int
    out_channels: int
    stride: int
    before: int
    after: int


@dataclass
class SwapReport:
    """What :func:`swap_layers` replaced; ``str(report)`` is a table."""

    rows: list[SwapRow] = field(default_factory=list)
    model_before: int = 0
    model_after: int = 0

    @property
    def saved(self) -> int:
        """Parameters removed from the model."""
        return self.model_before - self.model_after

    def __str__(self) -> str:
        head = f"{'layer':<28}{'in':>6}{'out':>6}{'stride':>7}{'conv params':>13}{'WHT params':>12}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r.name:<28}{r.in_channels:>6}{r.out_channels:>6}{r.stride:>7}"
                         f"{r.before:>13,}{r.after:>12,}")
        lines.append("-" * len(head))
        pct = 100.0 * self.saved / self.model_before if self.model_before else 0.0
        lines.append(f"{len(self.rows)} layers replaced; model parameters {self.model_before:,} -> "
                     f"{self.model_after:,} ({pct:.1f}% fewer)")
        return "\n".join(lines)


def swap_layers(model: nn.Module, select: Select, factory: Factory = wht_factory) -> SwapReport:
    """Replace the selected 1×1 ``nn.Conv2d`` layers of ``model`` (in place) by ``factory(conv)``.

    Args:
        model: any module; it is modified in place.
        select: ``select(name, conv) -> bool`` asked for every 1×1 conv (others are skipped), or
            an iterable of module names (``model.named_modules()`` names); a named module that
            is missing or not a 1×1 conv raises ``ValueError``.
        factory: builds the replacement from the conv; default :func:`wht_factory`. A conv
            bias is dropped (the WHT layers have none; a following BatchNorm absorbs it).

    Returns:
        A :class:`SwapReport` with one row per replaced layer and the model's parameter totals.
    """
    _check.module("model", model, "swap_layers")
    if not callable(factory):
        raise _check.ArgumentTypeError(f"swap_layers: factory must be a callable conv -> nn.Module, got "
                                       f"{type(factory).__name__}")
    modules = dict(model.named_modules())
    if callable(select):
        names = [n for n, m in modules.items() if is_pointwise(m) and select(n, m)]
    else:
        if not isinstance(select, (str, Iterable)):
            raise _check.ArgumentTypeError(f"swap_layers: select must be a callable (name, conv) -> bool or an "
                                           f"iterable of module names, got {type(select).__name__}")
        names = [select] if isinstance(select, str) else list(select)
        for n in names:
            if n not in modules:
                raise ValueError(f"model has no module named {n!r}")
            if not is_pointwise(modules[n]):
                raise ValueError(f"{n!r} is {modules[n]!r}; expected a 1×1 nn.Conv2d with groups=1, "
                                 "no padding or dilation")
    report = SwapReport(model_before=_count(model))
    for name in names:
        conv = modules[name]
        new = factory(conv)
        if not isinstance(new, nn.Module):
            raise _check.ArgumentTypeError(f"swap_layers: factory({name}) returned {type(new).__name__}, "
                                           "expected an nn.Module")
        new = new.to(device=conv.weight.device, dtype=conv.weight.dtype)
        model.set_submodule(name, new)
        report.rows.append(SwapRow(name, conv.in_channels, conv.out_channels, conv.stride[0],
                                   _count(conv), _count(new)))
    report.model_after = _count(model)
    return report
