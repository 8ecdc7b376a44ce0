"""The adder layer in plain PyTorch, the unfold way: the reference the tests check the kernels against.

``tests/test_adder.py`` checks every kernel of :mod:`mnf.adder` (outputs and gradients) against
:func:`oracle`, and :mod:`mnf.bench.adder` times it as "the unfold reference". It computes the same
outputs and gradients as :func:`mnf.adder.adder2d` the way AdderNet's published ``adder.py`` does:
unfold, broadcast ``X - F``, and a hand-written backward with the surrogate gradients
(full-precision filter gradient, eq. 3.4, or its sign, eq. 3.3; clamped input gradient,
eqs. 3.5-3.6), here with groups. :func:`unfold_abs` is the same forward with plain autograd
through ``abs`` (sign gradients). Both build the whole (N, G, O/G, C/G*kh*kw, L) tensor of
differences, exactly what the kernels avoid: slow and memory-hungry, meant for checking only.

Shapes: ``x`` (N, C, H, W), ``w`` (O, C/groups, kh, kw), output (N, O, OH, OW) with
``OH = output_size(H, kh, s, p)`` (same for OW); any float dtype, any device.
"""
from __future__ import annotations

import torch
import torch.nn.functional as tf

from mnf.adder.shape import output_size


def differences(x: torch.Tensor, w: torch.Tensor, s: int, p: int, groups: int) -> torch.Tensor:
    """All ``X - F`` of the layer, (N, G, O/G, C/G*kh*kw, OH*OW)."""
    n, c, h, width = x.shape
    o, cg, kh, kw = w.shape
    ll = output_size(h, kh, s, p) * output_size(width, kw, s, p)
    cols = tf.unfold(x, (kh, kw), padding=p, stride=s).view(n, groups, 1, cg * kh * kw, ll)
    return cols - w.reshape(groups, o // groups, cg * kh * kw, 1)


def adder_output(diff: torch.Tensor, x: torch.Tensor, w: torch.Tensor, s: int, p: int) -> torch.Tensor:
    """``Y = -sum |X - F|`` (N, O, OH, OW) from ``differences(x, w, s, p, groups)``."""
    oh = output_size(x.shape[2], w.shape[2], s, p)
    return -diff.abs().sum(3).reshape(x.shape[0], w.shape[0], oh, -1)


class Oracle(torch.autograd.Function):
    """Unfold implementation of the adder layer with AdderNet's surrogate gradients."""

    @staticmethod
    def forward(ctx, x, w, s, p, groups, sign):
        diff = differences(x, w, s, p, groups)
        ctx.save_for_backward(diff)
        ctx.conf = x.shape, w.shape, s, p, sign
        return adder_output(diff, x, w, s, p)

    @staticmethod
    def backward(ctx, grad):
        (diff,) = ctx.saved_tensors
        xshape, wshape, s, p, sign = ctx.conf
        n, groups, og, k, ll = diff.shape
        g = grad.reshape(n, groups, og, 1, ll)
        dw = (g * (diff.sign() if sign else diff)).sum((0, 4)).reshape(wshape)
        dcols = (g * (-diff).clamp(-1, 1)).sum(2).reshape(n, groups * k, ll)
        dx = tf.fold(dcols, xshape[2:], wshape[2:], padding=p, stride=s)
        return dx, dw, None, None, None, None


def oracle(x: torch.Tensor, w: torch.Tensor, s: int = 1, p: int = 0, groups: int = 1,
           sign: bool = False) -> torch.Tensor:
    """``adder2d(x, w, s, p, groups, "sign" if sign else "full")``, the unfold way."""
    return Oracle.apply(x, w, s, p, groups, sign)


def unfold_abs(x: torch.Tensor, w: torch.Tensor, s: int = 1, p: int = 0, groups: int = 1) -> torch.Tensor:
    """The oracle's forward with plain autograd through ``abs``: sign gradients, not ``adder2d``'s."""
    return adder_output(differences(x, w, s, p, groups), x, w, s, p)


__all__ = ["Oracle", "adder_output", "differences", "oracle", "unfold_abs"]
