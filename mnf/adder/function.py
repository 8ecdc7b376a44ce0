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
import torch

FILTER_GRADS = ("full", "sign")
HALF = (torch.float16, torch.bfloat16)  # computed in float32: the kernels have no half types


def _backend(device: torch.device):
    if device.type == "cpu":
        from mnf.adder import cpu

        return cpu
    if device.type == "cuda":
        from mnf.adder import cuda

        return cuda
    raise ValueError(f"adder2d: got a tensor on device {device}, expected a cpu or cuda tensor")


def _numpy(t: torch.Tensor):
    return t.detach().numpy()


class Adder2dFunction(torch.autograd.Function):
    """``Y = adder2d(x, weight)`` with the AdderNet surrogate backward (see module docstring)."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding, groups, filter_grad):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, groups, filter_grad == "sign")
        k = _backend(x.device)
        if x.device.type == "cpu":
            return torch.from_numpy(k.forward(_numpy(x), _numpy(weight), stride, padding, groups))
        return k.forward(x.detach(), weight.detach(), stride, padding, groups)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, groups, sign = ctx.conf
        k = _backend(x.device)
        cpu = x.device.type == "cpu"
        a = (_numpy(x), _numpy(weight), _numpy(grad)) if cpu else (x, weight, grad)
        wrap = torch.from_numpy if cpu else (lambda t: t)
        dx = dw = None
        if ctx.needs_input_grad[0] and ctx.needs_input_grad[1]:  # one call: may share work
            dx, dw = (wrap(t) for t in k.backward(*a, stride, padding, groups, sign))
        elif ctx.needs_input_grad[0]:
            dx = wrap(k.grad_input(*a, stride, padding, groups))
        elif ctx.needs_input_grad[1]:
            dw = wrap(k.grad_weight(*a, stride, padding, groups, sign))
        return dx, dw, None, None, None, None


def output_size(h: int, w: int, kernel: tuple[int, int], stride: int, padding: int) -> tuple[int, int]:
    """Output height and width of an adder (or convolution) layer."""
    return (h + 2 * padding - kernel[0]) // stride + 1, (w + 2 * padding - kernel[1]) // stride + 1


def check(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, groups: int,
          filter_grad: str = "full") -> None:
    """Raise ``ValueError`` unless the arguments describe a valid adder convolution.

    float16/bfloat16 tensors are accepted as float32 (:func:`adder2d` casts them).
    """
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
    if not (isinstance(stride, int) and stride >= 1) or not (isinstance(padding, int) and padding >= 0):
        raise ValueError(f"adder2d: got stride={stride!r}, padding={padding!r}, expected ints >= 1 and >= 0")
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"adder2d: got groups={groups!r}, expected an int >= 1")
    if filter_grad not in FILTER_GRADS:
        raise ValueError(f"adder2d: got filter_grad={filter_grad!r}, expected one of {FILTER_GRADS}")
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


def upcast(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 if it is float16/bfloat16 (a differentiable cast), else ``t`` itself."""
    return t.float() if t.dtype in HALF else t


def adder2d(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, padding: int = 0, groups: int = 1,
            filter_grad: str = "full") -> torch.Tensor:
    """Adder convolution (Urso 2022, eq. 3.1); differentiable with AdderNet's surrogate gradients.

    ``x`` (N, C, H, W) and ``weight`` (O, C/groups, kh, kw), float32 or float64, on one device
    (cpu or cuda). Returns ``Y`` (N, O, OH, OW) in that dtype,
    ``OH = (H + 2*padding - kh) // stride + 1``::

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
    return Adder2dFunction.apply(x, weight, stride, padding, groups, filter_grad)
