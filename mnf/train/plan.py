"""How much training fits into a time budget on this machine: :func:`plan_training`."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mnf import _check
from mnf.budget import cap
from mnf.metrics import model_device
from mnf.train.checks import check_data, check_logits
from mnf.train.loop import amp_dtype_for


@dataclass
class Plan:
    """What :func:`plan_training` chose: ``epochs`` of :func:`fit` on ``data`` (the given data, or a
    stratified subset of its training images when not even one epoch of all of them fits)."""

    epochs: int
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
    reason: str


def plan_training(model: nn.Module, data: Any, *, seconds: float | None, max_epochs: int,
                  batch_size: int = 128, channels_last: bool = False, amp: bool | None = None,
                  device: torch.device | str | None = None, probe_steps: int = 6, verbose: bool = True,
                  **_: Any) -> Plan:
    """How much :func:`fit` training fits into ``seconds`` on this machine: a :class:`Plan`.

    Budgets are measured in time, not epochs: machines of one kind differ several-fold in speed
    (and a busy laptop is slower still), so a chapter asks what fits rather than fixing epochs.
    A short probe (a copy of ``model``, ``2 + probe_steps`` forward / backward / SGD steps on
    augmented batches of ``batch_size``; the median step) gives the cost of an epoch of ``data``'s
    training images plus one evaluation of its test images (a third of a step per image).  The
    plan is as many whole epochs as fit, at most ``max_epochs``; when not even one fits, one epoch
    on a stratified subset of the training images that does.  ``seconds=None`` plans
    ``max_epochs`` on all of ``data`` without probing (the ``ci`` and ``gpu`` budgets size their
    work in epochs).  Prints the choice and why when ``verbose``.  Extra keyword arguments (the
    rest of a recipe) are ignored, so ``plan_training(model, data, seconds=s, **recipe)`` works.
    """
    import copy
    import statistics

    from mnf.data import batches, stratified_subset
    owner = "plan_training"
    if not _check.is_int(max_epochs) or max_epochs < 1:
        raise (ValueError if _check.is_int(max_epochs) else _check.ArgumentTypeError)(
            f"plan_training: got max_epochs={max_epochs!r}, expected an int >= 1")
    if seconds is not None:
        real = isinstance(seconds, (int, float, np.integer, np.floating)) and not isinstance(seconds, bool)
        if not real or not math.isfinite(seconds) or seconds <= 0:
            raise (ValueError if real else _check.ArgumentTypeError)(
                f"plan_training: got seconds={seconds!r}, expected a positive number or None")
    _check.module("model", model, owner)
    batch_size = _check.positive_int("batch_size", batch_size, owner)
    probe_steps = _check.positive_int("probe_steps", probe_steps, owner)
    for name, value in (("channels_last", channels_last), ("verbose", verbose)):
        _check.flag(name, value, owner)
    _check.optional_flag("amp", amp, owner)
    device = _check.device("device", device, owner)
    train_x, train_y, test_x, test_y = check_data(data, owner)
    check_logits(model, (train_x, train_y, test_x, test_y), owner)
    if seconds is None:
        return Plan(max_epochs, (train_x, train_y, test_x, test_y), "epochs fixed by the budget")
    device = torch.device(device) if device is not None else model_device(model)
    probe = copy.deepcopy(model).to(device)
    if channels_last:
        probe.to(memory_format=torch.channels_last)
    probe.train()
    optimizer = torch.optim.SGD(probe.parameters(), lr=1e-3, momentum=0.9)
    use_amp = device.type == "cuda" if amp is None else amp
    steps = 2 + cap(probe_steps, "steps")
    generator = torch.Generator().manual_seed(0)
    index = torch.randint(0, len(train_x), (steps * batch_size,), generator=generator)
    times, tic = [], time.perf_counter()
    for x, y in batches(train_x[index], train_y[index], batch_size, augment=True, generator=generator,
                        device=device):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype_for(device), enabled=use_amp):
            loss = F.cross_entropy(probe(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        toc = time.perf_counter()
        times.append(toc - tic)
        tic = toc
    step_s = statistics.median(times[2:] or times)
    epoch_s = step_s * max(len(train_x) // batch_size, 1)
    eval_s = step_s * len(test_x) / batch_size / 3
    epochs = int((seconds - eval_s) // epoch_s)
    cost = f"a step of {batch_size} images takes {1e3 * step_s:.0f} ms here (median of {len(times) - 2} probe steps)"
    if epochs >= 1:
        epochs = min(epochs, max_epochs)
        reason = (f"{cost}, an epoch of {len(train_x):,} images {epoch_s:.0f} s: {seconds:.0f} s allow "
                  f"{epochs} epoch{'s' * (epochs != 1)} (at most {max_epochs})")
        plan = Plan(epochs, (train_x, train_y, test_x, test_y), reason)
    else:
        classes = int(train_y.max()) + 1 if len(train_y) else 1
        fit_images = max(seconds - eval_s, step_s) / step_s * batch_size
        per_class = max(int(fit_images // classes), -(-batch_size // classes))
        per_class = min(per_class, int(torch.bincount(train_y).min()))
        subset = stratified_subset(train_x, train_y, per_class, seed=0)
        reason = (f"{cost}, an epoch of {len(train_x):,} images {epoch_s:.0f} s: more than {seconds:.0f} s, so one "
                  f"epoch on {len(subset[0]):,} of them ({per_class} per class)")
        plan = Plan(1, (*subset, test_x, test_y), reason)
    if verbose:
        print("plan: " + plan.reason)
    return plan

