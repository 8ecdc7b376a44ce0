"""The one dispatch point for the fast Walsh-Hadamard transform (NumPy arrays and torch tensors).

Every public function reduces to ``_apply(x, dim, order, scale)``: along axis ``dim`` compute
``scale * (H @ x)[perm]`` (``H`` natural order, ``perm`` the gather indices of ``order``). The
array is viewed, without copying when its strides allow, as ``(outer, n, inner)`` with ``inner``
the axes laid out faster than ``dim``, and handed to one bridge per backend:

- NumPy: ``cpu.transform`` (array in, array out);
- torch CPU: ``cpu.transform_torch``, torch CUDA: ``cuda.transform_torch`` (imported only then):
  tensor in, tensor out. Each backend picks its kernels (``cpu``: row or column kernel, serial
  below ``cpu.PARALLEL_MIN_SIZE`` elements; ``cuda``: shared-memory or multi-pass launches on
  torch's current stream).

The output is a new array laid out like the input (NCHW stays NCHW, channels_last stays
channels_last); torch gradients go through ``_WHT``, whose backward is the same transform because
every ``M`` here is symmetric. The kernels are float32/float64 only: float16/bfloat16 tensors
(e.g. under ``torch.autocast``) are cast to float32 before ``_WHT``, so they are transformed and
returned in float32, and their gradients flow back through the cast in their own dtype.
"""
from __future__ import annotations

import math
from types import ModuleType

import numpy as np
import torch

from mnf import _check
from mnf.transforms import cpu
from mnf.transforms.orderings import check_order, check_size, next_power_of_two

Array = "np.ndarray | torch.Tensor"
HALF = (torch.float16, torch.bfloat16)  # computed in float32: the kernels have no half types


def _norm_dim(dim: int, ndim: int, name: str = "dim") -> int:
    """``dim`` (a Python or NumPy int) as an axis in ``[0, ndim)``."""
    if not _check.is_int(dim):
        raise _check.ArgumentTypeError(f"{name} must be an int in [{-ndim}, {ndim}) for a {ndim}-d input, "
                                       f"got {dim!r} of type {type(dim).__name__}")
    if not -ndim <= dim < ndim:
        raise ValueError(f"{name} must be an int in [{-ndim}, {ndim}) for a {ndim}-d input, got {dim!r}")
    return int(dim) % ndim


def _split_axes(shape, strides, dim: int) -> tuple[list[int], list[int]]:
    """Other axes split into those laid out slower (outer) and faster (inner) than ``dim``."""
    others = sorted((d for d in range(len(shape)) if d != dim), key=lambda d: -abs(strides[d]))
    outer = [d for d in others if shape[d] == 1 or abs(strides[d]) > abs(strides[dim])]
    inner = [d for d in others if d not in outer]
    return outer, inner


def _as3d(x, dim: int):
    """View ``x`` as ``(outer, n, inner)`` (a copy only if its strides cannot be merged).

    Returns ``(x3, shape, axes)``: a result ``y3`` of ``x3``'s shape maps back to ``x``'s axes by
    ``y3.reshape(shape).transpose(argsort(axes))``.
    """
    n = x.shape[dim]
    strides = x.stride() if isinstance(x, torch.Tensor) else x.strides
    outer, inner = _split_axes(x.shape, strides, dim)
    axes = outer + [dim] + inner
    xp = x.permute(axes) if isinstance(x, torch.Tensor) else x.transpose(axes)
    shape3 = (math.prod(xp.shape[:len(outer)]), n, math.prod(xp.shape[len(outer) + 1:]))
    if isinstance(x, torch.Tensor):
        try:
            return xp.view(shape3), xp.shape, axes
        except RuntimeError:  # strides that cannot be merged: one contiguous copy
            return xp.contiguous().view(shape3), xp.shape, axes
    try:
        return np.reshape(xp, shape3, copy=False), xp.shape, axes
    except ValueError:
        return np.ascontiguousarray(xp).reshape(shape3), xp.shape, axes


def _restore(y3, shape, axes):
    """A result of :func:`_as3d`'s ``(outer, n, inner)`` shape back in the input's axes."""
    if isinstance(y3, torch.Tensor):
        return y3.view(shape).permute(np.argsort(axes).tolist())
    return y3.reshape(shape).transpose(np.argsort(axes))


def _backend(device: torch.device) -> ModuleType:
    """The kernels for a tensor on ``device``: ``cpu`` or ``cuda`` (numba.cuda imported only then)."""
    if device.type == "cpu":
        return cpu
    if device.type == "cuda":
        from mnf.transforms import cuda
        return cuda
    raise ValueError(f"x must be on a cpu or cuda device, got {device}")


