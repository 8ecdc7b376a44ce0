"""The one dispatch point: :func:`adder2d` and its ``torch.autograd.Function``.

CPU tensors run the Numba CPU kernels (:mod:`mnf.adder.cpu`), CUDA tensors the Numba CUDA
kernels (:mod:`mnf.adder.cuda`). Gradients are AdderNet's surrogates, not the true derivatives
of ``Y = -sum |X - F|`` (which are ``sign(X - F)`` for F and ``sign(F - X)`` for X):

- filter: ``X - F`` (eq. 3.4, ``filter_grad="full"``) or ``sign(X - F)`` (eq. 3.3, ``"sign"``)
- input:  ``HardTanh(F - X)`` (eq. 3.5-3.6)

The kernels are float32/float64 only: :func:`adder2d` casts float16/bfloat16 arguments (e.g.
under ``torch.autocast``) to float32 before ``Adder2dFunction``, which itself takes float32 or
float64 tensors of one dtype.
"""
from types import ModuleType

import torch

from mnf import _check
from mnf.adder.shape import output_size

FILTER_GRADS = ("full", "sign")
HALF = (torch.float16, torch.bfloat16)  # computed in float32: the kernels have no half types


def _backend(device: torch.device) -> ModuleType:
    """The kernel module for ``device``: :mod:`mnf.adder.cpu` or :mod:`mnf.adder.cuda` (both take
    and return torch tensors)."""
    if device.type == "cpu":
        from mnf.adder import cpu

        return cpu
    if device.type == "cuda":
        from mnf.adder import cuda

        return cuda
    raise ValueError(f"adder2d: got a tensor on device {device}, expected a cpu or cuda tensor")


class _Adder2dKernels(torch.autograd.Function):
    """:class:`Adder2dFunction` without the argument check: what :func:`adder2d` applies after
    checking (once) and casting the arguments itself."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding, groups, filter_grad):
        ctx.save_for_backward(x, weight)
        ctx.backend = _backend(x.device)
        ctx.conf = (stride, padding, groups, filter_grad == "sign")
        return ctx.backend.forward(x, weight, stride, padding, groups)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, groups, sign = ctx.conf
        dx = dw = None
        if ctx.needs_input_grad[0] and ctx.needs_input_grad[1]:  # one call: may share work
            dx, dw = ctx.backend.backward(x, weight, grad, stride, padding, groups, sign)
        elif ctx.needs_input_grad[0]:
            dx = ctx.backend.grad_input(x, weight, grad, stride, padding, groups)
        elif ctx.needs_input_grad[1]:
            dw = ctx.backend.grad_weight(x, weight, grad, stride, padding, groups, sign)
        return dx, dw, None, None, None, None


class Adder2dFunction(_Adder2dKernels):
    """``Y = adder2d(x, weight)`` with the AdderNet surrogate backward (see module docstring).

    ``Adder2dFunction.apply(x, weight, stride, padding, groups, filter_grad)`` checks its
    arguments as :func:`adder2d` does and takes float32 or float64 tensors of one dtype.
    """

    @staticmethod
    def forward(ctx, x, weight, stride, padding, groups, filter_grad):
        check(x, weight, stride, padding, groups, filter_grad)
        if x.dtype not in (torch.float32, torch.float64) or weight.dtype != x.dtype:  # adder2d upcasts
            raise ValueError(f"Adder2dFunction: got dtypes {x.dtype} and {weight.dtype}, expected both "
                             "float32 or both float64 (adder2d computes float16/bfloat16 in float32)")
        return _Adder2dKernels.forward(ctx, x, weight, int(stride), int(padding), int(groups), filter_grad)


def check(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, groups: int,
          filter_grad: str = "full") -> None:
    """Raise ``ValueError`` unless the arguments describe a valid adder convolution.

    float16/bfloat16 tensors are accepted as float32 (:func:`adder2d` casts them). Sizes are
    computed with Python ints, and arguments whose buffers could not exist on any machine
    (:data:`mnf._check.MAX_BYTES`) are refused before anything is allocated.
    """
    _check.tensor("x", x, owner="adder2d")
    _check.tensor("weight", weight, owner="adder2d")
    if x.dim() != 4:
        raise ValueError(f"adder2d: got input of shape {tuple(x.shape)}, expected rank 4 (N, C, H, W)")
    if weight.dim() != 4:
        raise ValueError(f"adder2d: got weight of shape {tuple(weight.shape)}, expected rank 4 (O, C/groups, kh, kw)")
    cx, cw = (torch.float32 if t.dtype in HALF else t.dtype for t in (x, weight))  # compute dtypes
    if cx not in (torch.float32, torch.float64) or cw != cx:
        raise ValueError(f"adder2d: got dtypes {x.dtype} (input) and {weight.dtype} (weight), "
                         "expected both float32 or both float64 (float16/bfloat16 count as float32)")
    if x.device != weight.device:
        raise ValueError(f"adder2d: got input on {x.device} and weight on {weight.device}, expected one device")
    if x.layout != torch.strided or weight.layout != torch.strided:
        raise ValueError(f"adder2d: got layouts {x.layout} and {weight.layout}, expected dense (strided) tensors")
    stride = _check.positive_int("stride", stride, owner="adder2d")
    padding = _check.integer("padding", padding, 0, owner="adder2d")
    _check.positive_int("groups", groups, owner="adder2d")
    _check.choice("filter_grad", filter_grad, FILTER_GRADS, owner="adder2d")
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    if c % groups or o % groups:
        raise ValueError(f"adder2d: got {c} input and {o} output channels with groups={groups}, "
                         "expected both divisible by groups")
    if cg * groups != c:
        raise ValueError(f"adder2d: got input with {c} channels, expected {cg * groups} "
                         f"(weight {tuple(weight.shape)} with groups={groups})")
    if kh > h + 2 * padding or kw > w + 2 * padding:
        raise ValueError(f"adder2d: got kernel {kh}x{kw}, larger than the padded input "
                         f"{h + 2 * padding}x{w + 2 * padding}")
    if n == 0 or o == 0:
        raise ValueError(f"adder2d: got an empty batch or no filters (input {tuple(x.shape)}, "
                         f"weight {tuple(weight.shape)}), expected N >= 1 and O >= 1")
    # Python ints: the kernels size their buffers in int64, which absurd paddings would wrap
    hp, wp = h + 2 * padding, w + 2 * padding
    oh, ow = output_size(h, kh, stride, padding), output_size(w, kw, stride, padding)
    sizes = {"padded input": n * c * hp * wp + kh * wp + kw, "output": n * o * oh * ow,
             "input-gradient buffers": c * n * (oh + 2 * kh) * (ow + 2 * kw) + (padding + kh) * (ow + 2 * kw)
             + padding + kw}
    item = 8 if cx == torch.float64 else 4
    if max(sizes.values()) * item > _check.memory_bytes():
        what = max(sizes, key=sizes.get)
        _check.size(f"the {what} (x {tuple(x.shape)}, weight {tuple(weight.shape)}, stride={stride}, "
                    f"padding={padding})", sizes[what], item, "adder2d")


def upcast(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 if it is float16/bfloat16 (a differentiable cast), else ``t`` itself."""
    return t.float() if t.dtype in HALF else t


