"""Weight sharing: every weight of a layer is one of ``k`` shared values (Çallı 2017 §1.3.2).

A layer keeps a *codebook* ``c`` of ``k`` real numbers and, for every weight, an *index* into it::

    w[i] ≈ c[d[i]],   d[i] ∈ {0, …, k−1}

so it stores ``n`` indices of ``⌈log2 k⌉`` bits and ``k`` float32 values instead of ``n``
float32 weights: ``n·⌈log2 k⌉ + 32·k`` bits against ``32·n`` (:func:`shared_bits`).  The thesis
defines the scheme but not how to choose the values; here they are the centres of a 1-D k-means
clustering of the layer's weights (Lloyd's algorithm, :func:`kmeans_1d`), which minimises
``Σ (w[i] − c[d[i]])²`` locally.  Uniform quantization (:mod:`mnf.compress.quantize`) is the
special case of an evenly spaced codebook that need not be stored.

    from mnf.compress.sharing import share_weights
    report = share_weights(model, k=16)     # in place: every Linear / Conv2d / Adder2d weight → 16 values
    print(report)                           # per layer: k, bits before / after, relative error

:func:`share_weights` rounds the weights in place and keeps float storage (like
:func:`mnf.compress.fake_quantize`): the tool for accuracy-vs-size curves.  :func:`share_tensor`
gives the index / codebook pair itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import Tensor, nn

from mnf.layers.adder import Adder2d

INITS = ("linear", "quantile")


def _check_k(k: int, owner: str) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 65536:
        raise ValueError(f"{owner}: k must be an int in [2, 65536] (the number of shared values; indices of "
                         f"up to 16 bits), got {k!r}")
    return k


def index_bits(k: int) -> int:
    """Bits of one index into a codebook of ``k`` values: ``⌈log2 k⌉`` (1 for ``k = 2``)."""
    _check_k(k, "index_bits")
    return max(1, math.ceil(math.log2(k)))


def shared_bits(n: int, k: int, codebook_bits: int = 32) -> int:
    """Bits to store ``n`` weights shared among ``k`` values: ``n·⌈log2 k⌉ + codebook_bits·k``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"shared_bits: n must be an int >= 0 (the number of weights), got {n!r}")
    if isinstance(codebook_bits, bool) or not isinstance(codebook_bits, int) or codebook_bits < 1:
        raise ValueError(f"shared_bits: codebook_bits must be an int >= 1, got {codebook_bits!r}")
    return n * index_bits(k) + codebook_bits * k


def kmeans_1d(values: Tensor, k: int, iters: int = 50, init: str = "linear") -> tuple[Tensor, Tensor]:
    """Lloyd's k-means on the numbers in ``values`` (any shape): ``(codebook, index)``.

    codebook  ``(k,)`` float32, sorted ascending: the cluster means (a cluster that ends up empty
              keeps its previous centre).
    index     int64, ``values``' shape: the nearest codebook entry of every value.
    init      ``"linear"``: centres evenly spaced between the smallest and the largest value (the
              extremes get centres of their own, so large weights are represented);
              ``"quantile"``: centres at the ``(j + ½)/k`` quantiles (dense where values are dense).

    In one dimension the clusters of sorted values are contiguous runs, so one iteration is a
    ``searchsorted`` of the ``k − 1`` midpoints between centres and ``k`` differences of a prefix sum:
    ``O(k log n)`` after one ``O(n log n)`` sort.  Stops when no value changes cluster, or after
    ``iters`` iterations.  Computed in float64 on ``values``' device.
    """
    _check_k(k, "kmeans_1d")
    if not isinstance(values, Tensor) or not (values.is_floating_point() or values.dtype in (torch.int64, torch.int32)):
        raise ValueError(f"kmeans_1d: values must be a real tensor, got {type(values).__name__}"
                         f"{' of dtype ' + str(values.dtype) if isinstance(values, Tensor) else ''}")
    if values.numel() == 0:
        raise ValueError("kmeans_1d: values is empty; expected at least one number")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
        raise ValueError(f"kmeans_1d: iters must be an int >= 0, got {iters!r}")
    if init not in INITS:
        raise ValueError(f"kmeans_1d: init must be one of {INITS}, got {init!r}")
    flat = values.detach().reshape(-1).double()
    if not torch.isfinite(flat).all():
        raise ValueError("kmeans_1d: values contain NaN or infinity")
    v, _ = torch.sort(flat)
    n = v.numel()
    prefix = torch.cat([v.new_zeros(1), torch.cumsum(v, 0)])
    if init == "linear":
        centres = torch.linspace(float(v[0]), float(v[-1]), k, dtype=torch.float64, device=v.device)
    else:
        centres = torch.quantile(v, (torch.arange(k, dtype=torch.float64, device=v.device) + 0.5) / k)
    starts = None
    for _ in range(iters):
        # cluster j holds the sorted values in [starts[j], starts[j + 1])
        new_starts = torch.cat([v.new_zeros(1, dtype=torch.long),
                                torch.searchsorted(v, (centres[:-1] + centres[1:]) / 2),
                                torch.full((1,), n, dtype=torch.long, device=v.device)])
        if starts is not None and torch.equal(new_starts, starts):
            break
        starts = new_starts
        counts = (starts[1:] - starts[:-1])
        sums = prefix[starts[1:]] - prefix[starts[:-1]]
        centres = torch.where(counts > 0, sums / counts.clamp_min(1), centres)
        centres, _ = torch.sort(centres)
    index = torch.bucketize(flat, (centres[:-1] + centres[1:]) / 2)   # nearest centre (centres sorted)
    return centres.float(), index.reshape(values.shape)


