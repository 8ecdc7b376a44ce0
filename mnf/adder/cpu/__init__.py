"""Numba CPU kernels for the adder convolution (same contracts as :mod:`mnf.adder.reference`).

Array names spell their axis order, one letter per axis: ``n`` image, ``c`` input channel,
``k`` output channel (filter), ``g`` group (``c`` and ``k`` then count within the group),
``i``/``j`` tap row/column, ``h``/``w`` rows/columns of the map the array holds, ``t`` thread
(per-thread partial sums), ``f`` position in a flat plane. So ``x_nchw`` is the input,
``x_nhwc`` its zero-padded channels-last copy, ``g_nkhw`` the output gradient (``g_nhwk``
packed channels last), ``y_nkhw`` the output, ``w_kcij`` the filters as given
(O, C/groups, kh, kw), ``w_gijck`` / ``w_gkijc`` / ``w_gijkc`` / ``w_gcijk`` their repackings
and ``w_ijc`` depthwise filters. Scalars: ``s`` stride, ``p`` zero padding per side, ``pitch``
the row width of a flat plane, ``image`` the elements per image of a flat plane.

Nothing of size (C*kh*kw, N*L) is ever built. Every kernel is arranged so that its innermost
loop walks contiguous memory (LLVM vectorises only such loops) and is long; which arrangement
wins depends on the layer's shape, so each pass picks its kernel by thresholds
(:mod:`.dispatch`, where they are defined):

- :mod:`.flat` flat planes (stride 1, dense, planes of at least ``FLAT_MIN`` /
  ``GIN_FLAT_MIN`` elements; the filter gradient for every stride-1 dense layer);
- :mod:`.channels_last` the other dense layers (few pixels, or stride > 1);
- :mod:`.depthwise` ``groups == C == O``;
- :mod:`.layout` allocation, packing between NCHW and channels last (8x8 SIMD transposes,
  :func:`mnf.simd.transpose8`), flat planes kept between calls (:func:`release_scratch`),
  filter repacking and the thread count (small calls run on one thread, ``SERIAL_WORK``).

The functions here are the torch-facing entry: CPU tensors in (float32 or float64, one dtype,
any strides, validated by :func:`mnf.adder.adder2d`), new tensors out; :mod:`.dispatch` has
the same functions on NumPy arrays. A channels-last input (``x.is_contiguous(memory_format=
torch.channels_last)``, the layout of ``fit(..., channels_last=True)``) takes the ``*_nhwc``
functions: read and written channels last, no NCHW round trip, channels-last results.
"""
from __future__ import annotations

import torch

from mnf.adder.cpu import dispatch
from mnf.adder.cpu.dispatch import FLAT_MIN, GIN_FLAT_MIN, GIN_REDUCE_MIN, REDUCE_MIN, SERIAL_WORK
from mnf.adder.cpu.layout import release_scratch

__all__ = ["FLAT_MIN", "GIN_FLAT_MIN", "GIN_REDUCE_MIN", "REDUCE_MIN", "SERIAL_WORK", "backward", "forward",
           "grad_input", "grad_weight", "release_scratch"]


def _np(t: torch.Tensor):
    # resolve_neg: a negated view (z.conj().imag) has no NumPy form; copies only then
    return t.detach().resolve_neg().numpy()


def _channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` (N, C, H, W) is stored channels last: the kernels then read and write that
    layout (:func:`dispatch.forward_nhwc` ...) and the results keep it."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1


def _nhwc(t: torch.Tensor):
    """The (N, H, W, C) NumPy view of a channels-last tensor (a copy if it is stored otherwise)."""
    return _np(t.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1))


def _image(a_nhwc) -> torch.Tensor:
    """A channels-last (N, C, H, W) tensor on the memory of ``a_nhwc`` (N, H, W, C)."""
    return torch.from_numpy(a_nhwc).permute(0, 3, 1, 2)


def forward(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, groups: int) -> torch.Tensor:
    """Adder output (N, O, OH, OW) of ``x`` (N, C, H, W) and ``weight`` (O, C/groups, kh, kw) (eq. 3.1),
    stored channels last if ``x`` is."""
    if _channels_last(x):
        return _image(dispatch.forward_nhwc(_nhwc(x), _np(weight), stride, padding, groups))
    return torch.from_numpy(dispatch.forward(_np(x), _np(weight), stride, padding, groups))


def grad_input(x: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor, stride: int, padding: int,
               groups: int) -> torch.Tensor:
    """Surrogate input gradient (N, C, H, W) from the output gradient ``grad`` (N, O, OH, OW) (eq. 3.5-3.6)."""
    if _channels_last(x):
        return _image(dispatch.grad_input_nhwc(_nhwc(x), _np(weight), _nhwc(grad), stride, padding, groups))
    return torch.from_numpy(dispatch.grad_input(_np(x), _np(weight), _np(grad), stride, padding, groups))


def grad_weight(x: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor, stride: int, padding: int,
                groups: int, sign: bool) -> torch.Tensor:
    """Filter gradient (O, C/groups, kh, kw) (eq. 3.4, or eq. 3.3 when ``sign``)."""
    if _channels_last(x):
        return torch.from_numpy(dispatch.grad_weight_nhwc(_nhwc(x), _np(weight), _nhwc(grad), stride, padding,
                                                          groups, sign))
    return torch.from_numpy(dispatch.grad_weight(_np(x), _np(weight), _np(grad), stride, padding, groups, sign))


def backward(x: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor, stride: int, padding: int, groups: int,
             sign: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(grad_input(...), grad_weight(...))`` in one call (depthwise layers share one sweep)."""
    if _channels_last(x):
        dx, dw = dispatch.backward_nhwc(_nhwc(x), _np(weight), _nhwc(grad), stride, padding, groups, sign)
        return _image(dx), torch.from_numpy(dw)
    dx, dw = dispatch.backward(_np(x), _np(weight), _np(grad), stride, padding, groups, sign)
    return torch.from_numpy(dx), torch.from_numpy(dw)