class _WHT(torch.autograd.Function):
    """``y = scale * (H @ x)[perm]`` along ``dim``; its matrix is symmetric, so dx = same(dy).

    ``x`` float32/float64 (``_prepare`` upcasts half types).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, dim: int, order: str, scale: float) -> torch.Tensor:
        ctx.args = (dim, order, scale)
        x3, shape, axes = _as3d(x.detach(), dim)
        return _restore(_backend(x.device).transform_torch(x3, order, scale), shape, axes)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _WHT.apply(grad, *ctx.args), None, None, None


def _as_array(x):
    """``x`` as a torch tensor or NumPy array (array-likes such as lists become arrays)."""
    if isinstance(x, torch.Tensor):
        if x.layout != torch.strided:
            raise ValueError(f"x must be a dense (strided) tensor, got layout {x.layout}")
        return x
    x = _check.array("x", x)
    if x.dtype.kind not in "biufc":
        raise _check.ArgumentTypeError(f"x must be an array of real numbers, got dtype {x.dtype}")
    return x


def _prepare(x, dim: int, order: str, pad: bool, normalized: bool = False):
    """Validate, cast and pad; returns (x, dim, n) with ``x.shape[dim] == n`` a power of two."""
    check_order(order)
    _check.flag("normalized", normalized)
    _check.flag("pad", pad)
    x = _as_array(x)
    if isinstance(x, torch.Tensor):
        if x.dtype in HALF:
            x = x.float()  # differentiable: the gradient goes back to x's dtype
        elif x.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"x must be a float32 or float64 tensor (float16/bfloat16 are "
                             f"computed in float32), got {x.dtype}")
    else:
        if x.dtype.kind == "c":
            raise ValueError(f"x must be real, got {x.dtype}")
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float64)
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension, got a 0-d array")
    dim = _norm_dim(dim, x.ndim)
    n = x.shape[dim]
    if pad and n >= 1 and n & (n - 1):
        m = next_power_of_two(n)
        if isinstance(x, torch.Tensor):
            x = torch.nn.functional.pad(x.movedim(dim, -1), (0, m - n)).movedim(-1, dim)
        else:
            x = np.pad(x, [(0, m - n if d == dim else 0) for d in range(x.ndim)])
        n = m
    check_size(n, f"length of dim {dim} (pass pad=True to zero-pad)")
    return x, dim, n


def _apply(x, dim: int, order: str, scale: float):
    """The one dispatch: torch tensors through ``_WHT`` (autograd), NumPy arrays to ``cpu.transform``."""
    if isinstance(x, torch.Tensor):
        return _WHT.apply(x, dim, order, scale)
    x3, shape, axes = _as3d(x, dim)
    return _restore(cpu.transform(x3, order, scale), shape, axes)


def fwht(x: Array, dim: int = -1, order: str = "hadamard", normalized: bool = False,
         pad: bool = False) -> Array:
    """Fast Walsh-Hadamard transform of ``x`` along ``dim``.

    Dense equivalent: with ``n = x.shape[dim]`` and ``M = transform_matrix(n, order, normalized)``
    (``hadamard(n)``, ``walsh(n)`` or ``dyadic(n)``, times ``1/sqrt(n)`` if ``normalized``),
    ``y = moveaxis(moveaxis(x, dim, -1) @ M.T, -1, dim)``; ``M`` is symmetric so ``M.T == M``.
    Costs ``n log2 n`` additions per transformed vector instead of ``n**2`` multiply-adds.

    Args:
        x: NumPy array or torch tensor of any shape ``(..., n, ...)``; any strides.
            torch: float32/float64 on cpu or cuda, differentiable; float16/bfloat16 (e.g. under
            ``torch.autocast``) are computed in float32 and return float32 (the gradient reaches
            ``x`` in its own dtype); other dtypes raise ``ValueError``. NumPy (or an array-like
            such as a list, taken as a NumPy array): float32/float64 kept, other real dtypes
            computed in float64.
        dim: the axis to transform (negative counts from the end).
        order: ``"hadamard"`` (natural), ``"walsh"`` (sequency) or ``"dyadic"`` (Paley).
        normalized: scale by ``1/sqrt(n)`` (orthonormal; then ``fwht`` is its own inverse).
        pad: zero-pad a non-power-of-two ``n`` to ``next_power_of_two(n)`` (the output then has
            the padded length); without it such an ``n`` raises ``ValueError``.

    Returns:
        Same type, dtype and device as ``x`` (float32 for a float16/bfloat16 tensor); shape of
        ``x`` (padded along ``dim``), laid out like ``x`` (e.g. channels_last is kept).
    """
    x, dim, n = _prepare(x, dim, order, pad, normalized)
    return _apply(x, dim, order, 1.0 / math.sqrt(n) if normalized else 1.0)


def ifwht(x: Array, dim: int = -1, order: str = "hadamard", normalized: bool = False,
          pad: bool = False) -> Array:
    """Inverse of ``fwht`` with the same arguments: ``ifwht(fwht(x, ...), ...) == x``.

    Dense equivalent: ``x @ inv(M).T`` along ``dim`` with ``inv(M) = M / n`` (unnormalized) or
    ``M`` (normalized), since ``M @ M == n * I``. Same arguments, shapes and dtypes as ``fwht``
    (float16/bfloat16 tensors are computed in float32 and return float32).
    """
    x, dim, n = _prepare(x, dim, order, pad, normalized)
    return _apply(x, dim, order, 1.0 / math.sqrt(n) if normalized else 1.0 / n)


def _check_dims(dims, ndim: int) -> tuple[int, int]:
    if not isinstance(dims, (tuple, list)):
        raise _check.ArgumentTypeError(f"dims must be a pair of axes, got {dims!r} of type {type(dims).__name__}")
    if len(dims) != 2:
        raise ValueError(f"dims must be a pair of axes, got {dims!r}")
    d0, d1 = (_norm_dim(d, ndim, "dims") for d in dims)
    if d0 == d1:
        raise ValueError(f"dims must name two different axes, got {tuple(dims)}")
    return d0, d1


def fwht2d(x: Array, dims: tuple[int, int] = (-2, -1), order: str = "hadamard",
           normalized: bool = False, pad: bool = False) -> Array:
    """2-D transform: ``fwht`` along ``dims[0]`` then ``dims[1]``.

    Dense equivalent for a ``(..., n0, n1)`` input and ``dims=(-2, -1)``: ``M0 @ x @ M1.T`` with
    ``Mi = transform_matrix(ni, order, normalized)``.
    """
    x = _as_array(x)
    d0, d1 = _check_dims(dims, x.ndim)
    return fwht(fwht(x, d0, order, normalized, pad), d1, order, normalized, pad)


def ifwht2d(x: Array, dims: tuple[int, int] = (-2, -1), order: str = "hadamard",
            normalized: bool = False, pad: bool = False) -> Array:
    """Inverse of ``fwht2d`` with the same arguments."""
    x = _as_array(x)
    d0, d1 = _check_dims(dims, x.ndim)
    return ifwht(ifwht(x, d0, order, normalized, pad), d1, order, normalized, pad)


def _blocked(fn, x, block_size: int, dim: int, order: str, normalized: bool):
    block_size = check_size(block_size, "block_size")
    check_order(order)
    _check.flag("normalized", normalized)
    x = _as_array(x)
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension, got a 0-d array")
    dim = _norm_dim(dim, x.ndim)
    length = x.shape[dim]
    if length % block_size:
        raise ValueError(f"length of dim {dim} must be a multiple of block_size={block_size}, "
                         f"got {length}")
    split = (length // block_size, block_size)
    if isinstance(x, torch.Tensor):
        return fn(x.unflatten(dim, split), dim + 1, order, normalized).flatten(dim, dim + 1)
    y = fn(x.reshape(x.shape[:dim] + split + x.shape[dim + 1:]), dim + 1, order, normalized)
    return y.reshape(x.shape)


def block_fwht(x: Array, block_size: int, dim: int = -1, order: str = "hadamard",
               normalized: bool = False) -> Array:
    """Independent ``fwht`` of each run of ``block_size`` consecutive entries along ``dim``.

    Dense equivalent: ``x @ kron(eye(L // block_size), M).T`` along ``dim`` (``L = x.shape[dim]``,
    a multiple of ``block_size``; ``M = transform_matrix(block_size, order, normalized)``).
    ``x``, dtypes and the result's type as for :func:`fwht` (array-likes such as lists are
    taken as NumPy arrays).
    """
    return _blocked(fwht, x, block_size, dim, order, normalized)


def block_ifwht(x: Array, block_size: int, dim: int = -1, order: str = "hadamard",
                normalized: bool = False) -> Array:
    """Inverse of ``block_fwht`` with the same arguments."""
    return _blocked(ifwht, x, block_size, dim, order, normalized)
