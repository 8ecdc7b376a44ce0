"""Evaluation (accuracy, per-class precision / recall / F1, confusion matrix), training plots, and
the device discipline every function that runs a model follows.

A function that takes a model runs on **the model's device** (:func:`model_device`: where its
first parameter, else its first buffer, lives; the CPU for a model with neither).  It moves the
data it is given there, cast to the model's floating dtype (:func:`model_dtype`), batch by batch
or at once (:func:`as_input`); creates its own tensors there; and returns reports as Python
numbers and CPU tensors.  Switching to eval mode and registering forward hooks are undone on
exit, also when the model raises (:func:`eval_mode`, :func:`probe`, :func:`forward_hooks`).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from mnf import _check


# ----------------------------------------------------------------------------- device discipline

def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter, else of its first buffer; ``cpu`` if it has neither."""
    _check.module("model", model, "model_device")
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of ``model``'s first floating-point parameter, else floating buffer; else
    ``torch.get_default_dtype()`` (float32 unless changed)."""
    _check.module("model", model, "model_dtype")
    for tensors in (model.parameters(), model.buffers()):
        for tensor in tensors:
            if tensor.is_floating_point():
                return tensor.dtype
    return torch.get_default_dtype()


def _same_device(a: torch.device, b: torch.device) -> bool:
    """Same device type and index (an index left out, as in ``"cuda"``, matches any index)."""
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def resolve_device(model: nn.Module, device: torch.device | str | None = None) -> torch.device:
    """:func:`model_device`; a ``device`` given as well must be that device (else ValueError).

    For functions that kept a ``device`` argument from before they followed the model: the model
    is not moved, so another device could only end in a device-mismatch error inside the model.
    A model without parameters and buffers runs wherever ``device`` says.
    """
    own = model_device(model)
    if device is None:
        return own
    device = _check.device("device", device, "resolve_device")
    has_state = next(model.parameters(), None) is not None or next(model.buffers(), None) is not None
    if not has_state:
        return device
    if not _same_device(device, own):
        raise ValueError(f"device={str(device)!r} was given, but {type(model).__name__} is on {own}; "
                         f"move the model first (model.to({str(device)!r})) or leave device out")
    return own


def as_input(x: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``x`` on ``device``, floating-point ``x`` cast to ``dtype`` (one ``x.to(device=, dtype=)`` call).

    uint8 input raises ValueError (images must be scaled or normalised first, e.g. with
    :func:`mnf.data.normalize`); other integer / bool tensors are moved and keep their dtype.
    """
    if not isinstance(x, torch.Tensor):
        raise _check.ArgumentTypeError(f"expected a tensor of model inputs, got {type(x).__name__}")
    if x.dtype == torch.uint8:
        raise ValueError("got uint8 inputs; the model takes floats: normalise images first "
                         "(mnf.data.normalize(images) for the classifiers, images.float() / 255 for the autoencoders)")
    if x.is_floating_point():
        return x.to(device=device, dtype=dtype)
    return x.to(device=device)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode; on exit give every submodule back its own train/eval mode
    (also when the body raises, and also when submodules were in different modes)."""
    _check.module("model", model, "eval_mode")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        model.train(modes[0][1])
        for m, mode in modes:
            if m.training != mode:
                m.training = mode


@contextlib.contextmanager
def forward_hooks(hooks: Iterable[tuple[nn.Module, Callable]]) -> Iterator[None]:
    """Forward hooks ``(module, hook)`` (``hook(module, inputs, output)``, as for
    ``register_forward_hook``) registered for the block and removed on exit, also when the body
    or a hook raises.  Modes and grad mode are left alone: this is for watching a model while it
    trains; :func:`probe` adds eval mode and ``no_grad``."""
    owner = "forward_hooks"
    try:
        pairs = list(hooks)
    except TypeError:
        raise _check.ArgumentTypeError(f"{owner}: hooks must be an iterable of (module, hook) pairs, "
                                       f"got {_check._shown(hooks)}") from None
    for pair in pairs:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise _check.ArgumentTypeError(f"{owner}: hooks must hold (module, hook) pairs, got {_check._shown(pair)}")
        _check.module("module", pair[0], owner)
        if not callable(pair[1]):
            raise _check.ArgumentTypeError(f"{owner}: a hook must be callable as hook(module, inputs, output), "
                                           f"got {_check._shown(pair[1])}")
    handles = []
    try:
        for module, hook in pairs:
            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def probe(model: nn.Module,
          hooks: Iterable[tuple[nn.Module, Callable]] = ()) -> Iterator[nn.Module]:
    """Eval mode (:func:`eval_mode`), ``torch.no_grad()`` and forward hooks ``(module, hook)``
    registered on submodules (:func:`forward_hooks`); all undone on exit, also when the body or a
    hook raises."""
    with eval_mode(model), torch.no_grad(), forward_hooks(hooks):
        yield model


# ----------------------------------------------------------------------------- evaluation

@dataclass
class Evaluation:
    """Scores of a model on a labelled set of ``k`` classes.

    ``confusion[i, j]`` counts images of class ``i`` predicted as ``j`` (int64 ``(k, k)``);
    ``precision``, ``recall``, ``f1`` are float ``(k,)`` (0 where undefined).
    """

    loss: float
    accuracy: float
    confusion: torch.Tensor
    precision: torch.Tensor
    recall: torch.Tensor
    f1: torch.Tensor


def scores(confusion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class ``(precision, recall, f1)`` from a ``(k, k)`` confusion matrix (rows = truth)."""
    _check.tensor("confusion", confusion, "scores")
    if confusion.dim() != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"scores: confusion must be a square (k, k) matrix, got shape {tuple(confusion.shape)}")
    c = confusion.double()
    tp = c.diag()
    precision = tp / c.sum(0).clamp(min=1)
    recall = tp / c.sum(1).clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    return precision, recall, f1


