"""Thresholding nonlinearities for the transform domain, and a module with trainable thresholds.

With ``T >= 0`` (elementwise, broadcast against ``x``):

- soft:   ``y = sign(x)·max(|x| − T, 0)``;  ``dy/dx = 1[|x| > T]``;  ``dy/dT = −sign(x)·1[|x| > T]``
- hard:   ``y = x·1[|x| > T]``;  ``dy/dx = 1[|x| > T]``;  ``dy/dT``: a surrogate, see below
- smooth: ``y = tanh(x)·max(|x| − T, 0)``;
  ``dy/dx = (1 − tanh²x)·max(|x| − T, 0) + |tanh x|·1[|x| > T]``;  ``dy/dT = −tanh(x)·1[|x| > T]``

Soft thresholding is eq. (3.3.1) of Gözler's thesis [gozler2022]; the smooth variant (soft
thresholding times ``tanh``) is the nonlinearity of Pan, Badawi & Cetin
[pan2021fast, pan2022block].
Transform coefficients are signed and large values of either sign matter, which is why these
odd functions are used in the transform domain instead of ReLU.

The derivatives at the kinks ``|x| = T`` are taken as 0 (the ``1[|x| > T]`` above), which is what
autograd of the plain formulas gives too.  The exact ``dy/dT`` of the hard threshold is zero except
for a Dirac mass at ``|x| = T``, so it could never train ``T``; :func:`hard_threshold` uses the soft
threshold's ``dy/dT = −sign(x)·1[|x| > T]`` as a straight-through surrogate instead (raising ``T``
is treated as shrinking every surviving coefficient towards zero).  Its ``dy/dx`` is exact.

No multiplications are needed by soft and hard thresholding (compare, subtract, negate); smooth
thresholding needs a ``tanh`` and one multiplication per coefficient, and the optional ``scale``
of :class:`Threshold` one multiplication per coefficient.
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np

import torch
from torch import Tensor, nn

from mnf import _check

KINDS = ("soft", "hard", "smooth")


def _check_args(x: Tensor, t: Tensor | float, owner: str) -> None:
    """``x`` a floating tensor, ``t`` a finite number or tensor ``>= 0`` that broadcasts to ``x``'s shape."""
    _check.floating_tensor("x", x, owner)
    if isinstance(t, Tensor):
        try:
            shape = torch.broadcast_shapes(x.shape, t.shape)
        except RuntimeError:
            shape = None
        if shape != x.shape:
            raise ValueError(f"{owner}: t of shape {tuple(t.shape)} must broadcast to x's shape {tuple(x.shape)}")
        if t.numel() and not bool(((t >= 0) & torch.isfinite(t)).all()):
            raise ValueError(f"{owner}: t must hold finite thresholds >= 0, got values in "
                             f"[{t.min().item():.3g}, {t.max().item():.3g}]")
    else:
        _check.real("t", t, 0, owner=owner)


def soft_threshold(x: Tensor, t: Tensor | float) -> Tensor:
    """``sign(x)·max(|x| − t, 0)`` (eq. 3.3.1 of [gozler2022]); ``t >= 0`` broadcasts against ``x``.

    ``x`` a floating-point tensor; ``t`` a finite number or a tensor whose broadcast with ``x``
    has ``x``'s shape, all ``>= 0`` (else ``ValueError``; ``TypeError`` for other types).
    """
    _check_args(x, t, "soft_threshold")
    return _soft(x, t)


def _soft(x: Tensor, t: Tensor | float) -> Tensor:
    return torch.sign(x) * torch.relu(x.abs() - t)


class _Hard(torch.autograd.Function):
    """``x·1[|x| > t]`` with the soft threshold's ``dy/dt`` as a surrogate (see the module doc)."""

    @staticmethod
    def forward(ctx, x: Tensor, t: Tensor) -> Tensor:
        keep = x.abs() > t
        ctx.save_for_backward(x, keep)
        ctx.t_shape = t.shape
        return x * keep

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, keep = ctx.saved_tensors
        gx = grad * keep if ctx.needs_input_grad[0] else None
        gt = None
        if ctx.needs_input_grad[1]:
            gt = _sum_to(-(grad * torch.sign(x) * keep), ctx.t_shape)
        return gx, gt


