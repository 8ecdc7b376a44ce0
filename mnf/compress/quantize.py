"""Post-training weight quantization: 8-bit storage with a dequantised forward, and n-bit fake quantization.

Symmetric uniform quantization of a weight tensor ``w`` to ``b`` bits (one of the methods Çallı 2017 lists in §1.6)::

    q_max = 2^(b−1) − 1,   scale = max|w| / q_max,   q = clamp(round(w / scale), −q_max, q_max),   ŵ = q · scale

with one ``scale`` per output channel (``per_channel=True``, axis 0 of a Linear / Conv2d / Adder2d
weight) or one for the whole tensor.  Rounding to the nearest level bounds the error of every
weight by half a step: ``|w − ŵ| <= scale / 2``.  ``b`` bits store a weight in ``b/32`` of a
float32's memory (plus one float32 scale per channel).

- :func:`quantize` swaps Linear / Conv2d layers for :class:`QuantizedLinear` /
  :class:`QuantizedConv2d`, which hold the integer weights (``int8`` for ``b <= 8``) and the
  scales, and dequantise on the fly in ``forward`` (what a deployment with integer storage and
  a float pipeline does; an integer-arithmetic kernel would also quantise the activations).
- :func:`fake_quantize` rounds the weights in place (also ``Adder2d`` weights) and keeps float
  storage: the tool for accuracy-vs-bits curves.

Both return a :class:`QuantReport` with the reconstruction error of every layer.  Other
parameters (batch norm, WHT thresholds, biases) stay float32.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnf import _check
from mnf.layers.adder import Adder2d


def _check_bits(bits: int) -> int:
    """``bits`` as an int in [2, 16] (symmetric quantization needs a sign bit and a magnitude bit)."""
    return _check.integer("bits", bits, 2, 16)


def quantize_tensor(w: Tensor, bits: int = 8, per_channel: bool = True) -> tuple[Tensor, Tensor]:
    """``(q, scale)``: integer levels ``q`` (``int8`` for ``bits <= 8``, else ``int16``) of ``w``'s
    shape, and ``scale`` of shape ``(C, 1, ..., 1)`` per channel (axis 0) or ``()`` per tensor,
    so that ``q * scale`` approximates ``w`` with ``|w − q·scale| <= scale / 2``."""
    _check_bits(bits)
    _check.floating_tensor("w", w, "quantize_tensor")
    per_channel = _check.flag("per_channel", per_channel, "quantize_tensor")
    _check.finite_tensor("w", w, "quantize_tensor", "weights (a NaN or infinite weight has no integer level)")
    qmax = 2 ** (bits - 1) - 1
    w = w.detach()
    if w.numel() == 0:   # nothing to quantize: no levels, unit scales of the documented shape
        shape = (w.shape[0],) + (1,) * (w.dim() - 1) if per_channel and w.dim() > 1 else ()
        return torch.zeros(w.shape, dtype=torch.int8 if bits <= 8 else torch.int16, device=w.device), \
            torch.ones(shape, device=w.device)
    if per_channel and w.dim() > 1:
        peak = w.abs().reshape(w.shape[0], -1).amax(1).reshape((-1,) + (1,) * (w.dim() - 1))
    else:
        peak = w.abs().amax()
    scale = torch.where(peak > 0, peak / qmax, torch.ones_like(peak)).float()
    q = torch.clamp(torch.round(w / scale), -qmax, qmax)
    return q.to(torch.int8 if bits <= 8 else torch.int16), scale


def dequantize(q: Tensor, scale: Tensor) -> Tensor:
    """``q · scale`` as float32."""
    _check.tensor("q", q, "dequantize")
    _check.tensor("scale", scale, "dequantize")
    return q.float() * scale


def fake_quant(w: Tensor, bits: int, per_channel: bool = True) -> Tensor:
    """``w`` rounded to ``bits``-bit symmetric levels, as a float tensor of the same dtype."""
    q, scale = quantize_tensor(w, bits, per_channel)
    return dequantize(q, scale).to(w.dtype)


class _Quantized(nn.Module):
    """Shared storage of the quantized layers: ``qweight`` (integers) and ``scale`` buffers."""

    def _store(self, weight: Tensor, bias: Tensor | None, bits: int, per_channel: bool) -> None:
        q, scale = quantize_tensor(weight, bits, per_channel)
        self.bits, self.per_channel = bits, per_channel
        self.register_buffer("qweight", q)
        self.register_buffer("scale", scale.to(weight.device))
        self.bias = nn.Parameter(bias.detach().clone()) if bias is not None else None

    def dequantized_weight(self) -> Tensor:
        return dequantize(self.qweight, self.scale)

    def storage_bytes(self) -> int:
        """Bytes of the weights as stored: ``bits`` per weight (rounded up) plus float32 scales."""
        return -(-self.qweight.numel() * self.bits // 8) + 4 * self.scale.numel()


class QuantizedLinear(_Quantized):
    """``nn.Linear`` with ``bits``-bit integer weights: ``y = x (q·scale)ᵀ + b``; ``(N, in) → (N, out)``."""

    def __init__(self, layer: nn.Linear, bits: int = 8, per_channel: bool = True):
        super().__init__()
        _check.instance("layer", layer, nn.Linear, "an nn.Linear", "QuantizedLinear")
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self._store(layer.weight, layer.bias, bits, per_channel)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.dequantized_weight().to(x.dtype), self.bias)

    def op_counts(self, x: Tensor, y: Tensor) -> tuple[int, int]:
        n = y.numel()
        return n * self.in_features, n * self.in_features + (n if self.bias is not None else 0)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bits={self.bits}, per_channel={self.per_channel}"


class QuantizedConv2d(_Quantized):
    """``nn.Conv2d`` with ``bits``-bit integer weights (same hyper-parameters, dequantised forward)."""

    def __init__(self, layer: nn.Conv2d, bits: int = 8, per_channel: bool = True):
        super().__init__()
        _check.instance("layer", layer, nn.Conv2d, "an nn.Conv2d", "QuantizedConv2d")
        self.in_channels, self.out_channels = layer.in_channels, layer.out_channels
        self.kernel_size, self.stride, self.padding = layer.kernel_size, layer.stride, layer.padding
        self.dilation, self.groups, self.padding_mode = layer.dilation, layer.groups, layer.padding_mode
        if layer.padding_mode != "zeros":
            raise ValueError(f"QuantizedConv2d supports padding_mode='zeros', got {layer.padding_mode!r}")
        self._store(layer.weight, layer.bias, bits, per_channel)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.dequantized_weight().to(x.dtype), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)

    def op_counts(self, x: Tensor, y: Tensor) -> tuple[int, int]:
        n, k = y.numel(), self.qweight[0].numel()
        return n * k, n * k + (n if self.bias is not None else 0)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, groups={self.groups}, bits={self.bits}, per_channel={self.per_channel}")


@dataclass
class QuantRow:
    name: str
    kind: str
    weights: int
    bits: int
    bytes_before: int
    bytes_after: int
    rel_error: float               # ||w − ŵ||_F / ||w||_F
    max_error: float               # max |w − ŵ|
    bound: float                   # max scale / 2: the guaranteed bound on max_error


@dataclass
class QuantReport:
    rows: list[QuantRow] = field(default_factory=list)
    float_params: int = 0          # parameters left in float32 (BN, biases, WHT thresholds, ...)

    @property
    def weight_bytes(self) -> tuple[int, int]:
        """Bytes of the quantized layers' weights before (float32) and after."""
        return sum(r.bytes_before for r in self.rows), sum(r.bytes_after for r in self.rows)

    @property
    def model_bytes(self) -> tuple[int, int]:
        """Bytes of all parameters before and after (the float parameters at 4 bytes each)."""
        before, after = self.weight_bytes
        return before + 4 * self.float_params, after + 4 * self.float_params

    def __str__(self) -> str:
        lines = [f"{'layer':<30}{'kind':>10}{'weights':>10}{'bits':>5}{'rel.err':>10}{'max err':>10}{'≤ bound':>10}"]
        lines += [f"{r.name:<30}{r.kind:>10}{r.weights:>10,}{r.bits:>5}{r.rel_error:>10.2e}{r.max_error:>10.2e}"
                  f"{r.bound:>10.2e}" for r in self.rows]
        b, a = self.model_bytes
        lines.append(f"parameter memory {b:,} B → {a:,} B ({b / max(a, 1):.2f}× smaller)")
        return "\n".join(lines)


