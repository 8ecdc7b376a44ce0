"""Walsh-Hadamard transform layers: a 1×1-convolution replacement and a 2-D (spatial) layer.

Both layers compute *transform → threshold → inverse transform* with trainable per-coefficient
thresholds (and optional scales), as proposed by Pan, Badawi & Cetin [pan2021fast, pan2022block]
and used by Gözler [gozler2022] in place of MobileNetV2's last 1×1 convolution.

- :class:`WHTPointwise` transforms each pixel's channel vector (NCHW dim 1): a drop-in for
  ``nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)`` with ``n`` (or fewer) parameters
  instead of ``in_channels · out_channels``.
- :class:`WHTSpatial` transforms each channel's ``H × W`` image: in place of a depthwise 3×3
  convolution (stride 1) or a squeeze-and-excitation block, with ``Hp · Wp`` thresholds shared by
  all channels.

The computation is in :mod:`mnf.wht_layer` (the kernel family: dense reference, fused Numba CPU
kernels, the CUDA path, one ``torch.autograd.Function`` per layer); this module holds the
``nn.Module`` classes: arguments, parameters, input checks.

Where multiplications remain: the transforms are additions only (``H`` has entries ±1); the
inverse's ``1/n`` is a power-of-two shift; soft and hard thresholds are compare-and-subtract.
Multiplications come from ``scale=True`` (one per coefficient), the smooth threshold (``tanh``
and a product per coefficient) and whatever follows the layer (e.g. BatchNorm).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnf import _check
from mnf.layers.threshold import Threshold, check_kind, init_tensor
from mnf.transforms import block_fwht, fwht2d, next_power_of_two
from mnf.transforms.orderings import check_order, check_size, permutation
from mnf.wht_layer import Pointwise, Spatial


HALF = (torch.float16, torch.bfloat16)


def _check_input(x: Tensor, channels: int, name: str, spatial: tuple[int, int] | None = None) -> Tensor:
    """``x`` as the layer computes it: float32/64 ``(N, channels, H, W)`` (``(H, W)`` if given).

    float16/bfloat16 inputs (autocast) are cast to float32, a differentiable cast, so their
    gradient comes back in their own dtype; other shapes and dtypes raise ``ValueError``.
    """
    hw = "H, W" if spatial is None else f"{spatial[0]}, {spatial[1]}"
    _check.tensor("x", x, owner=name)
    ok = x.ndim == 4 and x.shape[1] == channels and (spatial is None or tuple(x.shape[2:]) == spatial)
    if not ok:
        raise ValueError(f"{name} expects input of shape (N, {channels}, {hw}), got {tuple(x.shape)}")
    if x.dtype in HALF:
        return x.float()
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{name} expects a float32 or float64 input (float16/bfloat16 are "
                         f"computed in float32), got {x.dtype}")
    return x


def _natural_index(n: int, b: int, order: str) -> Tensor:
    """``idx`` with ``v_natural = v_ordered[idx]`` for per-coefficient vectors of ``n // b`` blocks."""
    inv = np.arange(b) if order == "hadamard" else np.argsort(permutation(b, order))
    return torch.as_tensor((np.arange(n) // b) * b + np.tile(inv, n // b), dtype=torch.long)


EXPAND = ("zeros", "repeat")


class WHTPointwise(nn.Module):
    """Transform-domain replacement of a 1×1 convolution: ``(N, Cin, H, W) → (N, Cout, H', W')``.

    Per pixel, the channel vector ``x`` (length ``Cin``) is zero-padded to ``n`` channels,
    transformed in blocks of ``b``, thresholded per coefficient, optionally scaled, inverse
    transformed and truncated to ``Cout`` channels::

        y = (B⁻¹ · S · f_T(B · pad_n(x)))[:Cout],   B = kron(I_{n/b}, H_b),  B⁻¹ = B / b

    ``n`` and ``b``: without ``block_size`` one transform over ``n = b = next_power_of_two(max(Cin,
    Cout))`` channels (zero-padding, [gozler2022]); with ``block_size=b`` (a power of two)
    ``n = b · ceil(max(Cin, Cout) / b)`` channels in independent blocks [pan2022block], which
    pads less for channel counts like 320 or 96.

    Channel change: the input is zero-padded up to ``n``, the output keeps the first ``Cout``
    channels. Reduction drops channels after the inverse, so every input channel still
    influences every kept output through the thresholds. Expansion (``Cout > Cin``): with
    ``expand="repeat"`` (the default) the input channels are repeated cyclically up to ``Cout``
    before padding, so every output channel carries the signal (with all thresholds 0 the layer
    returns ``x.repeat(...)[:, :Cout]``). ``expand="zeros"`` zero-pads instead and fills the
    extra channels from the nonlinearity only: they are the inverse transform of the threshold
    terms, 0 when all thresholds are 0 and tiny otherwise, so a batch norm after the layer
    divides them by a tiny standard deviation and the thresholds' gradients explode
    (``tests/test_wht_layers.py`` shows it for a 16 → 96 expansion). Stride ``s``
    keeps pixels ``[::s, ::s]`` first, as a strided 1×1 convolution reads them
    (``H' = ceil(H / s)``).

    Args:
        in_channels, out_channels, stride: as for ``nn.Conv2d(in, out, 1, stride)``.
        block_size: ``None`` (one padded transform) or a power-of-two block size.
        threshold: ``"soft"``, ``"hard"`` or ``"smooth"`` (see ``mnf.layers.threshold``).
        init: initial threshold (scalar or ``(n,)``, ``>= 0``).
        scale: add ``n`` trainable per-coefficient scales (``n`` multiplications per pixel).
            Default ``False``, unlike :class:`WHTSpatial`: the layer replaces a 1×1 convolution,
            which a batch norm follows in every model here (its affine weight rescales the
            output channels), and scales would bring back ``n`` multiplications per pixel, the
            operation the layer exists to remove; [gozler2022]'s layer has thresholds only.
        keep_dc: leave the first (DC) coefficient of each block unthresholded [gozler2022]; it
            then has no threshold parameter (default ``True``, as in :class:`WHTSpatial`).
        order: coefficient order of the parameters: ``"hadamard"``, ``"walsh"`` or ``"dyadic"``.
            Thresholding is elementwise, so this only changes which parameter index belongs to
            which coefficient; the layer computes in natural order.
        fused: on CPU use the fused Numba kernels (``False``: the composed path that CUDA
            tensors take, see :mod:`mnf.wht_layer.cuda`).
        expand: ``"repeat"`` (default) or ``"zeros"``: how an expansion fills its extra
            channels (above).

    Parameters: ``threshold`` ``θ`` (``(n,)``, or ``(n − n/b,)`` with ``keep_dc``; the threshold
    used is ``|θ|``) and ``scale`` (``(n,)``) if requested. Multiplications: none in the
    transforms (±1 entries) or the ``1/b`` (a shift); ``scale`` and ``"smooth"`` add some.

    Dtypes: the layer computes in its input's dtype, float32 or float64 (the parameters are cast
    to it). Under autocast / with float16 or bfloat16 inputs the layer computes in float32 and
    returns float32; gradients flow back through the cast, so ``x.grad`` has ``x``'s dtype.
    Other dtypes raise ``ValueError``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *,
                 block_size: int | None = None, threshold: str = "soft", init: float | Tensor = 0.1,
                 scale: bool = False, keep_dc: bool = True, order: str = "hadamard",
                 fused: bool = True, expand: str = "repeat") -> None:
        super().__init__()
        in_channels, out_channels, stride = (_check.positive_int(name, v, "WHTPointwise") for name, v in (
            ("in_channels", in_channels), ("out_channels", out_channels), ("stride", stride)))
        self.expand = _check.choice("expand", expand, EXPAND, "WHTPointwise")
        scale, keep_dc, fused = (_check.flag(name, v, "WHTPointwise") for name, v in (
            ("scale", scale), ("keep_dc", keep_dc), ("fused", fused)))
        widest = max(in_channels, out_channels)
        if block_size is None:
            b = n = next_power_of_two(widest)
        else:
            b = check_size(block_size, "block_size")
            n = b * -(-widest // b)
        _check.size(f"in_channels={in_channels}, out_channels={out_channels} ({n} coefficients)", n, 4, "WHTPointwise")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.n, self.block_size, self.kind = n, b, check_kind(threshold, owner="WHTPointwise")
        self.keep_dc, self.order, self.fused = bool(keep_dc), check_order(order), bool(fused)
        theta = init_tensor(init, (n,))
        if keep_dc:
            theta = theta.view(n // b, b)[:, 1:].flatten().clone()
        self.threshold = nn.Parameter(theta)
        self.scale = nn.Parameter(torch.ones(n)) if scale else None
        self.register_buffer("natural", _natural_index(n, b, order), persistent=False)

    def thresholds(self) -> Tensor:
        """Effective thresholds ``|θ|`` in parameter order, shape ``(n,)`` (0 at DC with keep_dc)."""
        t = self.threshold.abs()
        if self.keep_dc:
            b = self.block_size
            t = torch.cat([t.new_zeros(self.n // b, 1), t.view(self.n // b, b - 1)], dim=1).flatten()
        return t

    def _prepare(self, x: Tensor) -> Tensor:
        """Checked input, strided and (``expand="repeat"``) repeated: ``(N, Cin', H', W')``."""
        x = _check_input(x, self.in_channels, "WHTPointwise")
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.expand == "repeat" and self.out_channels > self.in_channels:
            x = x.repeat(1, -(-self.out_channels // self.in_channels), 1, 1)[:, :self.out_channels]
        return x

    def forward(self, x: Tensor) -> Tensor:
        x = _check_input(x, self.in_channels, "WHTPointwise")
        if self.stride > 1:   # keep a channels-last input channels last: the kernels keep its layout
            cl = x.is_contiguous(memory_format=torch.channels_last)
            x = x[:, :, ::self.stride, ::self.stride]
            x = x.contiguous(memory_format=torch.channels_last) if cl else x
        t = self.thresholds()[self.natural].to(x.dtype)
        s = None if self.scale is None else self.scale[self.natural].to(x.dtype)
        rows = self.out_channels if self.expand == "repeat" and self.out_channels > self.in_channels else self.in_channels
        return Pointwise.apply(x, t, s, self.out_channels, rows, self.block_size, self.kind, self.keep_dc,
                               self.fused)

    def coefficients(self, x: Tensor) -> Tensor:
        """The transform-domain coefficients the layer thresholds: ``(N, Cin, H, W) → (N, n, H', W')``.

        ``z = B · pad_n(x)`` per pixel (after the stride and, with ``expand="repeat"``, the
        repetition), in parameter order (``order``): ``z[:, k]`` is compared with
        ``thresholds()[k]``. Differentiable; float32 for float16/bfloat16 input.
        """
        x = self._prepare(x)
        xp = F.pad(x, (0, 0, 0, 0, 0, self.n - x.shape[1]))
        return block_fwht(xp, self.block_size, dim=1, order=self.order)

    @property
    def conv_equivalent_params(self) -> int:
        """Weights of the ``nn.Conv2d(in, out, 1, bias=False)`` this layer replaces: ``in · out``."""
        return self.in_channels * self.out_channels

    @property
    def num_parameters(self) -> int:
        """Trainable parameters of this layer (thresholds and scales)."""
        return sum(p.numel() for p in self.parameters())

    def op_counts(self, x: Tensor, y: Tensor) -> tuple[int, int]:
        """(multiplications, additions) of one forward pass producing ``y`` (for ``mnf.cost``).

        Per pixel: two block transforms (``n·log2 b`` additions each), one subtraction per
        thresholded coefficient (soft/smooth), ``n`` multiplications with ``scale`` and ``n``
        more (plus a ``tanh``) for ``"smooth"``.
        """
        vectors = y.numel() // self.out_channels
        b, n = self.block_size, self.n
        adds = 2 * n * (b.bit_length() - 1) + (0 if self.kind == "hard" else n)
        mults = (n if self.scale is not None else 0) + (n if self.kind == "smooth" else 0)
        return vectors * mults, vectors * adds

    def extra_repr(self) -> str:
        expand = f", expand={self.expand!r}" if self.out_channels > self.in_channels else ""
        return (f"{self.in_channels}, {self.out_channels}, stride={self.stride}, n={self.n}{expand}, "
                f"block_size={self.block_size}, threshold={self.kind!r}, "
                f"scale={self.scale is not None}, keep_dc={self.keep_dc}, order={self.order!r}")


class WHTSpatial(nn.Module):
    """2-D WHT layer over each channel's image: ``(N, C, H, W) → (N, C, H, W)`` [pan2022block].

    Each ``H × W`` image is zero-padded to ``Hp × Wp`` (next powers of two), transformed with the
    2-D WHT, thresholded (and scaled) per coefficient with parameters of shape ``(Hp, Wp)``
    shared by all channels, inverse transformed and cropped back to ``H × W``::

        y = crop(H_Hp⁻¹ · S ⊙ f_T(H_Hp · pad(x) · H_Wp) · H_Wp⁻¹)

    It replaces a depthwise 3×3 convolution with stride 1 (or a squeeze-and-excitation block).
    It has no stride: for stride 2 keep every second row and column of its output, which is what
    a stride-2, padding-1 3×3 convolution computes from its stride-1 output. Built for one input
    size; other sizes raise ``ValueError``.

    Args:
        channels: ``C`` (the parameters do not depend on it; it is checked on input).
        height, width: ``H``, ``W`` of the input.
        threshold, init, keep_dc, order: as for :class:`WHTPointwise`, over the
            ``Hp · Wp`` coefficients of each image (DC is coefficient ``(0, 0)``).
        scale: add ``Hp · Wp`` trainable per-coefficient scales. Default ``True``, unlike
            :class:`WHTPointwise`: shared by all channels, they cost ``Hp · Wp`` multiplications
            per image (the depthwise 3×3 it replaces: 9 per pixel), and without them the layer
            can only shrink coefficients, never weight one frequency against another, as the
            2-D layers of [pan2022block] do.
        fused: on CPU use the fused Numba kernels (``False``: the composed path that CUDA
            tensors take, see :mod:`mnf.wht_layer.cuda`).

    Parameters: those of the :class:`~mnf.layers.threshold.Threshold` ``thresh`` over
    ``(Hp, Wp)`` (``Hp·Wp − 1`` thresholds with ``keep_dc``, ``Hp·Wp`` scales with ``scale``).
    Multiplications: ``Hp · Wp`` per image with ``scale`` (none in the transforms; the inverse's
    ``1 / (Hp · Wp)`` is a shift).

    Dtypes: as :class:`WHTPointwise`: float32 or float64 input; under autocast / with float16
    or bfloat16 inputs the layer computes in float32 and returns float32.
    """

    def __init__(self, channels: int, height: int, width: int, *, threshold: str = "soft",
                 init: float | Tensor = 0.1, scale: bool = True, keep_dc: bool = True,
                 order: str = "hadamard", fused: bool = True) -> None:
        super().__init__()
        channels, height, width = (_check.positive_int(name, v, "WHTSpatial") for name, v in (
            ("channels", channels), ("height", height), ("width", width)))
        self.channels, self.height, self.width = channels, height, width
        self.padded = (next_power_of_two(height), next_power_of_two(width))
        _check.size(f"height={height}, width={width} (padded {self.padded})", self.padded[0] * self.padded[1], 4,
                    "WHTSpatial")
        fused = _check.flag("fused", fused, "WHTSpatial")
        self.order, self.fused = check_order(order), bool(fused)
        self.thresh = Threshold(self.padded, threshold=threshold, init=init, scale=scale, keep_dc=keep_dc)
        rows, cols = (_natural_index(n, n, order) for n in self.padded)
        self.register_buffer("natural_rows", rows, persistent=False)
        self.register_buffer("natural_cols", cols, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        x = _check_input(x, self.channels, "WHTSpatial", (self.height, self.width))

        def natural(v: Tensor) -> Tensor:
            return v[self.natural_rows][:, self.natural_cols].to(x.dtype)

        s = None if self.thresh.scale is None else natural(self.thresh.scale)
        return Spatial.apply(x, natural(self.thresh.thresholds()), s, self.thresh.kind, self.thresh.keep_dc,
                             self.fused)

    def coefficients(self, x: Tensor) -> Tensor:
        """The transform-domain coefficients the layer thresholds: ``(N, C, H, W) → (N, C, Hp, Wp)``.

        ``z = H_Hp · pad(x) · H_Wp`` per image, in parameter order (``order``): ``z[..., r, q]``
        is compared with ``thresh.thresholds()[r, q]``. Differentiable; float32 for
        float16/bfloat16 input.
        """
        x = _check_input(x, self.channels, "WHTSpatial", (self.height, self.width))
        hp, wp = self.padded
        return fwht2d(F.pad(x, (0, wp - self.width, 0, hp - self.height)), order=self.order)

    @property
    def conv_equivalent_params(self) -> int:
        """Weights of the depthwise ``nn.Conv2d(C, C, 3, groups=C, bias=False)`` it replaces: ``9·C``."""
        return 9 * self.channels

    @property
    def num_parameters(self) -> int:
        """Trainable parameters (thresholds and scales, shared by all channels)."""
        return sum(p.numel() for p in self.parameters())

    def op_counts(self, x: Tensor, y: Tensor) -> tuple[int, int]:
        """(multiplications, additions) of one forward pass (for ``mnf.cost``)."""
        hp, wp = self.padded
        images = y.numel() // (self.height * self.width)
        per = hp * wp
        adds = 2 * per * (per.bit_length() - 1) + (0 if self.thresh.kind == "hard" else per)
        mults = per * ((self.thresh.scale is not None) + (self.thresh.kind == "smooth"))
        return images * mults, images * adds

    def extra_repr(self) -> str:
        return f"{self.channels}, {self.height}, {self.width}, padded={self.padded}, order={self.order!r}"
