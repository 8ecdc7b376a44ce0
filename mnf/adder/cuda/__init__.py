"""Numba CUDA kernels for the adder convolution: the torch-facing entry.

CUDA tensors in (float32 or float64, one dtype, any strides, validated by
:func:`mnf.adder.adder2d`), new CUDA tensors out. The kernels (:mod:`.kernels`) run on torch's
current stream (``numba.cuda.external_stream``) on ``numba.cuda.as_cuda_array`` views of the
tensors, with no host copies; :mod:`.dispatch` has the same functions on Numba device arrays.
"""
from __future__ import annotations

import torch
from numba import cuda

from mnf.adder.cuda import dispatch
from mnf.adder.shape import output_size

__all__ = ["backward", "forward", "grad_input", "grad_weight"]


def _dev(t: torch.Tensor):
    # the interface exposes raw memory: a neg-bit view (e.g. ``z.conj().imag``) must be materialised
    return cuda.as_cuda_array(t.detach().resolve_neg())


def _stream(t: torch.Tensor):
    return cuda.external_stream(torch.cuda.current_stream(t.device).cuda_stream)


def _format(x: torch.Tensor) -> torch.memory_format:
    """The memory format of the results: channels last if ``x`` is (as the CPU bridge does)."""
    cl = x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if cl else torch.contiguous_format


def forward(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, groups: int) -> torch.Tensor:
    """Adder output (N, O, OH, OW) of ``x`` (N, C, H, W) and ``weight`` (O, C/groups, kh, kw) (eq. 3.1),
    stored channels last if ``x`` is (the kernels index by strides)."""
    y = torch.empty((x.shape[0], weight.shape[0], output_size(x.shape[2], weight.shape[2], stride, padding),
                     output_size(x.shape[3], weight.shape[3], stride, padding)), dtype=x.dtype, device=x.device,
                    memory_format=_format(x))
    dispatch.forward(_dev(x), _dev(weight), stride, padding, groups, _dev(y), _stream(x))
    return y


def grad_input(x: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor, stride: int, padding: int,
               groups: int) -> torch.Tensor:
    """Surrogate input gradient (N, C, H, W) from the output gradient ``grad`` (N, O, OH, OW) (eq. 3.5-3.6)."""
    dx = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=_format(x))
    dispatch.grad_input(_dev(x), _dev(weight), _dev(grad), stride, padding, groups, _dev(dx), _stream(x))
    return dx


def grad_weight(x: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor, stride: int, padding: int,
                groups: int, sign: bool) -> torch.Tensor:
    """Filter gradient (O, C/groups, kh, kw) (eq. 3.4, or eq. 3.3 when ``sign``)."""
    dw = torch.empty(weight.shape, dtype=x.dtype, device=x.device)
    dispatch.grad_weight(_dev(x), _dev(weight), _dev(grad), stride, padding, groups, sign, _dev(dw), _stream(x))
    return dw


def backward(x: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor, stride: int, padding: int, groups: int,
             sign: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(grad_input(...), grad_weight(...))``: two launches, the two kernels share no work."""
    return (grad_input(x, weight, grad, stride, padding, groups),
            grad_weight(x, weight, grad, stride, padding, groups, sign))
