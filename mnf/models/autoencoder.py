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
``mf_autoencoder(conv3x3=...)`` replaces every 3×3 convolution (the ``conv3x3`` role; kinds of
``mnf.models.policy``) by

- ``"adder"``: an ``Adder2d`` 3×3 layer (AdderNet: ``−Σ|x − w|``, no multiplications), or
- ``"separable_adder_wht"``: a depthwise ``Adder2d`` 3×3 (spatial filtering), BN and a
  ``WHTPointwise`` (channel mixing by the Walsh–Hadamard transform and trainable soft thresholds).

Batch norm stays (at inference one ``a·x + b`` per value; ``mnf.cost`` counts it).  The output
is clamped with ``Hardtanh(0, 1)`` (comparisons only) rather than a sigmoid; the last BN starts
at scale 0.25 and shift 0.45 so that few outputs start in the clamp's flat part.

    losses = train_autoencoder(model, images, steps=600)   # Adam + cosine, MSE, on the model's device
    out = reconstruct(model, test_images)                   # eval mode, CPU float32 result
    psnr(out, test_images)
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnf import _check
from mnf.budget import cap, full_size, record_work
from mnf.metrics import model_device, model_dtype, probe
from mnf.models import policy

CONV3X3 = policy.ROLES["mf_autoencoder"]["conv3x3"]


def _block(layer: nn.Module, channels: int, act: bool = True, up: bool = False) -> nn.Sequential:
    mods: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest")] if up else []
    mods += [layer, nn.BatchNorm2d(channels)]
    if act:
        mods.append(nn.ReLU())
    return nn.Sequential(*mods)


