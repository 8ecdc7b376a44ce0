"""CIFAR-10 images as tensors: checks, stratified subsets, normalisation, augmentation, batches.

Everything works on whole batches on the tensors' device (no Dataset/DataLoader objects)."""
from __future__ import annotations

import math

import torch

from mnf import _check

# Per-channel statistics of the training set (pixel values scaled to [0, 1]).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def check_labels(labels, n: int | None, owner: str, name: str = "labels",
                 num_classes: int | None = None) -> torch.Tensor:
    """``labels`` as an int64 ``(N,)`` tensor of class indices ``>= 0`` (and ``< num_classes`` if
    given), ``N == n`` if given; any integer dtype is accepted (converted to int64)."""
    _check.tensor(name, labels, owner)
    if labels.dim() != 1:
        raise ValueError(f"{owner}: {name} must be a 1-d tensor of class indices, got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise _check.ArgumentTypeError(f"{owner}: {name} must be an integer tensor of class indices, "
                                       f"got {labels.dtype}")
    if n is not None and len(labels) != n:
        raise ValueError(f"{owner}: {n} images but {len(labels)} {name}")
    if len(labels):
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or (num_classes is not None and high >= num_classes):
            want = ">= 0" if num_classes is None else f"0..{num_classes - 1}"
            raise ValueError(f"{owner}: {name} must be class indices {want}, got values in [{low}, {high}]")
    return labels.long()


