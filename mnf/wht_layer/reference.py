"""The WHT layers' maps with dense Hadamard matrices (torch, differentiable): the definition.

Per pixel (:class:`~mnf.layers.WHTPointwise`), with ``B = kron(I_{n/b}, H_b)`` (``H_b`` the
natural-order Hadamard matrix), ``f`` the threshold, ``t`` the thresholds and ``s`` the scales::

    y = (B (s ⊙ f(B pad_n(x), t)) / b)[:cout]

per image (:class:`~mnf.layers.WHTSpatial`)::

    y = crop(H_Hp (s ⊙ f(H_Hp pad(x) H_Wp, t)) H_Wp / (Hp·Wp))

With ``keep_dc`` the first coefficient of each block (``(0, 0)`` in 2-D) is passed through
(``f(z) = z``). ``t`` and ``s`` are in natural order. The kernels of ``cpu.py`` and ``cuda.py``
are tested against these functions, values and gradients.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mnf.transforms.orderings import hadamard


def threshold(z: Tensor, t: Tensor, kind: str) -> Tensor:
    """``f(z, t)`` for ``kind`` ``"soft" | "hard" | "smooth"`` (``t`` broadcasts against ``z``).

    The hard threshold's ``∂f/∂t`` is the soft one's, the surrogate of :mod:`mnf.layers.threshold`.
    """
    soft = torch.sign(z) * torch.relu(z.abs() - t)
    if kind == "soft":
        return soft
    if kind == "smooth":
        return torch.tanh(z) * torch.relu(z.abs() - t)
    # value z·1[|z| > t]; the constant added back leaves soft's gradients (the surrogate)
    return soft + (t * torch.sign(z) * (z.abs() > t)).detach()


def _matrix(n: int, like: Tensor) -> Tensor:
    return torch.as_tensor(hadamard(n), dtype=like.dtype, device=like.device)


def pointwise(x: Tensor, t: Tensor, s: Tensor | None, cout: int, b: int, kind: str,
              keep_dc: bool) -> Tensor:
    """``x`` ``(N, cin, H, W)``, ``t``/``s`` ``(n,)`` -> ``(N, cout, H, W)`` (see the module doc)."""
    n = t.shape[0]
    big = torch.block_diag(*[_matrix(b, x)] * (n // b))
    z = torch.einsum("kc,nchw->nkhw", big, F.pad(x, (0, 0, 0, 0, 0, n - x.shape[1])))
    y = threshold(z, t.view(n, 1, 1), kind)
    if keep_dc:
        y = torch.where((torch.arange(n, device=x.device) % b == 0).view(n, 1, 1), z, y)
    if s is not None:
        y = y * s.view(n, 1, 1)
    return torch.einsum("kc,nchw->nkhw", big, y)[:, :cout] / b


def spatial(x: Tensor, t: Tensor, s: Tensor | None, kind: str, keep_dc: bool) -> Tensor:
    """``x`` ``(..., H, W)``, ``t``/``s`` ``(Hp, Wp)`` -> ``(..., H, W)`` (see the module doc)."""
    (hp, wp), (h, w) = t.shape, x.shape[-2:]
    rows, cols = _matrix(hp, x), _matrix(wp, x)
    z = rows @ F.pad(x, (0, wp - w, 0, hp - h)) @ cols
    y = threshold(z, t, kind)
    if keep_dc:
        dc = torch.zeros(hp, wp, dtype=torch.bool, device=x.device)
        dc[0, 0] = True
        y = torch.where(dc, z, y)
    if s is not None:
        y = y * s
    return (rows @ y @ cols)[..., :h, :w] / (hp * wp)
