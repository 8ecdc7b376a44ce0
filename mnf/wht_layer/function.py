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


def _channels_last(x: Tensor) -> bool:
    """Whether ``x`` ``(N, C, H, W)`` is stored channels last (each pixel's channels contiguous)."""
    return x.is_contiguous(memory_format=torch.channels_last)


def _pixel_rows(x: Tensor, nhwc: bool) -> Tensor:
    """``x`` ``(N, C, H, W)`` as the kernels' ``(N', C, P')``: NCHW ``(N, C, H·W)``, or for a
    channels-last batch the view ``(1, C, N·H·W)`` (all pixels of the batch in one row: small maps
    such as 2×2 or 1×1 still give the kernels long loops)."""
    nb, c, h, w = x.shape
    if nhwc:
        return x.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(1, nb * h * w, c).transpose(1, 2)
    return x.contiguous().view(nb, c, h * w)


def _image(y: Tensor, shape: tuple[int, int, int, int], nhwc: bool) -> Tensor:
    """The inverse of :func:`_pixel_rows` for ``y`` ``(N', C, P')`` with ``shape = (N, C, H, W)``."""
    nb, c, h, w = shape
    if nhwc:
        return y.transpose(1, 2).reshape(nb, h, w, c).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    return y.reshape(nb, c, h, w)


class Pointwise(torch.autograd.Function):
    """``y = (H_b (s ⊙ f(H_b x_pad, t)) / b)[:cout]`` per pixel: ``(N, cin, H, W) -> (N, cout, H, W)``.

    ``apply(x, t, s, cout, rows, b, kind, keep_dc, fused)``: ``t``, ``s`` ``(n,)`` in natural
    order (``s`` may be None), ``rows`` the channels read cyclically from ``x`` before the zero
    padding (``cin``; ``cout`` for ``expand="repeat"``), ``b`` the block size, ``kind`` ``"soft" |
    "hard" | "smooth"``. The output (and ``x``'s gradient) is stored channels last if ``x`` is.
    """

    @staticmethod
    def forward(ctx, x: Tensor, t: Tensor, s: Tensor | None, cout: int, rows: int, b: int, kind: str,
                keep_dc: bool, fused: bool) -> Tensor:
        nhwc = _channels_last(x)
        x3 = _pixel_rows(x.detach(), nhwc)
        k = backend(x.device, fused)
        ctx.save_for_backward(x3, t, s)
        ctx.meta = (k, tuple(x.shape), nhwc, rows, b, kind, keep_dc)
        y3 = k.pointwise_forward(x3, t.detach(), None if s is None else s.detach(), cout, rows, b, kind, keep_dc)
        return _image(y3, (x.shape[0], cout, *x.shape[2:]), nhwc)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x3, t, s = ctx.saved_tensors
        k, shape, nhwc, rows, b, kind, keep_dc = ctx.meta
        gx, gt, gs = k.pointwise_backward(x3, _pixel_rows(grad, nhwc), t.detach(), None if s is None else s.detach(),
                                          rows, b, kind, keep_dc)
        return _image(gx, shape, nhwc), gt, gs, None, None, None, None, None, None


class Spatial(torch.autograd.Function):
    """Per image ``crop(H (s ⊙ f(H pad(x) H, t)) H / (Hp·Wp))``: ``(N, C, H, W) -> (N, C, H, W)``,
    stored channels last if ``x`` is.

    ``apply(x, t, s, kind, keep_dc, fused)``: ``t``, ``s`` ``(Hp, Wp)`` in natural order.
    """

    @staticmethod
    def forward(ctx, x: Tensor, t: Tensor, s: Tensor | None, kind: str, keep_dc: bool,
                fused: bool) -> Tensor:
        x3 = x.detach().contiguous().view(-1, *x.shape[2:])
        k = backend(x.device, fused)
        ctx.save_for_backward(x3, t, s)
        ctx.meta = (k, x.shape, _channels_last(x) and x.shape[1] > 1, kind, keep_dc)
        y = k.spatial_forward(x3, t.detach(), None if s is None else s.detach(), kind, keep_dc).view(x.shape)
        return _like(y, ctx.meta[2])

    @staticmethod
    def backward(ctx, grad: Tensor):
        x3, t, s = ctx.saved_tensors
        k, shape, nhwc, kind, keep_dc = ctx.meta
        g = grad.contiguous().view(x3.shape)
        gx, gt, gs = k.spatial_backward(x3, g, t.detach(), None if s is None else s.detach(), kind, keep_dc)
        return _like(gx.view(shape), nhwc), gt, gs, None, None, None


def _like(y: Tensor, nhwc: bool) -> Tensor:
    """``y`` stored channels last if the layer's input was (the 2-D transforms run per image on
    NCHW planes; the next layer then gets the layout the model runs in)."""
    return y.contiguous(memory_format=torch.channels_last) if nhwc else y
