"""Autoencoders for images: convolutional and multiplier-free, plus a fully connected one and PSNR.

The convolutional layout follows Çallı 2017 §2.1.2 (two encoder blocks that halve the resolution,
two decoder blocks that double it; every block a 3×3 layer, batch norm and ReLU), on CIFAR-10
``(N, 3, 32, 32)`` images in ``[0, 1]``::

    enc1  3×3 stride 2, 3 → c1        (N, c1, 16, 16)
    enc2  3×3 stride 2, c1 → c2       (N, c2, 8, 8)       the code: c2·64 numbers per image
    dec1  ×2 nearest, 3×3, c2 → c3    (N, c3, 16, 16)
    dec2  ×2 nearest, 3×3, c3 → 3     (N, 3, 32, 32), then BN and clamp to [0, 1]

Upsampling is nearest-neighbour (copies, no arithmetic) followed by a 3×3 layer rather than a
transposed convolution, so the multiplier-free version can use the same topology.
``mf_autoencoder`` replaces every 3×3 convolution by

- ``layer="adder"``: an ``Adder2d`` 3×3 layer (AdderNet: ``−Σ|x − w|``, no multiplications), or
- ``layer="wht"``: a depthwise ``Adder2d`` 3×3 (spatial filtering) followed by a ``WHTPointwise``
  (channel mixing by the Walsh–Hadamard transform and trainable soft thresholds).

Batch norm stays (at inference one ``a·x + b`` per value; ``mnf.cost`` counts it).  The output
is clamped with ``Hardtanh(0, 1)`` (comparisons only) rather than a sigmoid; the last BN starts
at scale 0.25 and shift 0.45 so that few outputs start in the clamp's flat part.
"""
from __future__ import annotations


import torch
from torch import Tensor, nn

LAYERS = ("adder", "wht")


def _block(layer: nn.Module, channels: int, act: bool = True, up: bool = False) -> nn.Sequential:
    mods: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest")] if up else []
    mods += [layer, nn.BatchNorm2d(channels)]
    if act:
        mods.append(nn.ReLU())
    return nn.Sequential(*mods)


class AutoEncoder(nn.Module):
    """``encoder`` then ``decoder``; ``forward(x)`` returns the reconstruction ``(N, C, H, W)`` in [0, 1]."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.clamp = nn.Hardtanh(0.0, 1.0)
        last = [m for m in decoder.modules() if isinstance(m, nn.BatchNorm2d)][-1]
        # Start the output near CIFAR-10's pixel statistics (mean ≈ 0.47, std ≈ 0.25) instead of
        # BN's N(0, 1), which the clamp would cut in half (no gradient below 0).
        nn.init.constant_(last.weight, 0.25)
        nn.init.constant_(last.bias, 0.45)

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.clamp(self.decoder(self.encoder(x)))


def _check_channels(channels) -> tuple[int, int, int]:
    channels = tuple(channels)
    if len(channels) != 3 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels):
        raise ValueError(f"channels must be three positive ints (enc1, enc2 = code, dec1), got {channels!r}")
    return channels  # type: ignore[return-value]


def conv_autoencoder(channels: tuple[int, int, int] = (32, 16, 32), in_channels: int = 3) -> AutoEncoder:
    """Convolutional autoencoder (see the module doc); Çallı 2017 used channels (32, 64, 32) on MNIST."""
    c1, c2, c3 = _check_channels(channels)
    conv = lambda i, o, s: nn.Conv2d(i, o, 3, s, 1, bias=False)  # noqa: E731
    encoder = nn.Sequential(_block(conv(in_channels, c1, 2), c1), _block(conv(c1, c2, 2), c2))
    decoder = nn.Sequential(_block(conv(c2, c3, 1), c3, up=True),
                            _block(conv(c3, in_channels, 1), in_channels, act=False, up=True))
    model = AutoEncoder(encoder, decoder)
    model.arch = {"name": "conv_autoencoder", "kwargs": {"channels": [c1, c2, c3], "in_channels": in_channels}}
    return model


def _mf_layer(kind: str, cin: int, cout: int, stride: int) -> nn.Module:
    from mnf.layers.adder import Adder2d
    if kind == "adder":
        return Adder2d(cin, cout, 3, stride, 1)
    from mnf.layers.wht import WHTPointwise
    return nn.Sequential(Adder2d(cin, cin, 3, stride, 1, groups=cin), nn.BatchNorm2d(cin),
                         WHTPointwise(cin, cout))


def mf_autoencoder(channels: tuple[int, int, int] = (32, 16, 32), in_channels: int = 3,
                   layer: str = "adder") -> AutoEncoder:
    """Multiplier-free autoencoder: :func:`conv_autoencoder`'s topology with ``layer`` ("adder" | "wht")
    in place of every 3×3 convolution (see the module doc)."""
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; valid: {', '.join(map(repr, LAYERS))}")
    c1, c2, c3 = _check_channels(channels)
    encoder = nn.Sequential(_block(_mf_layer(layer, in_channels, c1, 2), c1),
                            _block(_mf_layer(layer, c1, c2, 2), c2))
    decoder = nn.Sequential(_block(_mf_layer(layer, c2, c3, 1), c3, up=True),
                            _block(_mf_layer(layer, c3, in_channels, 1), in_channels, act=False, up=True))
    model = AutoEncoder(encoder, decoder)
    model.arch = {"name": "mf_autoencoder",
                  "kwargs": {"channels": [c1, c2, c3], "in_channels": in_channels, "layer": layer}}
    return model


def dense_autoencoder(features: int, hidden: tuple[int, ...] = (256, 64)) -> nn.Sequential:
    """Fully connected autoencoder on flat vectors ``(N, features) → (N, features)``.

    ``Linear → ReLU`` down through ``hidden`` (the last entry is the code), mirrored back up, with
    a linear output layer; e.g. ``dense_autoencoder(3072)`` for flattened CIFAR-10 images.
    It is a plain ``nn.Sequential``, so :func:`mnf.compress.prune` can shrink its hidden layers.
    """
    hidden = tuple(hidden)
    if features < 1 or not hidden or min(hidden) < 1:
        raise ValueError(f"features and hidden sizes must be positive, got {features}, {hidden}")
    sizes = (features,) + hidden + hidden[-2::-1]
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(sizes[-1], features))
    return nn.Sequential(*layers)


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0, per_image: bool = False) -> Tensor:
    """Peak signal-to-noise ratio ``10·log10(data_range² / MSE(x, y))`` in dB.

    Over the whole tensors by default; ``per_image=True`` gives one value per item of axis 0
    (``(N,)``).  Identical inputs give ``inf``.
    """
    if x.shape != y.shape:
        raise ValueError(f"psnr needs tensors of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    diff = (x.double() - y.double()) ** 2
    mse = diff.flatten(1).mean(1) if per_image else diff.mean()
    return 10 * torch.log10(data_range ** 2 / mse)


__all__ = ["AutoEncoder", "conv_autoencoder", "dense_autoencoder", "mf_autoencoder", "psnr"]
