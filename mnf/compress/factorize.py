"""Low-rank factorization of ``nn.Linear`` and ``nn.Conv2d`` layers by truncated SVD (Çallı 2017 §1.3).

A weight matrix ``W`` (``m × n``: outputs × inputs; for a convolution ``n = Cin·k·k``) is
replaced by its best rank-``r`` approximation ``W ≈ A·B`` with ``A = U_r`` (``m × r``) and
``B = S_r·V_rᵀ`` (``r × n``).  The layer becomes two smaller ones:

=====================  ================================================================
layer                  replacement (``nn.Sequential``)
=====================  ================================================================
``Linear(n, m)``       ``Linear(n, r, bias=False)`` → ``Linear(r, m)`` (bias kept)
``Conv2d(Cin, m, k)``  ``Conv2d(Cin, r, k, stride, padding, dilation)`` → ``Conv2d(r, m, 1)``
=====================  ================================================================

Parameters and multiply-adds per output position go from ``m·n`` to ``r·(m + n)``, a saving
when ``r < m·n / (m + n)``.  At full rank the product ``A·B`` equals ``W`` up to rounding.

    report = factorize(model, energy=0.9)       # keep 90 % of each layer's squared singular values
    print(report)                               # per layer: rank, params and MACs before / after
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import Tensor, nn

from mnf import _check
from mnf.metrics import model_device, model_dtype, probe


@dataclass
class FactorRow:
    """One factorized (or skipped) layer: shapes, chosen rank, counts before and after."""

    name: str
    kind: str
    shape: tuple[int, int]          # (m, n) of the weight matrix
    rank: int
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    rel_error: float                # ||W - A B||_F / ||W||_F
    energy: float                   # fraction of sum(s²) kept
    skipped: str = ""               # reason, when the layer was left as it was


@dataclass
class FactorizationReport:
    """Rows of :class:`FactorRow`; ``totals`` sums parameters and MACs over factorized layers."""

    rows: list[FactorRow] = field(default_factory=list)
    positions_known: bool = False   # MACs include output positions (an input_size was given)

    @property
    def factorized(self) -> list[FactorRow]:
        return [r for r in self.rows if not r.skipped]

    @property
    def totals(self) -> dict[str, int]:
        rows = self.factorized
        return {"params_before": sum(r.params_before for r in rows),
                "params_after": sum(r.params_after for r in rows),
                "macs_before": sum(r.macs_before for r in rows),
                "macs_after": sum(r.macs_after for r in rows)}

    @property
    def params_saved(self) -> int:
        t = self.totals
        return t["params_before"] - t["params_after"]

    @property
    def macs_saved(self) -> int:
        t = self.totals
        return t["macs_before"] - t["macs_after"]

    def __str__(self) -> str:
        unit = "MACs" if self.positions_known else "MACs/position"
        head = f"{'layer':<28}{'m×n':>12}{'rank':>6}{'params':>20}{unit:>24}{'rel.err':>9}"
        lines = [head]
        for r in self.rows:
            if r.skipped:
                lines.append(f"{r.name:<28}{r.shape[0]}×{r.shape[1]:<6}  skipped: {r.skipped}")
                continue
            shape = f"{r.shape[0]}×{r.shape[1]}"
            params = f"{r.params_before:,} → {r.params_after:,}"
            macs = f"{r.macs_before:,} → {r.macs_after:,}"
            lines.append(f"{r.name:<28}{shape:>12}{r.rank:>6}{params:>20}{macs:>24}{r.rel_error:>9.4f}")
        t = self.totals
        params = f"{t['params_before']:,} → {t['params_after']:,}"
        macs = f"{t['macs_before']:,} → {t['macs_after']:,}"
        lines.append(f"{'total':<28}{'':>18}{params:>20}{macs:>24}")
        return "\n".join(lines)


def weight_matrix(layer: nn.Module) -> Tensor:
    """The ``(m, n)`` matrix of a Linear or (ungrouped) Conv2d: ``weight.reshape(out, -1)``."""
    check_layer(layer, "layer")
    return layer.weight.detach().reshape(layer.weight.shape[0], -1)


def check_layer(layer: nn.Module, name: str) -> None:
    """Raise TypeError / ValueError unless ``layer`` is a Linear or an ungrouped Conv2d."""
    if isinstance(layer, nn.Linear):
        return
    if isinstance(layer, nn.Conv2d) and type(layer) is nn.Conv2d:
        if layer.groups != 1:
            raise ValueError(f"{name}: Conv2d with groups={layer.groups} (e.g. depthwise) is a stack of "
                             "small per-group matrices; SVD factorization handles groups=1 only")
        return
    raise TypeError(f"{name}: {type(layer).__name__} cannot be factorized by SVD; expected nn.Linear "
                    "or nn.Conv2d (adder and WHT layers have no weight matrix to decompose)")


def choose_rank(singular_values: Tensor, rank: int | None = None, energy: float | None = None) -> int:
    """The rank to keep: ``rank`` (clipped to the full rank), or the smallest rank whose squared
    singular values sum to at least ``energy`` (0 < energy <= 1) of the total."""
    if (rank is None) == (energy is None):
        raise ValueError(f"give exactly one of rank and energy, got rank={rank!r}, energy={energy!r}")
    _check.tensor("singular_values", singular_values, "choose_rank", ndim=1)
    full = len(singular_values)
    if rank is not None:
        rank = _check.positive_int("rank", rank, "choose_rank")
        return min(rank, full)
    energy = _check.real("energy", energy, 0, 1, low_open=True, owner="choose_rank")
    power = singular_values.double() ** 2
    kept = torch.cumsum(power, 0) / power.sum().clamp_min(1e-300)
    return min(full, int((kept < energy - 1e-12).sum()) + 1)   # a comparison: no tensor on another device


def factorize_layer(layer: nn.Module, rank: int | None = None, energy: float | None = None,
                    name: str = "layer") -> tuple[nn.Sequential, FactorRow]:
    """Replace one Linear / Conv2d by two (see the module doc); returns ``(new_module, row)``.

    ``row`` counts MACs per output position (one for a Linear on a vector).
    """
    check_layer(layer, name)
    w = weight_matrix(layer)
    _check.finite_tensor("weight", w, name, "weights (SVD of NaN or infinite weights is undefined)")
    m, n = w.shape
    u, s, vh = torch.linalg.svd(w.double(), full_matrices=False)
    r = choose_rank(s, rank, energy)
    a, b = u[:, :r].to(w.dtype), (s[:r, None] * vh[:r]).to(w.dtype)
    bias = layer.bias is not None
    device, dtype = layer.weight.device, layer.weight.dtype
    if isinstance(layer, nn.Linear):
        first = nn.Linear(n, r, bias=False, device=device, dtype=dtype)
        second = nn.Linear(r, m, bias=bias, device=device, dtype=dtype)
        first.weight.data.copy_(b)
        second.weight.data.copy_(a)
    else:
        first = nn.Conv2d(layer.in_channels, r, layer.kernel_size, layer.stride, layer.padding,
                          layer.dilation, bias=False, padding_mode=layer.padding_mode, device=device, dtype=dtype)
        second = nn.Conv2d(r, m, 1, bias=bias, device=device, dtype=dtype)
        first.weight.data.copy_(b.reshape(first.weight.shape))
        second.weight.data.copy_(a.reshape(second.weight.shape))
    if bias:
        second.bias.data.copy_(layer.bias.detach())
    error = (torch.linalg.norm(w.double() - a.double() @ b.double()) / torch.linalg.norm(w.double()).clamp_min(1e-300))
    kept = float((s[:r] ** 2).sum() / (s ** 2).sum().clamp_min(1e-300))
    row = FactorRow(name, type(layer).__name__, (m, n), r, m * n + (m if bias else 0),
                    r * (m + n) + (m if bias else 0), m * n, r * (m + n), float(error), kept)
    return nn.Sequential(first, second), row


def _positions(model: nn.Module, names: list[str], input_size: tuple[int, ...]) -> dict[str, int]:
    """Output positions (numel / out features) of the named modules for one forward pass on a
    zero input made on the model's device in its dtype (eval mode, no_grad; restored afterwards)."""
    modules = dict(model.named_modules())
    found: dict[str, int] = {}

    def hook(n: str):
        return lambda mod, inp, out: found.__setitem__(n, out.numel() // out.shape[1 if out.dim() > 2 else -1])

    with probe(model, [(modules[n], hook(n)) for n in names]):
        model(torch.zeros(input_size, device=model_device(model), dtype=model_dtype(model)))
    return found


def factorize(model: nn.Module, rank: int | None = None, energy: float | None = None,
              layers: Iterable[str] | None = None, *, input_size: tuple[int, ...] | None = None,
              only_if_smaller: bool = True) -> FactorizationReport:
    """Factorize layers of ``model`` in place by truncated SVD and report what was saved.

    rank / energy     exactly one: a fixed rank per layer, or the fraction of squared singular
                      values each layer keeps (its own rank).
    layers            names (as in ``model.named_modules()``) to factorize; a named layer that is
                      not a Linear / ungrouped Conv2d raises TypeError / ValueError.  ``None``:
                      every Linear and ungrouped Conv2d (others are skipped silently).
    input_size        e.g. ``(1, 3, 32, 32)``: run one forward pass first (on a zero input made on
                      the model's device, in its dtype, in eval mode; modes and hooks restored)
                      so MACs count every output position; otherwise MACs are per output position.
    only_if_smaller   leave (and report as skipped) layers whose factorization would not have
                      fewer parameters than the original.
    """
    if (rank is None) == (energy is None):
        raise ValueError(f"give exactly one of rank and energy, got rank={rank!r}, energy={energy!r}")
    owner = "factorize"
    _check.module("model", model, owner)
    _check.flag("only_if_smaller", only_if_smaller, owner)
    if rank is not None:
        _check.positive_int("rank", rank, owner)
    else:
        _check.real("energy", energy, 0, 1, low_open=True, owner=owner)
    if input_size is not None:
        if not isinstance(input_size, (tuple, list)) or not all(_check.is_int(d) for d in input_size):
            raise _check.ArgumentTypeError(f"{owner}: input_size must be a tuple of positive ints such as "
                                           f"(1, 3, 32, 32), got {input_size!r}")
        if not input_size or min(input_size) < 1:
            raise ValueError(f"{owner}: input_size must be a tuple of positive ints such as (1, 3, 32, 32), "
                             f"got {input_size!r}")
    if layers is not None and (isinstance(layers, str) or not isinstance(layers, Iterable)):
        raise _check.ArgumentTypeError(f"{owner}: layers must be an iterable of layer names or None, got {layers!r}")
    if type(model) in (nn.Linear, nn.Conv2d):
        raise TypeError(f"factorize() replaces layers inside a model; for a bare {type(model).__name__} "
                        "use factorize_layer(), which returns the replacement")
    modules = dict(model.named_modules())
    if layers is None:
        names = [n for n, m in modules.items() if n and type(m) in (nn.Linear, nn.Conv2d)
                 and getattr(m, "groups", 1) == 1]
    else:
        names = list(layers)
        for n in names:
            if n not in modules:
                raise ValueError(f"no layer named {n!r} in {type(model).__name__}; "
                                 f"valid names include {[k for k in modules if k][:8]}")
            check_layer(modules[n], n)
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear or ungrouped nn.Conv2d to factorize")
    for n in names:   # all checked before any layer is replaced
        _check.finite_tensor("weight", modules[n].weight, n, "weights (SVD of NaN or infinite weights is undefined)")
    positions = _positions(model, names, input_size) if input_size is not None else {}
    report = FactorizationReport(positions_known=input_size is not None)
    for n in names:
        new, row = factorize_layer(modules[n], rank, energy, name=n)
        p = positions.get(n, 1)
        row.macs_before *= p
        row.macs_after *= p
        if only_if_smaller and row.params_after >= row.params_before:
            row.skipped = (f"rank {row.rank} would not save parameters "
                               f"(needs rank < m·n/(m+n) = {row.shape[0] * row.shape[1] / sum(row.shape):.1f})")
            report.rows.append(row)
            continue
        model.set_submodule(n, new)
        report.rows.append(row)
    return report