class AutoEncoder(nn.Module):
    """``encoder`` then ``decoder``; ``forward(x)`` returns the reconstruction ``(N, C, H, W)`` in [0, 1].

    ``in_channels`` (``C``) and ``multiple`` (H and W must be multiples of it, e.g. 4 for two
    stride-2 encoder blocks), when given, are checked on input; in any case an input whose
    reconstruction would have another shape raises ``ValueError`` instead of returning it.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, in_channels: int | None = None,
                 multiple: int = 1):
        super().__init__()
        _check.module("encoder", encoder, "AutoEncoder")
        _check.module("decoder", decoder, "AutoEncoder")
        self.in_channels = _check.optional_int("in_channels", in_channels, 1, "AutoEncoder")
        self.multiple = _check.positive_int("multiple", multiple, "AutoEncoder")
        self.encoder, self.decoder = encoder, decoder
        self.clamp = nn.Hardtanh(0.0, 1.0)
        last = [m for m in decoder.modules() if isinstance(m, nn.BatchNorm2d)][-1]
        # Start the output near CIFAR-10's pixel statistics (mean ≈ 0.47, std ≈ 0.25) instead of
        # BN's N(0, 1), which the clamp would cut in half (no gradient below 0).
        nn.init.constant_(last.weight, 0.25)
        nn.init.constant_(last.bias, 0.45)

    def _check_input(self, x: Tensor) -> None:
        _check.floating_tensor("x", x, "AutoEncoder")
        c = "C" if self.in_channels is None else self.in_channels
        if x.dim() != 4 or (self.in_channels is not None and x.shape[1] != self.in_channels):
            raise ValueError(f"AutoEncoder: expected input of shape (N, {c}, H, W), got {tuple(x.shape)}")
        if x.shape[2] % self.multiple or x.shape[3] % self.multiple:
            raise ValueError(f"AutoEncoder: H and W must be multiples of {self.multiple} (the encoder halves "
                             f"them, the decoder doubles them back), got input of shape {tuple(x.shape)}; "
                             f"crop or pad the images")

    def encode(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        y = self.clamp(self.decoder(self.encoder(x)))
        if y.shape != x.shape:
            raise ValueError(f"AutoEncoder: an input of shape {tuple(x.shape)} gives a reconstruction of shape "
                             f"{tuple(y.shape)}; use inputs whose size the encoder and decoder map back onto itself")
        return y


def _check_channels(channels) -> tuple[int, int, int]:
    if not isinstance(channels, (tuple, list)):
        raise _check.ArgumentTypeError(f"channels must be three positive ints (enc1, enc2 = code, dec1), "
                                       f"got {channels!r}")
    channels = tuple(channels)
    if len(channels) != 3 or any(not _check.is_int(c) or c < 1 for c in channels):
        raise ValueError(f"channels must be three positive ints (enc1, enc2 = code, dec1), got {channels!r}")
    return tuple(int(c) for c in channels)  # type: ignore[return-value]


def _autoencoder(name: str, kind: str, channels: tuple[int, int, int], in_channels: int) -> AutoEncoder:
    """The layout of the module doc with ``policy.conv3x3(kind, ...)`` as every 3×3 layer; ``model.arch`` set."""
    c1, c2, c3 = _check_channels(channels)
    in_channels = _check.positive_int("in_channels", in_channels, name)
    layer = policy.conv3x3
    encoder = nn.Sequential(_block(layer(kind, in_channels, c1, 2), c1), _block(layer(kind, c1, c2, 2), c2))
    decoder = nn.Sequential(_block(layer(kind, c2, c3), c3, up=True),
                            _block(layer(kind, c3, in_channels), in_channels, act=False, up=True))
    model = AutoEncoder(encoder, decoder, in_channels, multiple=4)
    kwargs = {"channels": [c1, c2, c3], "in_channels": in_channels}
    model.arch = {"name": name, "kwargs": kwargs if kind == "conv" else {**kwargs, "conv3x3": kind}}
    return model


def conv_autoencoder(*, channels: tuple[int, int, int] = (32, 16, 32), in_channels: int = 3) -> AutoEncoder:
    """Convolutional autoencoder (see the module doc); Çallı 2017 used channels (32, 64, 32) on MNIST."""
    return _autoencoder("conv_autoencoder", "conv", channels, in_channels)


def mf_autoencoder(*, channels: tuple[int, int, int] = (32, 16, 32), in_channels: int = 3,
                   conv3x3: str = "adder") -> AutoEncoder:
    """Multiplier-free autoencoder: :func:`conv_autoencoder`'s topology with ``conv3x3``
    (``"adder" | "separable_adder_wht"``) in place of every 3×3 convolution (see the module doc)."""
    return _autoencoder("mf_autoencoder", policy.check("conv3x3", conv3x3, CONV3X3), channels, in_channels)


def dense_autoencoder(*, features: int, hidden: tuple[int, ...] = (256, 64)) -> nn.Sequential:
    """Fully connected autoencoder on flat vectors ``(N, features) → (N, features)``.

    ``Linear → ReLU`` down through ``hidden`` (the last entry is the code), mirrored back up, with
    a linear output layer; e.g. ``dense_autoencoder(features=3072)`` for flattened CIFAR-10 images.
    It is a plain ``nn.Sequential``, so :func:`mnf.compress.prune` can shrink its hidden layers;
    it carries ``model.arch`` like every builder.
    """
    features = _check.positive_int("features", features, "dense_autoencoder")
    if not isinstance(hidden, (tuple, list)):
        raise _check.ArgumentTypeError(f"dense_autoencoder: hidden must be a tuple of positive ints, got {hidden!r}")
    hidden = tuple(hidden)
    if not hidden or not all(_check.is_int(h) and h >= 1 for h in hidden):
        raise ValueError(f"dense_autoencoder: hidden must be a non-empty tuple of positive ints, got {hidden}")
    hidden = tuple(int(h) for h in hidden)
    sizes = (features,) + hidden + hidden[-2::-1]
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(sizes[-1], features))
    model = nn.Sequential(*layers)
    model.arch = {"name": "dense_autoencoder", "kwargs": {"features": features, "hidden": list(hidden)}}
    return model


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0, per_image: bool = False) -> Tensor:
    """Peak signal-to-noise ratio ``10·log10(data_range² / MSE(x, y))`` in dB.

    Over the whole tensors by default; ``per_image=True`` gives one value per item of axis 0
    (``(N,)``).  Identical inputs give ``inf``.  ``data_range``: finite, > 0.
    """
    _check.tensor("x", x, "psnr")
    _check.tensor("y", y, "psnr")
    data_range = _check.real("data_range", data_range, 0, low_open=True, owner="psnr")
    per_image = _check.flag("per_image", per_image, "psnr")
    if per_image and x.dim() < 1:
        raise ValueError(f"psnr: per_image=True needs a batch (N, ...), got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"psnr: got empty tensors of shape {tuple(x.shape)}")
    if x.shape != y.shape:
        raise ValueError(f"psnr needs tensors of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    diff = (x.double() - y.double()) ** 2
    mse = diff.flatten(1).mean(1) if per_image else diff.mean()
    return 10 * torch.log10(data_range ** 2 / mse)


def _images(images: Tensor, what: str) -> Tensor:
    """Check ``images`` (float in [0, 1] or uint8, ``(N, C, H, W)``, N > 0); return them unchanged."""
    if not isinstance(images, Tensor):
        raise _check.ArgumentTypeError(f"{what} needs a non-empty batch of images (N, C, H, W), got "
                                       f"{type(images).__name__}")
    if images.dim() != 4 or len(images) == 0:
        raise ValueError(f"{what} needs a non-empty batch of images (N, C, H, W), got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise ValueError(f"{what} needs float images in [0, 1] (or uint8), got dtype {images.dtype}")
    _check.finite_tensor("images", images, what, "pixel values")
    low, high = images.min().item(), images.max().item()
    if low < 0 or high > 1:
        raise ValueError(f"{what} needs float images in [0, 1] (or uint8, divided by 255 here), got values in "
                         f"[{low:.3g}, {high:.3g}]; scale them (images.float() / 255), do not normalise them")
    return images


def _as_float(x: Tensor, device: torch.device, dtype: torch.dtype) -> Tensor:
    """A batch of images on ``device`` in ``dtype``, in [0, 1] (uint8 divided by 255)."""
    if x.dtype == torch.uint8:
        return x.to(device=device, dtype=dtype) / 255
    return x.to(device=device, dtype=dtype)


def train_autoencoder(model: nn.Module, images: Tensor, *, steps: int | None = None, epochs: int | None = None,
                      batch_size: int = 32, lr: float = 1e-2,
                      seed: int = 0, device: torch.device | str | None = None, progress: bool = True,
                      desc: str | None = None, seconds: float | None = None) -> list[float]:
    """Train ``model`` in place to reconstruct ``images``; returns the loss of every step.

    images      float ``(N, C, H, W)`` in [0, 1] (uint8 is divided by 255), on any device; it is
                moved once to the model's device and every batch is cast to the model's floating
                dtype (:func:`mnf.metrics.model_dtype`).
    steps       optimisation steps: mean squared error ``F.mse_loss(model(x), x)``, Adam with
                learning rate ``lr`` and ``CosineAnnealingLR(T_max=steps)``, stepped every step.
    epochs      instead of ``steps``: ``epochs * (N // batch_size)`` steps (give exactly one).
    batch_size  images per step.  Batches come from a fresh permutation of the N images every
                ``N // batch_size`` steps (the rest of a permutation is left out), drawn from a CPU
                ``torch.Generator`` seeded with ``seed``, so the order is the same on every device.
    device      ``None``: train where the model is; else the model is moved there first.
    progress    a ``tqdm.auto`` bar (closed at the end, also after an error); ``desc`` labels it.
    seconds     a time budget: ``steps`` becomes at most the number of steps that fit, measured by
                a probe of a few steps on a copy of the model (printed); ``None``: ``steps`` as given.

    The model is left in train mode (call ``model.eval()`` or use :func:`reconstruct` afterwards).
    In smoke mode (``MNF_SMOKE=1``, :mod:`mnf.budget`) at most ``SMOKE_CAPS["steps"]`` steps run
    (of the schedule for ``steps``); the planned and the done work go to
    :func:`mnf.budget.record_work`, as :func:`mnf.train.fit` does.
    """
    if (steps is None) == (epochs is None):
        raise ValueError(f"give exactly one of steps and epochs, got steps={steps!r}, epochs={epochs!r}")
    owner = "train_autoencoder"
    steps, epochs = (_check.optional_int(name, v, 1, owner) for name, v in (("steps", steps), ("epochs", epochs)))
    batch_size = _check.positive_int("batch_size", batch_size, owner)
    _check.module("model", model, owner)
    if next(model.parameters(), None) is None:
        raise ValueError(f"{owner}: the model has no parameters to train")
    lr = _check.real("lr", lr, 0, owner=owner)
    _check.integer("seed", seed, -2**63, 2**64 - 1, owner)
    _check.device("device", device, owner)
    _check.flag("progress", progress, owner)
    _check.optional_real("seconds", seconds, 0, low_open=True, owner=owner)
    if desc is not None and not isinstance(desc, str):
        raise _check.ArgumentTypeError(f"{owner}: desc must be a str or None, got {desc!r}")
    images = _images(images, "train_autoencoder")
    planned = steps       # the steps of a full run (smoke runs train on a subset of the images)
    if epochs is not None:
        steps = epochs * (len(images) // batch_size)
        planned = epochs * (full_size(images) // batch_size)
    if len(images) < batch_size:
        raise ValueError(f"train_autoencoder: {len(images)} images are fewer than one batch of {batch_size}")
    if device is not None:
        model.to(device)
    device, dtype = model_device(model), model_dtype(model)
    data = images.to(device)
    per_epoch = len(data) // batch_size
    if seconds is not None:
        steps = _steps_within(model, data[:batch_size], steps, seconds, lr, device, dtype)
        planned = min(planned, steps)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    run = cap(steps, "steps")
    losses: list[Tensor] = []
    step_times: list[float] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=run, desc=desc, unit="step", dynamic_ncols=True)
    model.train()
    try:
        last = time.perf_counter()
        for step in range(run):
            if step % per_epoch == 0:
                order = torch.randperm(len(data), generator=generator)[:per_epoch * batch_size].split(batch_size)
            x = _as_float(data[order[step % per_epoch].to(device)], device, dtype)
            loss = F.mse_loss(model(x), x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.detach())
            now = time.perf_counter()
            step_times.append(now - last)
            last = now
            if bar is not None:
                bar.update()
                if step % 10 == 0 or step == run - 1:
                    bar.set_postfix(loss=f"{losses[-1].item():.4f}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    if step_times:  # the first step pays for kernel compilation
        steady = step_times[1:] or step_times
        record_work("train_autoencoder", planned_images=planned * batch_size, images=len(steady) * batch_size,
                    seconds=sum(steady))
    return torch.stack(losses).tolist() if losses else []


def _steps_within(model: nn.Module, x: Tensor, steps: int, seconds: float, lr: float,
                  device: torch.device, dtype: torch.dtype) -> int:
    """Training steps of ``model`` on batches like ``x`` that fit into ``seconds`` (at most ``steps``)."""
    import copy
    import math
    import statistics
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"seconds must be a positive number or None, got {seconds!r}")
    probe = copy.deepcopy(model).train()
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr)
    x = _as_float(x, device, dtype)
    times = []
    for _ in range(2 + cap(4, "steps")):
        tic = time.perf_counter()
        loss = F.mse_loss(probe(x), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()                       # waits for the GPU
        times.append(time.perf_counter() - tic)
    step_s = statistics.median(times[2:])
    fit = max(1, min(steps, int(seconds / step_s)))
    print(f"plan: a step of {len(x)} images takes {1e3 * step_s:.1f} ms here; {seconds:.0f} s allow "
          f"{fit:,} steps (at most {steps:,})")
    return fit


def reconstruct(model: nn.Module, images: Tensor, *, batch_size: int = 500) -> Tensor:
    """``model(images)`` in eval mode under ``no_grad``, batch by batch on the model's device; the
    modes are restored afterwards (also after an error).

    ``images``: float ``(N, C, H, W)`` in [0, 1] (uint8 is divided by 255), on any device; each
    batch is moved to the model's device and cast to its floating dtype.  Returns the
    reconstructions as a float32 CPU tensor of the same shape (ready for :func:`psnr` against the
    CPU images and for plotting).
    """
    batch_size = _check.positive_int("batch_size", batch_size, "reconstruct")
    _check.module("model", model, "reconstruct")
    images = _images(images, "reconstruct")
    device, dtype = model_device(model), model_dtype(model)
    out = []
    with probe(model):
        for start in range(0, len(images), batch_size):
            out.append(model(_as_float(images[start:start + batch_size], device, dtype)).float().cpu())
    return torch.cat(out)


__all__ = ["AutoEncoder", "conv_autoencoder", "dense_autoencoder", "mf_autoencoder", "psnr", "reconstruct",
           "train_autoencoder"]
