"""The WHT layers on CUDA: ``mnf.transforms``' CUDA kernels composed with torch elementwise ops.

There are no fused CUDA kernels for the WHT layers yet. On a CUDA tensor the maps of
:mod:`mnf.wht_layer.reference` are computed as separate passes: zero-pad, ``block_fwht`` /
``fwht2d`` (the Numba CUDA kernels of :mod:`mnf.transforms.cuda`, on torch's current stream),
threshold and scale in torch, inverse transform, crop. The backward mirrors the CPU kernels
(:mod:`mnf.wht_layer.cpu`): it recomputes the coefficients ``z`` from the saved input, so the
layer keeps only its input for backward, and with ``u = H g / b`` (``g`` zero-padded):

    dT_k = Σ u_k s_k ∂f/∂T,   ds_k = Σ u_k f(z_k),   dx = (H (u ⊙ s ⊙ ∂f/∂z))[:cin]

The code is device-agnostic torch: ``WHTPointwise(..., fused=False)`` and ``WHTSpatial(...,
fused=False)`` run it on CPU tensors too, which is how the tests check it without a GPU.
Same bridge as ``cpu.py``: tensors in, tensors out.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mnf.transforms import block_fwht, block_ifwht, fwht2d, ifwht2d


def _threshold(z: Tensor, t: Tensor, kind: str, dc: Tensor | None,
               grad: bool) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``(f, ∂f/∂z, ∂f/∂T)`` of the ``kind`` threshold (derivatives only if ``grad``; 0 at the kinks).

    ``dc``: a boolean mask broadcasting against ``z`` of the coefficients passed through, or None.
    Hard uses the soft ``∂f/∂T`` (the surrogate of :mod:`mnf.layers.threshold`).
    """
    on = z.abs() > t
    dfz = dft = None
    if kind == "smooth":
        th, r = torch.tanh(z), torch.relu(z.abs() - t)
        f = th * r
        if grad:
            dfz, dft = (1 - th * th) * r + th.abs() * on, -th * on
    else:
        sign = torch.sign(z) * on
        f = (z - t * sign) * on if kind == "soft" else z * on
        if grad:
            dfz, dft = on.to(z.dtype), -sign
    if dc is not None:
        f = torch.where(dc, z, f)
        if grad:
            dfz, dft = torch.where(dc, 1.0, dfz), torch.where(dc, 0.0, dft)
    return f, dfz, dft


def _dc_pointwise(n: int, b: int, keep_dc: bool, like: Tensor) -> Tensor | None:
    return (torch.arange(n, device=like.device) % b == 0).view(n, 1) if keep_dc else None


def _dc_spatial(shape: torch.Size, keep_dc: bool, like: Tensor) -> Tensor | None:
    if not keep_dc:
        return None
    dc = torch.zeros(shape, dtype=torch.bool, device=like.device)
    dc[0, 0] = True
    return dc


def _cyclic(x: Tensor, rows: int) -> Tensor:
    """The first ``rows`` channels of ``x`` ``(N, C, P)`` read cyclically (``x`` itself if ``rows <= C``)."""
    c = x.shape[1]
    return x if rows <= c else x.repeat(1, -(-rows // c), 1)[:, :rows]


def _folded(dx: Tensor, c: int) -> Tensor:
    """The gradient of :func:`_cyclic` to ``C = c`` channels: each channel sums its copies' rows."""
    rows = dx.shape[1]
    if rows <= c:
        return dx
    return F.pad(dx, (0, 0, 0, -rows % c)).view(dx.shape[0], -1, c, dx.shape[2]).sum(1)


def pointwise_forward(x: Tensor, t: Tensor, s: Tensor | None, cout: int, rows: int, b: int, kind: str,
                      keep_dc: bool) -> Tensor:
    """``x`` ``(N, cin, P)`` float32/64, ``t``/``s`` ``(n,)`` natural order -> ``(N, cout, P)``.

    ``rows``: channels read cyclically from ``x`` (``cin``, or ``cout`` for ``expand="repeat"``).
    """
    n = t.shape[0]
    x = _cyclic(x, rows)
    z = block_fwht(F.pad(x, (0, 0, 0, n - x.shape[1])), b, dim=1)
    y, _, _ = _threshold(z, t.view(n, 1), kind, _dc_pointwise(n, b, keep_dc, x), grad=False)
    if s is not None:
        y = y * s.view(n, 1)
    return block_ifwht(y, b, dim=1)[:, :cout]


def pointwise_backward(x: Tensor, g: Tensor, t: Tensor, s: Tensor | None, rows: int, b: int, kind: str,
                       keep_dc: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(dx (N, cin, P), dt (n,), ds (n,) or None)`` for ``g = dL/dy`` ``(N, cout, P)``."""
    c = x.shape[1]
    x = _cyclic(x, rows)
    n, cin = t.shape[0], x.shape[1]
    z = block_fwht(F.pad(x, (0, 0, 0, n - cin)), b, dim=1)
    u = block_ifwht(F.pad(g, (0, 0, 0, n - g.shape[1])), b, dim=1)   # H g / b: H is symmetric
    f, dfz, dft = _threshold(z, t.view(n, 1), kind, _dc_pointwise(n, b, keep_dc, x), grad=True)
    us = u if s is None else u * s.view(n, 1)
    gs = None if s is None else (u * f).sum(dim=(0, 2))
    return _folded(block_fwht(us * dfz, b, dim=1)[:, :cin], c), (us * dft).sum(dim=(0, 2)), gs


def spatial_forward(x: Tensor, t: Tensor, s: Tensor | None, kind: str, keep_dc: bool) -> Tensor:
    """``x`` ``(M, H, W)`` float32/64, ``t``/``s`` ``(Hp, Wp)`` natural order -> ``(M, H, W)``."""
    (hp, wp), (h, w) = t.shape, x.shape[1:]
    z = fwht2d(F.pad(x, (0, wp - w, 0, hp - h)))
    y, _, _ = _threshold(z, t, kind, _dc_spatial(t.shape, keep_dc, x), grad=False)
    if s is not None:
        y = y * s
    return ifwht2d(y)[:, :h, :w]


def spatial_backward(x: Tensor, g: Tensor, t: Tensor, s: Tensor | None, kind: str,
                     keep_dc: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(dx (M, H, W), dt (Hp, Wp), ds (Hp, Wp) or None)`` for ``g = dL/dy`` ``(M, H, W)``."""
    (hp, wp), (h, w) = t.shape, x.shape[1:]
    z = fwht2d(F.pad(x, (0, wp - w, 0, hp - h)))
    u = ifwht2d(F.pad(g, (0, wp - w, 0, hp - h)))
    f, dfz, dft = _threshold(z, t, kind, _dc_spatial(t.shape, keep_dc, x), grad=True)
    us = u if s is None else u * s
    gs = None if s is None else (u * f).sum(dim=0)
    return fwht2d(us * dfz)[:, :h, :w], (us * dft).sum(dim=0), gs
