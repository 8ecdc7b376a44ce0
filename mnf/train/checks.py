"""The data and model checks :func:`mnf.train.fit` and :func:`mnf.train.plan_training` share."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mnf import _check
from mnf.metrics import model_device


def _unpack(data: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The four tensors of ``data``: a 4-tuple, or an object with the four attributes."""
    if isinstance(data, (tuple, list)) and len(data) == 4:
        return tuple(data)  # type: ignore[return-value]
    names = ("train_images", "train_labels", "test_images", "test_labels")
    if all(hasattr(data, n) for n in names):
        return tuple(getattr(data, n) for n in names)  # type: ignore[return-value]
    raise _check.ArgumentTypeError("data must be (train_images, train_labels, test_images, test_labels) "
                                   f"or an object with those attributes (mnf.data.load_cifar10()), got {type(data).__name__}")



def check_data(data: Any, owner: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(train_images, train_labels, test_images, test_labels)`` of ``data`` (see :func:`fit`),
    checked: uint8 ``(N, 3, H, W)`` images (or floats in [0, 255], :func:`mnf.data.check_pixels`),
    integer class indices ``>= 0`` (returned as int64) of matching length, no empty set."""
    from mnf.data import check_labels, check_pixels
    train_x, train_y, test_x, test_y = _unpack(data)
    out = []
    for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        check_pixels(x, owner, f"{split}_images")
        y = check_labels(y, len(x), owner, f"{split}_labels")
        if len(x) == 0:
            raise ValueError(f"{owner}: the {split} set is empty ({split}_images of shape {tuple(x.shape)}); "
                             f"expected at least one image")
        out += [x, y]
    return tuple(out)  # type: ignore[return-value]


def check_logits(model: nn.Module, data: tuple, owner: str, name: str = "model") -> int:
    """One image through ``model`` (eval mode, no_grad, its device and dtype): its logits must be
    ``(1, k)`` with ``k`` above every label, so a label the model cannot predict is refused
    before training rather than by cross-entropy in the middle of it.  Returns ``k``.
    ``name`` is what the messages call the model (``"teacher"`` for a distillation teacher)."""
    from mnf.data import normalize
    from mnf.metrics import as_input, model_dtype, probe
    with probe(model):
        out = model(as_input(normalize(data[0][:1]), model_device(model), model_dtype(model)))
    top = max(int(data[1].max()), int(data[3].max()))
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise ValueError(f"{owner}: the {name} must return logits of shape (N, classes), got "
                         f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    if top >= out.shape[1]:
        raise ValueError(f"{owner}: the labels go up to {top}, but the {name} has {out.shape[1]} outputs "
                         f"(classes 0..{out.shape[1] - 1}); build it with num_classes >= {top + 1}")
    return int(out.shape[1])