def _sum_to(g: Tensor, shape: torch.Size) -> Tensor:
    """Sum a broadcast gradient back to ``shape`` (the inverse of broadcasting)."""
    lead = g.ndim - len(shape)
    g = g.sum(dim=tuple(range(lead))) if lead else g
    dims = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(dim=dims, keepdim=True) if dims else g


def hard_threshold(x: Tensor, t: Tensor | float) -> Tensor:
    """``x·1[|x| > t]``; ``dy/dt`` is the soft threshold's (a surrogate, see the module doc).

    Arguments as for :func:`soft_threshold`.
    """
    _check_args(x, t, "hard_threshold")
    return _hard(x, t)


def _hard(x: Tensor, t: Tensor | float) -> Tensor:
    if not isinstance(t, Tensor):
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return _Hard.apply(x, t)


def smooth_threshold(x: Tensor, t: Tensor | float) -> Tensor:
    """``tanh(x)·max(|x| − t, 0)`` ([pan2021fast]); ``t >= 0`` broadcasts against ``x``.

    Arguments as for :func:`soft_threshold`.
    """
    _check_args(x, t, "smooth_threshold")
    return _smooth(x, t)


def _smooth(x: Tensor, t: Tensor | float) -> Tensor:
    return torch.tanh(x) * torch.relu(x.abs() - t)


FUNCTIONS = {"soft": soft_threshold, "hard": hard_threshold, "smooth": smooth_threshold}
_UNCHECKED = {"soft": _soft, "hard": _hard, "smooth": _smooth}


def check_kind(kind: str, name: str = "threshold", owner: str | None = None) -> str:
    """Return ``kind`` if it is one of ``KINDS``, else raise ``ValueError`` naming argument ``name``."""
    return _check.choice(name, kind, KINDS, owner)


def threshold(x: Tensor, t: Tensor | float, kind: str = "soft") -> Tensor:
    """Apply the ``kind`` threshold (``"soft" | "hard" | "smooth"``) with thresholds ``t >= 0``
    (arguments checked as for :func:`soft_threshold`).

    The modules name this choice ``threshold=``; here it is ``kind`` because the function is
    itself called ``threshold`` and ``t`` is the threshold value: ``threshold(x, 0.5,
    threshold="hard")`` would read as two thresholds.
    """
    return FUNCTIONS[check_kind(kind, "kind", "threshold")](x, t)


def apply_unchecked(x: Tensor, t: Tensor, kind: str) -> Tensor:
    """:func:`threshold` without the argument checks, for layers whose ``t`` is ``|θ|`` already
    (no device synchronisation in a forward pass)."""
    return _UNCHECKED[kind](x, t)


def init_tensor(init: float | Tensor, shape: tuple[int, ...], name: str = "init") -> Tensor:
    """A float tensor of ``shape`` from a scalar or a broadcastable tensor; ``ValueError`` if < 0."""
    if not isinstance(init, (Tensor, numbers.Real, np.ndarray)) or isinstance(init, (bool, np.bool_)):
        raise _check.ArgumentTypeError(f"{name} must be a number or a tensor of thresholds >= 0, got "
                                       f"{_check._shown(init)} of type {type(init).__name__}")
    try:
        value = torch.as_tensor(init, dtype=torch.get_default_dtype())
    except (TypeError, ValueError, RuntimeError) as error:
        raise _check.ArgumentTypeError(f"{name} must be a number or a tensor of thresholds >= 0, got "
                                       f"{_check._shown(init)} ({error})") from None
    if not torch.isfinite(value).all() or (value < 0).any():
        raise ValueError(f"{name} must be finite and >= 0 (thresholds are non-negative), got {init!r}")
    try:
        return value.expand(shape).clone()
    except RuntimeError:
        raise ValueError(f"{name} of shape {tuple(value.shape)} does not broadcast to the "
                         f"coefficient shape {shape}") from None


