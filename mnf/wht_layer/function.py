"""The one dispatch point of the WHT layers: two ``torch.autograd.Function`` classes.

:class:`Pointwise` (``WHTPointwise``) and :class:`Spatial` (``WHTSpatial``) compute the maps of
:mod:`mnf.wht_layer.reference` with the backend their input's device asks for:

- CPU tensors: the fused Numba kernels of :mod:`mnf.wht_layer.cpu` (``fused=False``: the
  composed path of :mod:`mnf.wht_layer.cuda`, which runs on any device);
- CUDA tensors: :mod:`mnf.wht_layer.cuda` (``mnf.transforms``' CUDA kernels and torch ops).

Both backends take and return tensors with the same signatures, and both keep only the input
(and the few parameters) for backward: the backward recomputes the coefficients.

The Functions do not check their arguments: the layers do (input shape and dtype) and build
``t`` (thresholds ``>= 0``) and ``s`` (scales, or None) in natural order and ``x``'s dtype.
"""
from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor

from mnf.wht_layer import cpu, cuda


def backend(device: torch.device, fused: bool) -> ModuleType:
    """The kernels for tensors on ``device``: ``cpu`` (fused, CPU only) or ``cuda`` (composed)."""
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"WHT layers run on cpu or cuda tensors, got a tensor on {device}")
    return cpu if device.type == "cpu" and fused else cuda


class Pointwise(torch.autograd.Function):
    """``y = (H_b (s ⊙ f(H_b x_pad, t)) / b)[:cout]`` per pixel: ``(N, cin, H, W) -> (N, cout, H, W)``.

    ``apply(x, t, s, cout, b, kind, keep_dc, fused)``: ``t``, ``s`` ``(n,)`` in natural order
    (``s`` may be None), ``b`` the block size, ``kind`` ``"soft" | "hard" | "smooth"``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, t: Tensor, s: Tensor | None, cout: int, b: int, kind: str,
                keep_dc: bool, fused: bool) -> Tensor:
        nb, cin, h, w = x.shape
        x3 = x.detach().contiguous().view(nb, cin, h * w)
        k = backend(x.device, fused)
        ctx.save_for_backward(x3, t, s)
        ctx.meta = (k, x.shape, b, kind, keep_dc)
        return k.pointwise_forward(x3, t.detach(), None if s is None else s.detach(), cout, b, kind,
                                   keep_dc).view(nb, cout, h, w)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x3, t, s = ctx.saved_tensors
        k, shape, b, kind, keep_dc = ctx.meta
        g = grad.contiguous().view(shape[0], grad.shape[1], -1)
        gx, gt, gs = k.pointwise_backward(x3, g, t.detach(), None if s is None else s.detach(), b, kind,
                                          keep_dc)
        return gx.view(shape), gt, gs, None, None, None, None, None


class Spatial(torch.autograd.Function):
    """Per image ``crop(H (s ⊙ f(H pad(x) H, t)) H / (Hp·Wp))``: ``(N, C, H, W) -> (N, C, H, W)``.

    ``apply(x, t, s, kind, keep_dc, fused)``: ``t``, ``s`` ``(Hp, Wp)`` in natural order.
    """

    @staticmethod
    def forward(ctx, x: Tensor, t: Tensor, s: Tensor | None, kind: str, keep_dc: bool,
                fused: bool) -> Tensor:
        x3 = x.detach().contiguous().view(-1, *x.shape[2:])
        k = backend(x.device, fused)
        ctx.save_for_backward(x3, t, s)
        ctx.meta = (k, x.shape, kind, keep_dc)
        return k.spatial_forward(x3, t.detach(), None if s is None else s.detach(), kind,
                                 keep_dc).view(x.shape)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x3, t, s = ctx.saved_tensors
        k, shape, kind, keep_dc = ctx.meta
        g = grad.contiguous().view(x3.shape)
        gx, gt, gs = k.spatial_backward(x3, g, t.detach(), None if s is None else s.detach(), kind, keep_dc)
        return gx.view(shape), gt, gs, None, None, None
