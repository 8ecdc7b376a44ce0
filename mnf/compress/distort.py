"""Distorted pruning: random kicks to the weights between train / prune cycles (Çallı 2017 §2.2.1).

Activation pruning (:func:`mnf.compress.prune`) deletes units that never fire.  On a network
whose task needs far fewer units than it has, training spreads the work over many units that
all fire, and pruning stalls.  The thesis adds uniform random noise to the weights before
training again; a kick that pushes a unit's pre-activation below zero on all the data leaves
it dead (in a one-hidden-layer network a unit that is dead on every input gets no gradient, so
training cannot revive it), and the next count removes it.  Its noise, for a weight tensor ``w``::

    w ← w + u · (1 − var(w)),   u ~ U(−1, 1) elementwise

(``var`` over the tensor's elements).  The amplitude is about 1 when the weights are small,
which suits its two-input summation network, whose weights are of order 1.  A trained deep
network's weights are of order ``1/√fan_in``: such noise would wipe them out.  What has the
scale of 1 there are the batch-norm shifts, which set where each channel fires on normalised
pre-activations; :func:`unit_shifts` returns those (or the producing layer's bias when there is
no batch norm) for every prunable chain, so the same rule can kick the units of a real model.

    from mnf.compress.distort import distort_, unit_shifts
    distort_(net.parameters(), generator=g)      # the thesis's rule on every parameter
    distort_(unit_shifts(mobilenet), generator=g)  # only the units' firing thresholds
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn


def amplitude(w: Tensor) -> float:
    """The thesis's noise amplitude for ``w``: ``1 − var(w)`` (population variance over all
    elements; ``0`` variance for a single element), clamped at 0."""
    if not isinstance(w, Tensor) or not w.is_floating_point() or w.numel() == 0:
        what = f"{tuple(w.shape)} {w.dtype} tensor" if isinstance(w, Tensor) else type(w).__name__
        raise ValueError(f"amplitude: expected a non-empty floating-point tensor, got a {what}")
    return max(0.0, 1.0 - float(w.detach().double().var(unbiased=False)))


@torch.no_grad()
def distort_(tensors: Iterable[Tensor], amount: float | None = None,
             generator: torch.Generator | None = None) -> list[float]:
    """Add uniform noise ``u · a`` with ``u ~ U(−1, 1)`` to every tensor in place; returns the ``a`` used.

    amount     ``None``: the thesis's ``a = 1 − var(w)`` per tensor (:func:`amplitude`); a number:
               that amplitude for every tensor.
    generator  a CPU ``torch.Generator`` for reproducible noise (drawn on the CPU, then moved to
               each tensor's device, so a run gives the same noise on any device).
    """
    if isinstance(tensors, Tensor):
        tensors = [tensors]
    tensors = list(tensors)
    if not tensors:
        raise ValueError("distort_: got no tensors to distort")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, (int, float))
                               or not amount >= 0 or amount == float("inf")):
        raise ValueError(f"distort_: amount must be None (the thesis's 1 − var(w)) or a finite number >= 0, "
                         f"got {amount!r}")
    used = []
    for t in tensors:
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise ValueError(f"distort_: expected floating-point tensors, got {type(t).__name__}"
                             f"{' of dtype ' + str(t.dtype) if isinstance(t, Tensor) else ''}")
        a = amplitude(t) if amount is None else float(amount)
        u = torch.rand(t.shape, generator=generator, dtype=torch.float64) * 2 - 1
        t.add_((u * a).to(device=t.device, dtype=t.dtype))
        used.append(a)
    return used


def unit_shifts(model: nn.Module) -> list[Tensor]:
    """The parameters that set where the units of ``model``'s prunable chains fire.

    For every chain :func:`mnf.compress.find_chains` finds: the bias (β) of the batch norm after
    the producing layer, and of the second batch norm of an inverted-residual expansion; the
    producing layer's bias when there is no batch norm.  Chains with neither contribute nothing.
    """
    from mnf.compress.prune import find_chains
    out: list[Tensor] = []
    chains = find_chains(model)
    if not chains:
        raise ValueError(f"unit_shifts: {type(model).__name__} has no prunable chain (see mnf.compress.find_chains)")
    for c in chains:
        found = False
        for i in (c.bn, c.bn2):
            bn = c.parent[i] if i is not None else None
            if bn is not None and getattr(bn, "bias", None) is not None:
                out.append(bn.bias)
                found = True
        if not found and getattr(c.parent[c.producer], "bias", None) is not None:
            out.append(c.parent[c.producer].bias)
    return out
