"""The unfold oracle for the adder layer: plain PyTorch, with AdderNet's surrogate gradients.

Not part of the package (it builds the whole (N, G, O/G, C/G*kh*kw, L) tensor of differences,
exactly what the kernels avoid). ``tests/test_adder.py`` checks every kernel against it, and
``benchmarks/bench_adder.py`` times it as "the unfold reference": the same outputs and gradients
as ``mnf.adder.adder2d``, computed the way AdderNet's published ``adder.py`` does (unfold,
broadcast subtract, and a custom backward: full-precision filter gradient, clamped input
gradient), here with groups and the filter gradient's sign variant.
"""
import torch
import torch.nn.functional as tf


def differences(x: torch.Tensor, w: torch.Tensor, s: int, p: int, groups: int) -> torch.Tensor:
    """All ``X - F`` of the layer, (N, G, O/G, C/G*kh*kw, OH*OW)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    ll = ((h + 2 * p - kh) // s + 1) * ((wd + 2 * p - kw) // s + 1)
    cols = tf.unfold(x, (kh, kw), padding=p, stride=s).view(n, groups, 1, cg * kh * kw, ll)
    return cols - w.reshape(groups, o // groups, cg * kh * kw, 1)


def adder_output(diff: torch.Tensor, x: torch.Tensor, w: torch.Tensor, s: int, p: int) -> torch.Tensor:
    """``Y = -sum |X - F|`` (N, O, OH, OW) from ``differences(x, w, s, p, groups)``."""
    oh = (x.shape[2] + 2 * p - w.shape[2]) // s + 1
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