def share_tensor(w: Tensor, k: int, iters: int = 50, init: str = "linear") -> tuple[Tensor, Tensor]:
    """``(index, codebook)`` of ``w`` shared among ``k`` values: ``codebook[index]`` approximates ``w``.

    index     ``w``'s shape, ``uint8`` for ``k <= 256`` else ``int16`` (``int32`` above 32768).
    codebook  ``(k,)`` float32 (see :func:`kmeans_1d`).
    """
    codebook, index = kmeans_1d(w, k, iters, init)
    dtype = torch.uint8 if k <= 256 else torch.int16 if k <= 32768 else torch.int32
    return index.to(dtype), codebook


@dataclass
class ShareRow:
    name: str
    kind: str
    weights: int
    k: int
    bits_before: int                # 32 per weight
    bits_after: int                 # indices + float32 codebook
    rel_error: float                # ||w − ŵ||_F / ||w||_F
    distinct_before: int            # distinct values in the layer before sharing


@dataclass
class ShareReport:
    """Rows of :class:`ShareRow`; ``float_params`` parameters (BN, biases, ...) stay float32."""

    rows: list[ShareRow] = field(default_factory=list)
    float_params: int = 0

    @property
    def weight_bits(self) -> tuple[int, int]:
        """Bits of the shared layers' weights before (float32) and after (indices + codebooks)."""
        return sum(r.bits_before for r in self.rows), sum(r.bits_after for r in self.rows)

    @property
    def model_bytes(self) -> tuple[int, int]:
        """Bytes of all parameters before and after (float parameters at 4 bytes, indices packed)."""
        before, after = self.weight_bits
        return -(-before // 8) + 4 * self.float_params, -(-after // 8) + 4 * self.float_params

    @property
    def bits_per_weight(self) -> float:
        """Average stored bits per shared weight, codebooks included."""
        n = sum(r.weights for r in self.rows)
        return self.weight_bits[1] / max(n, 1)

    def __str__(self) -> str:
        lines = [f"{'layer':<30}{'kind':>10}{'weights':>10}{'k':>6}{'bits/weight':>12}{'rel.err':>10}"]
        lines += [f"{r.name:<30}{r.kind:>10}{r.weights:>10,}{r.k:>6}{r.bits_after / r.weights:>12.2f}"
                  f"{r.rel_error:>10.2e}" for r in self.rows]
        b, a = self.model_bytes
        lines.append(f"parameter memory {b:,} B → {a:,} B ({b / max(a, 1):.2f}× smaller)")
        return "\n".join(lines)


def _sharable(m: nn.Module) -> bool:
    return type(m) in (nn.Linear, nn.Conv2d) or isinstance(m, Adder2d)


@torch.no_grad()
def share_weights(model: nn.Module, k: int, layers: Iterable[str] | None = None, iters: int = 50,
                  init: str = "linear") -> ShareReport:
    """Replace, in place, every weight of the selected layers by the nearest of ``k`` shared values.

    layers  names (``model.named_modules()``) of ``nn.Linear`` / ``nn.Conv2d`` / ``Adder2d`` layers;
            ``None``: all of them.  One codebook per layer (per weight tensor); biases, batch norm
            and WHT thresholds stay as they are (counted in ``float_params``).
    Returns a :class:`ShareReport` with the storage and the reconstruction error of every layer.
    """
    _check_k(k, "share_weights")
    modules = dict(model.named_modules())
    if layers is None:
        names = [n for n, m in modules.items() if n and _sharable(m)]
        if not names:
            raise ValueError(f"share_weights: {type(model).__name__} has no nn.Linear / nn.Conv2d / Adder2d weights")
    else:
        if isinstance(layers, str):
            raise ValueError(f"share_weights: layers must be a list of names, got the string {layers!r}")
        names = list(layers)
        for n in names:
            if n not in modules:
                raise ValueError(f"share_weights: no layer named {n!r} in {type(model).__name__}")
            if not _sharable(modules[n]):
                raise TypeError(f"share_weights: {n} is a {type(modules[n]).__name__}; expected nn.Linear, nn.Conv2d "
                                "or Adder2d (WHT layers have no weight matrix; their thresholds stay float)")
    shared = {id(modules[n].weight) for n in names}
    report = ShareReport(float_params=sum(p.numel() for p in model.parameters() if id(p) not in shared))
    for n in names:
        m = modules[n]
        w = m.weight
        distinct = int(torch.unique(w.detach()).numel())
        index, codebook = share_tensor(w, k, iters, init)
        w_hat = codebook.to(w.device)[index.long()]
        diff = w.detach().float() - w_hat
        rel = float(torch.linalg.norm(diff) / torch.linalg.norm(w.detach().float()).clamp_min(1e-30))
        report.rows.append(ShareRow(n, type(m).__name__, w.numel(), k, 32 * w.numel(), shared_bits(w.numel(), k),
                                    rel, distinct))
        w.copy_(w_hat.to(w.dtype))
    return report