QUANTIZABLE = (nn.Linear, nn.Conv2d)


def _select(model: nn.Module, layers: Iterable[str] | None, allow_adder: bool) -> list[str]:
    modules = dict(model.named_modules())

    def selectable(m: nn.Module) -> bool:
        return type(m) in QUANTIZABLE or (allow_adder and isinstance(m, Adder2d))

    if layers is None:
        names = [n for n, m in modules.items() if n and selectable(m)]
        if not names:
            raise ValueError(f"{type(model).__name__} has no nn.Linear / nn.Conv2d"
                             f"{' / Adder2d' if allow_adder else ''} weights to quantize")
        return names
    names = list(layers)
    for n in names:
        if n not in modules:
            raise ValueError(f"no layer named {n!r} in {type(model).__name__}")
        m = modules[n]
        if selectable(m):
            continue
        if isinstance(m, Adder2d):
            raise TypeError(f"{n}: Adder2d has no integer-storage version here; use fake_quantize() "
                            "to study its weights at n bits")
        raise TypeError(f"{n}: {type(m).__name__} cannot be weight-quantized: expected nn.Linear or nn.Conv2d"
                        f"{' or Adder2d' if allow_adder else ''} (WHT layers have no weight matrix; "
                        "their thresholds stay float)")
    return names