def check_images(images, owner: str, name: str = "images", channels: int | None = 3) -> torch.Tensor:
    """``images`` if they are a ``(N, channels, H, W)`` tensor of uint8 pixels (or floats in
    ``[0, 255]``, see :func:`normalize`)."""
    _check.tensor(name, images, owner)
    c = "C" if channels is None else channels
    if images.dim() != 4 or (channels is not None and images.shape[1] != channels):
        raise ValueError(f"{owner}: {name} must be a batch of shape (N, {c}, H, W), got {tuple(images.shape)}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise _check.ArgumentTypeError(f"{owner}: {name} must be uint8 pixels (0..255), got {images.dtype}")
    return images


def check_pixels(images, owner: str, name: str = "images") -> torch.Tensor:
    """:func:`check_images`, and for float images their values: finite, in ``[0, 255]``, and not
    all in ``[0, 1]`` (images scaled to [0, 1] would be normalised as if they were 0..255)."""
    check_images(images, owner, name)
    if images.is_floating_point() and images.numel():
        low, high = images.min().item(), images.max().item()
        if not (math.isfinite(low) and math.isfinite(high)) or low < 0 or high > 255:
            raise ValueError(f"{owner}: float {name} must hold pixel values in [0, 255], got values in "
                             f"[{low:.3g}, {high:.3g}] (already normalised, or not images?)")
        if high <= 1:
            raise ValueError(f"{owner}: float {name} with all values in [0, 1] look scaled to [0, 1] already; "
                             "expected 0..255 pixels: pass the uint8 images (or images * 255)")
    return images


def stratified_subset(images: torch.Tensor, labels: torch.Tensor, per_class: int,
                      seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` random images of every class, shuffled together: ``(10·per_class, ...)``.

    ``images`` any tensor with one item per label along axis 0; ``labels`` int ``(N,)`` class
    indices; ``per_class`` an int >= 1.  In smoke mode (``MNF_SMOKE=1``) ``per_class`` is cut to
    what the smallest class has, so a chapter's full-size request works on the smoke run's small
    data set.
    """
    from mnf.budget import note_full_size, smoke

    owner = "stratified_subset"
    per_class = _check.positive_int("per_class", per_class, owner)
    _check.tensor("images", images, owner)
    if images.dim() == 0:
        raise ValueError(f"{owner}: images must have one item per label along axis 0, got a 0-d tensor")
    labels = check_labels(labels, len(images), owner)
    seed = _check.integer("seed", seed, -2**63, 2**64 - 1, owner)
    if not len(labels):
        raise ValueError(f"{owner}: got no images (empty labels)")
    generator = torch.Generator().manual_seed(seed)
    asked = per_class
    if smoke() and len(labels):
        per_class = min(per_class, int(torch.bincount(labels).min()))
    picks = []
    for c in labels.unique().tolist():
        where = torch.nonzero(labels == c).flatten()
        if len(where) < per_class:
            raise ValueError(f"class {c} has {len(where)} images, fewer than per_class={per_class}")
        picks.append(where[torch.randperm(len(where), generator=generator)[:per_class]])
    index = torch.cat(picks)
    index = index[torch.randperm(len(index), generator=generator)]
    images, labels = images[index], labels[index]
    for t in (images, labels):
        note_full_size(t, asked * len(picks))
    return images, labels


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or float in [0, 255]) ``(N, 3, H, W)`` → float32 with the CIFAR-10 mean/std removed.

    Refused with ``ValueError``: another shape (one-channel images would broadcast to three),
    float images that cannot be 0..255 pixels -- all values in [0, 1] (images already scaled:
    multiply by 255 or pass the uint8 originals), negative (already normalised) or non-finite.
    """
    check_pixels(images, "normalize")
    mean = torch.tensor(MEAN, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=images.device).view(1, 3, 1, 1) * 255
    return (images.float() - mean) / std


def random_crop_flip(images: torch.Tensor, pad: int = 4,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Random ``pad``-pixel translation (zero fill) and horizontal flip of every image of a batch.

    ``images``: ``(N, C, H, W)`` of any dtype, on any device; the result has the same shape,
    dtype and device; the whole batch is one gather.
    """
    _check.tensor("images", images, "random_crop_flip")
    if images.ndim != 4:
        raise ValueError(f"random_crop_flip: expected a batch (N, C, H, W), got shape {tuple(images.shape)}")
    pad = _check.integer("pad", pad, 0, owner="random_crop_flip")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise _check.ArgumentTypeError(f"random_crop_flip: generator must be a torch.Generator or None, "
                                       f"got {type(generator).__name__}")
    n, c, h, w = images.shape
    _check.size(f"the batch padded by pad={pad}", n * c * (h + 2 * pad) * (w + 2 * pad),
                images.element_size(), "random_crop_flip")
    hp, wp = h + 2 * pad, w + 2 * pad
    device = images.device
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad)).reshape(n * c, hp * wp)
    shift = torch.randint(0, 2 * pad + 1, (2, n), generator=generator).to(device)
    flip = (torch.rand(n, generator=generator) < 0.5).to(device)
    cols = torch.arange(w, device=device).expand(n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + shift[1, :, None]      # (N, W)
    rows = shift[0, :, None] + torch.arange(h, device=device)                      # (N, H)
    # One flat gather: output pixel (y, x) of image i reads padded pixel (rows[i, y], cols[i, x]).
    index = (rows[:, :, None] * wp + cols[:, None, :]).reshape(n, 1, h * w)
    index = index.expand(n, c, h * w).reshape(n * c, h * w)
    return padded.gather(1, index).view(n, c, h, w)


augment = random_crop_flip


def batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, *, shuffle: bool = True,
            augment: bool = False, device: torch.device | str | None = None,
            generator: torch.Generator | None = None, drop_last: bool = False):
    """Yield ``(x, y)`` minibatches: ``x`` float32 normalised ``(B, 3, H, W)``, ``y`` int64 ``(B,)``.

    ``images`` uint8 ``(N, 3, H, W)`` (see :func:`normalize`), ``labels`` integer ``(N,)`` class
    indices.  The arguments are checked when ``batches`` is called (not at the first batch).  The
    tensors are moved to ``device`` once; shuffling, augmentation and normalisation then happen
    there, a whole batch at a time.
    """
    owner = "batches"
    check_pixels(images, owner)
    labels = check_labels(labels, len(images), owner)
    batch_size = _check.positive_int("batch_size", batch_size, owner)
    shuffle, augment, drop_last = (_check.flag(k, v, owner) for k, v in
                                   (("shuffle", shuffle), ("augment", augment), ("drop_last", drop_last)))
    device = _check.device("device", device, owner)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise _check.ArgumentTypeError(f"{owner}: generator must be a torch.Generator or None, "
                                       f"got {type(generator).__name__}")
    return _batches(images, labels, batch_size, shuffle, augment, device, generator, drop_last)


def _batches(images, labels, batch_size, shuffle, augment, device, generator, drop_last):
    images, labels = images.to(device), labels.to(device)
    n = len(images)
    order = (torch.randperm(n, generator=generator).to(images.device) if shuffle
             else torch.arange(n, device=images.device))
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        index = order[start:start + batch_size]
        x = images[index]
        if augment:
            x = random_crop_flip(x, generator=generator)
        yield normalize(x), labels[index]