class Threshold(nn.Module):
    """Per-coefficient trainable thresholding ``y = scale · threshold(x, |θ|)`` over trailing dims.

    Args:
        shape: number of coefficients ``n`` or their shape ``S`` (e.g. ``(Hp, Wp)``); the input
            is ``(..., *S)`` and every leading position shares the same thresholds.
        threshold: ``"soft"``, ``"hard"`` or ``"smooth"`` (see the module doc); stored as
            ``kind`` (the parameter ``threshold`` holds the values).
        init: initial threshold, a scalar or a tensor broadcastable to ``S``, all ``>= 0``.
        scale: add a trainable per-coefficient scale (initialised to 1) applied after
            thresholding. Default ``False``: thresholding alone needs no multiplication.
        keep_dc: leave the first coefficient (flat index 0 of ``S``, the DC term of a WHT)
            unthresholded, as in [gozler2022]; it then has no threshold parameter (it is still
            scaled when ``scale``). Default ``False``, unlike the WHT layers: the module takes
            any coefficients, which need not have a DC term; the WHT layers pass ``True``.

    Parameters: ``threshold`` is ``θ`` of shape ``S`` (``(prod(S) − 1,)`` flattened when
    ``keep_dc``); the threshold used is ``T = |θ|``, so ``T >= 0`` for any real ``θ`` and the
    gradient never dies at a clamp (``d|θ|/dθ = sign(θ)``; start ``θ`` away from 0, where torch
    takes that derivative as 0). ``scale`` (if any) has shape ``S``.

    Shapes: input ``(..., *S)`` float; output the same shape and device, and the dtype of torch's
    type promotion of the input with the parameters (the input's for float32/float64 inputs of
    a float32 module). Under autocast / with float16 or bfloat16 inputs the module computes in
    float32 and returns float32, like the WHT layers it serves (gradients reach the input in
    its own dtype).
    """

    def __init__(self, shape: int | Sequence[int], threshold: str = "soft", init: float | Tensor = 0.1,
                 scale: bool = False, keep_dc: bool = False) -> None:
        super().__init__()
        shape = (shape,) if _check.is_int(shape) else tuple(shape) if isinstance(shape, (tuple, list)) else shape
        if not isinstance(shape, tuple) or not all(_check.is_int(s) for s in shape):
            raise _check.ArgumentTypeError(f"shape must be a positive int or a tuple of positive ints, got {shape!r}")
        if not shape or any(s < 1 for s in shape):
            raise ValueError(f"shape must be a positive int or a tuple of positive ints, got {shape!r}")
        shape = tuple(int(s) for s in shape)
        _check.size(f"shape={shape}", math.prod(shape), 4, "Threshold")
        scale = _check.flag("scale", scale, owner="Threshold")
        self.shape, self.kind = shape, check_kind(threshold, owner="Threshold")
        self.keep_dc = _check.flag("keep_dc", keep_dc, "Threshold")
        theta = init_tensor(init, shape)
        if keep_dc:
            theta = theta.flatten()[1:].clone()
        self.threshold = nn.Parameter(theta)
        self.scale = nn.Parameter(torch.ones(shape)) if scale else None

    def thresholds(self) -> Tensor:
        """The effective ``T = |θ|`` of shape ``S`` (0 at the DC position when ``keep_dc``)."""
        t = self.threshold.abs()
        if self.keep_dc:
            t = torch.cat([t.new_zeros(1), t]).view(self.shape)
        return t

    def forward(self, x: Tensor) -> Tensor:
        k = len(self.shape)
        _check.floating_tensor("x", x, owner="Threshold")
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != self.shape:
            raise ValueError(f"Threshold expects input of shape (..., {', '.join(map(str, self.shape))}), "
                             f"got {tuple(x.shape)}")
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        y = apply_unchecked(x, self.thresholds(), self.kind)
        if self.keep_dc:
            flat = (*x.shape[:x.ndim - k], math.prod(self.shape))
            y = torch.cat([x.reshape(flat)[..., :1], y.reshape(flat)[..., 1:]], dim=-1).view(x.shape)
        return y if self.scale is None else y * self.scale

    def extra_repr(self) -> str:
        return (f"shape={self.shape}, threshold={self.kind!r}, scale={self.scale is not None}, "
                f"keep_dc={self.keep_dc}")