def _row(name: str, m: nn.Module, w: Tensor, bits: int, per_channel: bool) -> QuantRow:
    q, scale = quantize_tensor(w, bits, per_channel)
    w_hat = dequantize(q, scale)
    diff = (w.detach().float() - w_hat)
    rel = float(torch.linalg.norm(diff) / torch.linalg.norm(w.detach().float()).clamp_min(1e-30))
    return QuantRow(name, type(m).__name__, w.numel(), bits, 4 * w.numel(),
                    -(-w.numel() * bits // 8) + 4 * scale.numel(), rel, float(diff.abs().max()),
                    float(scale.max() / 2))


def _float_params(model: nn.Module, names: list[str]) -> int:
    modules = dict(model.named_modules())
    quantized = {id(modules[n].weight) for n in names if isinstance(getattr(modules[n], "weight", None), Tensor)}
    return sum(p.numel() for p in model.parameters() if id(p) not in quantized)


def _start(model: nn.Module, layers, bits: int, allow_adder: bool, per_channel: bool):
    """Checked arguments (all of them before any layer changes), the selected layer names,
    name→module, and a report with the float count."""
    owner = "fake_quantize" if allow_adder else "quantize"
    _check_bits(bits)
    _check.module("model", model, owner)
    _check.flag("per_channel", per_channel, owner)
    if layers is not None and (isinstance(layers, str) or not isinstance(layers, Iterable)):
        raise _check.ArgumentTypeError(f"{owner}: layers must be an iterable of layer names or None, got {layers!r}")
    names = _select(model, layers, allow_adder=allow_adder)
    modules = dict(model.named_modules())
    for n in names:
        w = modules[n].weight
        if not bool(torch.isfinite(w).all()):
            raise ValueError(f"{owner}: {n}'s weight holds {int((~torch.isfinite(w)).sum())} NaN or infinite "
                             "values, which have no integer level; nothing was changed")
    report = QuantReport()
    report.float_params = _float_params(model, names)
    return names, dict(model.named_modules()), report


def quantize(model: nn.Module, bits: int = 8, per_channel: bool = True,
             layers: Iterable[str] | None = None) -> QuantReport:
    """Replace Linear / Conv2d layers of ``model`` (in place) by integer-weight versions.

    layers  names to quantize; ``None``: every nn.Linear and nn.Conv2d.  A named layer of another
            kind raises TypeError naming it.
    """
    names, modules, report = _start(model, layers, bits, allow_adder=False, per_channel=per_channel)
    for n in names:
        m = modules[n]
        report.rows.append(_row(n, m, m.weight, bits, per_channel))
        new = QuantizedLinear(m, bits, per_channel) if isinstance(m, nn.Linear) else QuantizedConv2d(m, bits, per_channel)
        model.set_submodule(n, new)
    return report


@torch.no_grad()
def fake_quantize(model: nn.Module, bits: int, per_channel: bool = True,
                  layers: Iterable[str] | None = None) -> QuantReport:
    """Round the weights of Linear / Conv2d / Adder2d layers of ``model`` in place to ``bits`` bits."""
    names, modules, report = _start(model, layers, bits, allow_adder=True, per_channel=per_channel)
    for n in names:
        m = modules[n]
        report.rows.append(_row(n, m, m.weight, bits, per_channel))
        m.weight.copy_(fake_quant(m.weight, bits, per_channel))
    return report
