"""Evaluation (accuracy, per-class precision / recall / F1, confusion matrix) and training plots."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


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
    c = confusion.double()
    tp = c.diag()
    precision = tp / c.sum(0).clamp(min=1)
    recall = tp / c.sum(1).clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    return precision, recall, f1


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 500,
             device: torch.device | str | None = None, num_classes: int | None = None,
             channels_last: bool = False) -> Evaluation:
    """Evaluate ``model`` (in eval mode, restored afterwards) on uint8 ``(N, 3, H, W)`` images, labels ``(N,)``."""
    from mnf.data import batches
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"need matching non-empty images and labels, got {len(images)} and {len(labels)}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    training = model.training
    model.eval()
    loss, k = 0.0, num_classes
    preds, truth = [], []
    for x, y in batches(images, labels, batch_size, shuffle=False, device=device):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = model(x).float()
        k = k or out.shape[1]
        loss += F.cross_entropy(out, y, reduction="sum").item()
        preds.append(out.argmax(1))
        truth.append(y)
    model.train(training)
    pred, true = torch.cat(preds), torch.cat(truth)
    confusion = torch.bincount(true * k + pred, minlength=k * k).reshape(k, k).cpu()
    precision, recall, f1 = scores(confusion)
    return Evaluation(loss / len(true), (pred == true).float().mean().item(), confusion, precision, recall, f1)


def plot_history(history, axes=None):
    """Loss, accuracy and learning-rate curves of a :class:`mnf.train.History`; returns the figure."""
    import matplotlib.pyplot as plt
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
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
    m = torch.as_tensor(matrix).cpu().numpy()
    k = m.shape[0]
    classes = classes or [str(i) for i in range(k)]
    if ax is None:
        _, ax = plt.subplots(figsize=(1 + 0.5 * k, 1 + 0.5 * k))
    ax.imshow(m, cmap="Blues")
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true")
    ax.set_xticklabels(classes, rotation=90)
    ax.set_yticklabels(classes)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if m[i, j] > m.max() / 2 else "black")
    ax.figure.tight_layout()
    return ax.figure