def adder2d(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, padding: int = 0, groups: int = 1,
            filter_grad: str = "full") -> torch.Tensor:
    """Adder convolution (Urso 2022, eq. 3.1); differentiable with AdderNet's surrogate gradients.

    ``x`` (N, C, H, W) and ``weight`` (O, C/groups, kh, kw), float32 or float64, on one device
    (cpu or cuda). Returns ``Y`` (N, O, OH, OW) in that dtype,
    ``OH = output_size(H, kh, stride, padding)`` (:func:`mnf.adder.output_size`)::

        Y[n, o, y, x] = -sum_{c in group(o), i, j} |Xp[n, c, y*stride + i, x*stride + j] - F[o, c, i, j]|

    where ``Xp`` is ``x`` zero-padded by ``padding`` on each side (a padded tap contributes
    ``|F|``) and ``group(o)`` the ``C/groups`` input channels of output channel ``o``'s group.
    ``groups == C`` gives a depthwise adder layer, ``kh == kw == 1`` a pointwise one.
    ``filter_grad`` picks the filter gradient: ``"full"`` (``X - F``, eq. 3.4) or ``"sign"``
    (``sign(X - F)``, eq. 3.3); the input gradient is always ``HardTanh(F - X)`` (eq. 3.5-3.6).

    Mixed precision: under autocast / with float16 or bfloat16 inputs (either argument) the
    half-precision tensors are cast to float32 first, so it computes in float32 and returns
    float32; gradients flow back through the cast and reach each argument in its own dtype.
    Other dtypes (e.g. integers), or float32 with float64, raise ``ValueError``.
    """
    check(x, weight, stride, padding, groups, filter_grad)
    x, weight = upcast(x), upcast(weight)  # the kernels are float32 / float64 only
    return _Adder2dKernels.apply(x, weight, int(stride), int(padding), int(groups), filter_grad)