def _logits_width(out: torch.Tensor, k: int | None, top: int) -> int:
    """The width ``k`` of ``evaluate``'s logits ``out`` (``(N, k)``; equal to ``k`` if given), which
    must exceed the largest label ``top``."""
    if out.dim() != 2 or (k is not None and out.shape[1] != k):
        want = "(N, k) logits" if k is None else f"(N, {k}) logits for num_classes={k}"
        raise ValueError(f"evaluate: the model returned shape {tuple(out.shape)}, expected {want}")
    k = out.shape[1]
    if top >= k:
        raise ValueError(f"evaluate: labels must be class indices 0..{k - 1} for a model with {k} logits, "
                         f"got label {top}")
    return k


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 500,
             device: torch.device | str | None = None, num_classes: int | None = None,
             channels_last: bool = False) -> Evaluation:
    """Scores of ``model`` on uint8 images ``(N, 3, H, W)`` (normalised with :func:`mnf.data.normalize`)
    and labels ``(N,)``, on any device.

    Runs on the model's device (``device``, if given, must be it; see :func:`resolve_device`) in
    eval mode under ``no_grad``; the images go there once, and every normalised batch is cast to
    the model's floating dtype.  The modes are restored afterwards, also when the model raises.
    ``num_classes``, if given, must be the width of the model's logits (``ValueError`` otherwise:
    the confusion matrix is ``(k, k)`` with ``k`` the logits' width); labels must lie in
    ``0..k-1``.  Returns Python floats and CPU tensors.
    """
    from mnf.data import batches, check_images, check_labels
    owner = "evaluate"
    _check.module("model", model, owner)
    check_images(images, owner)
    labels = check_labels(labels, len(images), owner)
    if len(images) == 0:
        raise ValueError(f"need matching non-empty images and labels, got {len(images)} and {len(labels)}")
    batch_size = _check.positive_int("batch_size", batch_size, owner)
    num_classes = _check.optional_int("num_classes", num_classes, 1, owner)
    channels_last = _check.flag("channels_last", channels_last, owner)
    device, dtype = resolve_device(model, device), model_dtype(model)
    top = int(labels.max())   # the largest label, checked against the logits' width
    loss, k = 0.0, num_classes
    preds, truth = [], []
    with probe(model):
        for x, y in batches(images, labels, batch_size, shuffle=False, device=device):
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out = model(as_input(x, device, dtype))
            if out.dtype in (torch.float16, torch.bfloat16):
                out = out.float()
            k = _logits_width(out, k, top)
            loss += F.cross_entropy(out, y, reduction="sum").item()
            preds.append(out.argmax(1))
            truth.append(y)
    pred, true = torch.cat(preds), torch.cat(truth)
    confusion = torch.bincount(true * k + pred, minlength=k * k).reshape(k, k).cpu()
    precision, recall, f1 = scores(confusion)
    return Evaluation(loss / len(true), (pred == true).float().mean().item(), confusion, precision, recall, f1)


def plot_history(history, axes=None):
    """Loss, accuracy and learning-rate curves of a :class:`mnf.train.History`; returns the figure."""
    import matplotlib.pyplot as plt
    if axes is None:
        from mnf.plots import COLUMN_WIDTH
        fig, axes = plt.subplots(1, 3, figsize=(COLUMN_WIDTH, 2.6))
    fig = axes[0].figure
    epochs = history["epoch"]
    for key, ax in (("loss", axes[0]), ("acc", axes[1])):
        ax.plot(epochs, history[f"train_{key}"], "o-", label="train")
        ax.plot(epochs, history[f"test_{key}"], "s-", label="test")
        ax.set(xlabel="epoch", ylabel=key)
        ax.legend()
    axes[2].plot(epochs, history["lr"], "o-")
    axes[2].set(xlabel="epoch", ylabel="learning rate (end of epoch)")
    fig.tight_layout()
    return fig


def plot_confusion(matrix: torch.Tensor, classes: list[str] | None = None, ax=None):
    """Heat map of a ``(k, k)`` confusion matrix with the counts written in; returns the figure."""
    import matplotlib.pyplot as plt
    try:
        m = torch.as_tensor(matrix).cpu().numpy()
    except (TypeError, ValueError, RuntimeError) as error:
        raise _check.ArgumentTypeError(f"plot_confusion: matrix must be a (k, k) matrix of counts, got "
                                       f"{_check._shown(matrix)} ({error})") from None
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"plot_confusion: matrix must be a non-empty square (k, k) matrix, got shape {m.shape}")
    k = m.shape[0]
    if classes is not None and len(classes) != k:
        raise ValueError(f"plot_confusion: got {len(classes)} class names for a {k}x{k} matrix")
    classes = classes or [str(i) for i in range(k)]
    if ax is None:
        from mnf.plots import COLUMN_WIDTH
        side = min(1.2 + 0.5 * k, COLUMN_WIDTH)
        _, ax = plt.subplots(figsize=(side, side))
    ax.imshow(m, cmap="Blues")
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true")
    ax.set_xticklabels(classes, rotation=90)
    ax.set_yticklabels(classes)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=8 if k <= 12 else 6,
                    color="white" if m[i, j] > m.max() / 2 else "black")
    ax.figure.tight_layout()
    return ax.figure
