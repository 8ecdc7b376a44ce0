"""The trainer: SGD + cosine / SGDR schedule on tensors that stay on the device.

    history = fit(model, load_cifar10(), epochs=10, out="runs/a")   # resumable from runs/a
    evaluate(model, images, labels).accuracy

One loop, no callbacks: each step takes a shuffled, augmented batch from :func:`mnf.data.batches`,
sets the learning rate of that step, runs forward / backward / SGD step.  Weight decay applies
to weights with ``dim > 1`` only (not to BN parameters or biases).  The learning rate per step
``i`` of ``T`` (``t`` = epochs done, fractional):

- ``"cosine"``: ``lr · ½(1 + cos(π i / T))``
- ``"sgdr"``: warm restarts (Loshchilov & Hutter 2017; seed 000 §3.4): the same cosine within
  periods of ``sgdr_t0``, ``sgdr_t0·sgdr_mult``, ... epochs, jumping back to ``lr`` at each
  restart.  Default ``sgdr_t0 = epochs / (1 + mult + mult²)``: three periods ending at the end.
- ``"constant"``: ``lr``.

With ``out`` the run writes ``history.json``, ``history.csv`` and ``checkpoint.pt`` there after
every epoch (atomically: temp file + ``os.replace``).  The checkpoint holds the architecture
(``model.arch``), weights, optimizer, step and RNG states, so ``fit(..., resume=True)`` continues
to exactly the weights an uninterrupted run reaches (on CPU).  Under ``torchrun`` (a process
group initialised, see :func:`setup_distributed`) the model is wrapped in DistributedDataParallel,
every rank draws the same batch and trains on its slice, BN buffers are re-synchronised from
rank 0 after every epoch, and only rank 0 writes files.
"""
from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from mnf import _check
from mnf.budget import cap, full_size, record_work
from mnf.metrics import Evaluation, evaluate, model_device, plot_confusion, plot_history

SCHEDULES = ("cosine", "sgdr", "constant")
COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "time", "images_per_s")


@dataclass
class History:
    """Per-epoch rows with :data:`COLUMNS`; ``history["test_acc"]`` is one column as a list."""

    rows: list[dict[str, float]] = field(default_factory=list)

    def __getitem__(self, key: str) -> list[float]:
        if key not in COLUMNS:
            raise KeyError(f"{key!r} is not a history column; valid: {', '.join(COLUMNS)}")
        return [row[key] for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def save(self, out: str | os.PathLike) -> None:
        """Write ``out/history.json`` and ``out/history.csv``."""
        out = Path(out)
        _atomic(out / "history.json", lambda p: p.write_text(json.dumps(self.rows, indent=1)))

        def write_csv(p: Path) -> None:
            with open(p, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(self.rows)
        _atomic(out / "history.csv", write_csv)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "History":
        """Read a ``history.json`` (a file, or the directory holding it)."""
        path = Path(path)
        return cls(json.loads((path / "history.json" if path.is_dir() else path).read_text()))


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def lr_at(step: int, total_steps: int, steps_per_epoch: int, lr: float, schedule: str,
          sgdr_t0: float, sgdr_mult: float) -> float:
    """Learning rate of optimisation step ``step`` (0-based) of ``total_steps``; see the module doc.

    ``step >= 0``, ``total_steps >= 1`` and ``steps_per_epoch >= 1`` ints; ``lr`` finite, ``>= 0``;
    ``sgdr_t0`` finite, ``> 0`` (epochs) and ``sgdr_mult`` finite, ``>= 1`` (each period at least
    as long as the one before; shorter ones would restart ever faster).  Constant time: the SGDR
    period holding ``step`` is found in closed form, not by stepping through the periods.
    """
    owner = "lr_at"
    step = _check.integer("step", step, 0, owner=owner)
    total_steps = _check.positive_int("total_steps", total_steps, owner)
    steps_per_epoch = _check.positive_int("steps_per_epoch", steps_per_epoch, owner)
    lr = _check.real("lr", lr, 0, owner=owner)
    _check.choice("schedule", schedule, SCHEDULES, owner)
    sgdr_t0 = _check.real("sgdr_t0", sgdr_t0, 0, low_open=True, owner=owner)
    sgdr_mult = _check.real("sgdr_mult", sgdr_mult, 1, owner=owner)
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))
    t, period = _sgdr_position(step / steps_per_epoch, sgdr_t0, sgdr_mult)
    return lr * 0.5 * (1 + math.cos(math.pi * t / period))


def _sgdr_position(t: float, t0: float, mult: float) -> tuple[float, float]:
    """``(t - start_k, t0 * mult**k)`` for the SGDR period ``k`` holding epoch ``t``: periods
    ``t0, t0·mult, ...`` start at ``start_k = t0 (mult**k - 1) / (mult - 1)`` (``k·t0`` for
    ``mult == 1``); a period counts as done ``1e-9`` epochs before its end (rounding)."""
    x = t + 1e-9
    if mult == 1:
        return math.fmod(x, t0) - 1e-9, t0

    def start(k: int) -> float:
        try:
            return t0 * (mult ** k - 1) / (mult - 1)
        except OverflowError:
            return math.inf

    ratio = x / t0 * (mult - 1)
    k = int(math.log1p(ratio) / math.log(mult)) if math.isfinite(ratio) else \
        int((math.log(x) - math.log(t0) + math.log(mult - 1)) / math.log(mult))
    while k > 0 and start(k) > x:      # rounding of the closed form: at most a step or two
        k -= 1
    while start(k + 1) <= x:
        k += 1
    return t - start(k), t0 * mult ** k


def setup_distributed() -> tuple[int, int, torch.device]:
    """Join the torchrun process group if ``WORLD_SIZE > 1`` (gloo on CPU, nccl on GPU).

    Returns ``(rank, world_size, device)``; ``(0, 1, cuda or cpu)`` outside torchrun.
    """
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ValueError(f"WORLD_SIZE must be an int (set by torchrun), got {os.environ['WORLD_SIZE']!r}") from None
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    return rank, world, device


def _unpack(data: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if isinstance(data, (tuple, list)) and len(data) == 4:
        return tuple(data)  # type: ignore[return-value]
    names = ("train_images", "train_labels", "test_images", "test_labels")
    if all(hasattr(data, n) for n in names):
        return tuple(getattr(data, n) for n in names)  # type: ignore[return-value]
    raise _check.ArgumentTypeError("data must be (train_images, train_labels, test_images, test_labels) "
                                   f"or an object with those attributes (mnf.data.load_cifar10()), got {type(data).__name__}")


def check_arch(saved: Any, model: nn.Module, path: Path) -> None:
    """Refuse a checkpoint whose architecture differs from ``model.arch``."""
    current = getattr(model, "arch", None)
    if saved != current:
        raise ValueError(f"checkpoint {path} was written for architecture {saved}, but the model is "
                         f"{current}; build the matching model (mnf.models.build(**arch)), or use "
                         "another out directory / resume=False")


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint was written for and load its weights; returns ``(model, checkpoint)``."""
    from mnf.models import build
    _check.path("path", path, "load_checkpoint")
    device = _check.device("device", device, "load_checkpoint", optional=False)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}")
    ckpt = _read_checkpoint(path, device)
    arch = ckpt["arch"]
    try:
        model = build(arch["name"], **arch["kwargs"]).to(device)
        model.load_state_dict(ckpt["model"])
    except Exception as error:  # noqa: BLE001 - an architecture or weights this version cannot rebuild
        raise ValueError(f"{path}: cannot rebuild the model {arch!r} from this checkpoint: "
                         f"{type(error).__name__}: {error}") from error
    return model, ckpt


def fit(model: nn.Module, data: Any, *, epochs: int, batch_size: int = 128, lr: float = 0.1,
        momentum: float = 0.9, nesterov: bool = True, weight_decay: float = 5e-4,
        schedule: str = "cosine", sgdr_t0: float | None = None, sgdr_mult: float = 2,
        label_smoothing: float = 0.0, adder_eta: float | None = 0.2, augment: bool = True,
        device: torch.device | str | None = None, channels_last: bool = False, amp: bool | None = None,
        seed: int = 0, out: str | os.PathLike | None = None, resume: bool = True, progress: bool = True,
        eval_every: int = 1, stop_after: int | None = None) -> History:
    """Train ``model`` in place with SGD and return its :class:`History` (see the module doc).

    data        ``(train_images, train_labels, test_images, test_labels)``: uint8 ``(N, 3, H, W)``
                and int64 ``(N,)`` tensors, or the :func:`mnf.data.load_cifar10` object.
    adder_eta   adaptive learning-rate factor of ``Adder2d`` layers (``mnf.layers.adder.adaptive_lr``),
                applied when the model has any; ``None`` disables it.
    amp         mixed precision; default on for CUDA: bf16 where the GPU has it natively (Ampere and
                newer), else fp16 with a GradScaler (e.g. Colab's T4); bf16 autocast on the CPU.
                Adder and WHT layers compute in float32 inside autocast regions.
    eval_every  evaluate on the test set every this many epochs (and after the last); NaN otherwise.
    stop_after  leave after this many epochs of this call (an int >= 1; the checkpoint lets a later
                call go on).

    Every argument is checked before anything is trained (``ValueError``, or ``TypeError`` for a
    wrong type, naming it): counts are ints >= 1, rates and factors finite (``lr``, ``momentum``,
    ``weight_decay`` >= 0, ``label_smoothing`` in [0, 1], ``sgdr_t0`` > 0, ``sgdr_mult`` >= 1,
    ``adder_eta`` > 0), flags bools, the data as above with labels the model can predict (one
    image is run through the model to read its number of outputs), neither set empty; a
    checkpoint that cannot be resumed raises ``ValueError`` saying why.

    In smoke mode (``MNF_SMOKE=1``, :mod:`mnf.budget`) a call runs at most ``SMOKE_CAPS["epochs"]``
    epochs of at most ``SMOKE_CAPS["steps_per_epoch"]`` steps, and logs the work it skipped
    (:func:`mnf.budget.record_work`).
    """
    from mnf.data import batches
    if isinstance(schedule, str) and schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; valid: {', '.join(map(repr, SCHEDULES))}")
    data, ckpt = _check_fit(model, data, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                            nesterov=nesterov, weight_decay=weight_decay, schedule=schedule, sgdr_t0=sgdr_t0,
                            sgdr_mult=sgdr_mult, label_smoothing=label_smoothing, adder_eta=adder_eta,
                            augment=augment, device=device, channels_last=channels_last, amp=amp, seed=seed,
                            out=out, resume=resume, progress=progress, eval_every=eval_every,
                            stop_after=stop_after)
    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} must be divisible by the {world} processes")
    device = torch.device(device) if device is not None else (
        torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu"))
    train_x, train_y, test_x, test_y = (t.to(device) for t in data)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)  # shuffling and augmentation, same on every rank

    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD([{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
                                 {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}],
                                lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    use_amp = device.type == "cuda" if amp is None else amp
    amp_dtype = amp_dtype_for(device)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == torch.float16)
    drop_last = len(train_x) >= batch_size
    steps_per_epoch = len(train_x) // batch_size if drop_last else 1
    total_steps = steps_per_epoch * epochs
    sgdr_t0 = epochs / (1 + sgdr_mult + sgdr_mult ** 2) if sgdr_t0 is None else sgdr_t0

    history, start, step = History(), 0, 0
    path = Path(out) / "checkpoint.pt" if out is not None else None
    if ckpt is not None:   # read by _check_fit (onto the CPU: RNG states must be CPU tensors), arch checked
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scaler.load_state_dict(ckpt["scaler"])
            history, start, step = History(ckpt["history"]), ckpt["epoch"], ckpt["step"]
            torch.set_rng_state(ckpt["rng"]["torch"])
            generator.set_state(ckpt["rng"]["generator"])
            if device.type == "cuda" and ckpt["rng"]["cuda"] is not None:
                torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
        except Exception as error:  # noqa: BLE001 - whatever a malformed checkpoint makes load_* raise
            raise ValueError(f"cannot resume from {path}: {type(error).__name__}: {error}; "
                             "use another out directory or resume=False") from error
    if path is not None and rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)

    hooks = []
    if adder_eta is not None and any(type(m).__name__ == "Adder2d" for m in model.modules()):
        from mnf.layers.adder import adaptive_lr
        hooks = list(adaptive_lr(model, eta=adder_eta))
    net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if distributed else model
    stop = epochs if stop_after is None else min(epochs, start + stop_after)
    planned_epochs = max(stop - start, 0)
    stop = start + cap(planned_epochs, "epochs")
    steps_cap = cap(steps_per_epoch, "steps_per_epoch")
    planned_batch, batch_size = batch_size, cap(batch_size, "batch_size")   # smoke steps are small
    step_times: list[float] = []
    bar = None
    if progress and rank == 0 and stop > start:
        from tqdm.auto import tqdm
        bar = tqdm(total=(stop - start) * steps_cap, unit="step", dynamic_ncols=True)
    try:
        for epoch in range(start, stop):
            net.train()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen, tic = 0, time.perf_counter()
            last = tic
            for i, (x, y) in enumerate(batches(train_x, train_y, batch_size, shuffle=True, augment=augment,
                                generator=generator, drop_last=drop_last)):
                if i == steps_cap:
                    break
                if world > 1:
                    share = len(x) // world
                    x, y = x[rank * share:(rank + 1) * share], y[rank * share:(rank + 1) * share]
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                rate = lr_at(step, total_steps, steps_per_epoch, lr, schedule, sgdr_t0, sgdr_mult)
                for group in optimizer.param_groups:
                    group["lr"] = rate
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    logits = net(x)
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                loss_sum += loss.detach() * len(y)
                correct += (logits.argmax(1) == y).sum()
                seen += len(y) * world
                step += 1
                now = time.perf_counter()
                step_times.append(now - last)
                last = now
                if bar is not None:
                    bar.update()
                    if step % 10 == 0 or seen >= len(train_x) - batch_size:
                        bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum.item() * world / seen:.3f}",
                                        acc=f"{correct.item() * world / seen:.3f}",
                                        img_s=f"{seen / (time.perf_counter() - tic):.0f}", refresh=False)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - tic
            if distributed:
                for buffer in model.buffers():
                    dist.broadcast(buffer, 0)
                totals = torch.stack([loss_sum, correct.to(loss_sum.dtype)])
                dist.all_reduce(totals)
                loss_sum, correct = totals[0], totals[1]
            row = dict(epoch=epoch + 1, lr=rate, train_loss=loss_sum.item() / seen, train_acc=correct.item() / seen,
                       test_loss=math.nan, test_acc=math.nan, time=elapsed, images_per_s=seen / elapsed)
            if (epoch + 1) % eval_every == 0 or epoch + 1 == epochs:
                result = evaluate(model, test_x, test_y, device=device, channels_last=channels_last)
                row.update(test_loss=result.loss, test_acc=result.accuracy)
            history.rows.append(row)
            if bar is not None:
                # Epochs without an evaluation (eval_every > 1) show no test accuracy rather than nan.
                tested = {} if math.isnan(row["test_acc"]) else {"test_acc": f"{row['test_acc']:.3f}"}
                bar.set_postfix(epoch=epoch + 1, loss=f"{row['train_loss']:.3f}", acc=f"{row['train_acc']:.3f}",
                                **tested, img_s=f"{row['images_per_s']:.0f}")
            if path is not None and rank == 0:
                ckpt = {"arch": getattr(model, "arch", None), "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                        "epoch": epoch + 1, "step": step, "history": history.rows,
                        "rng": {"torch": torch.get_rng_state(), "generator": generator.get_state(),
                                "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
                        "config": dict(epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule, seed=seed,
                                       weight_decay=weight_decay, label_smoothing=label_smoothing)}
                _atomic(path, lambda p: torch.save(ckpt, p))
                history.save(path.parent)
    finally:
        if bar is not None:
            bar.close()
        for h in hooks:
            h.remove()
    if step_times:  # the first step of a call pays for kernel compilation and oneDNN's set-up
        steady = step_times[1:] or step_times
        evals = sum(1 for e in range(start, start + planned_epochs) if (e + 1) % eval_every == 0 or e + 1 == epochs)
        full_steps = max(full_size(train_x) // planned_batch, 1) if drop_last else 1
        record_work("fit", planned_images=planned_epochs * full_steps * planned_batch + evals * full_size(test_x) / 3,
                    images=len(steady) * batch_size, seconds=sum(steady))
    return history


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


def _check_logits(model: nn.Module, data: tuple, owner: str) -> None:
    """One image through ``model`` (eval mode, no_grad, its device and dtype): its logits must be
    ``(1, k)`` with ``k`` above every label, so a label the model cannot predict is refused
    before training rather than by cross-entropy in the middle of it."""
    from mnf.data import normalize
    from mnf.metrics import as_input, model_dtype, probe
    with probe(model):
        out = model(as_input(normalize(data[0][:1]), model_device(model), model_dtype(model)))
    top = max(int(data[1].max()), int(data[3].max()))
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise ValueError(f"{owner}: the model must return logits of shape (N, classes), got "
                         f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    if top >= out.shape[1]:
        raise ValueError(f"{owner}: the labels go up to {top}, but the model has {out.shape[1]} outputs "
                         f"(classes 0..{out.shape[1] - 1}); build it with num_classes >= {top + 1}")


def _check_fit(model: nn.Module, data: Any, **kw: Any) -> tuple:
    """:func:`fit`'s arguments checked (see its docstring); returns the checked data and the
    checkpoint to resume from (``None`` without one), whose architecture has been checked."""
    owner = "fit"
    _check.module("model", model, owner)
    if next((p for p in model.parameters() if p.requires_grad), None) is None:
        raise ValueError(f"{owner}: the model has no trainable parameters")
    for name in ("epochs", "batch_size", "eval_every"):
        _check.positive_int(name, kw[name], owner)
    _check.optional_int("stop_after", kw["stop_after"], 1, owner)
    for name in ("lr", "momentum", "weight_decay"):
        _check.real(name, kw[name], 0, owner=owner)
    _check.real("label_smoothing", kw["label_smoothing"], 0, 1, owner=owner)
    _check.optional_real("sgdr_t0", kw["sgdr_t0"], 0, low_open=True, owner=owner)
    _check.real("sgdr_mult", kw["sgdr_mult"], 1, owner=owner)
    _check.optional_real("adder_eta", kw["adder_eta"], 0, low_open=True, owner=owner)
    for name in ("nesterov", "augment", "channels_last", "resume", "progress"):
        _check.flag(name, kw[name], owner)
    _check.optional_flag("amp", kw["amp"], owner)
    _check.choice("schedule", kw["schedule"], SCHEDULES, owner)
    _check.device("device", kw["device"], owner)
    _check.integer("seed", kw["seed"], -2**63, 2**64 - 1, owner)
    out = _check.path("out", kw["out"], owner, optional=True)
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ValueError(f"{owner}: out={str(out)!r} is a file; expected a directory for history and checkpoint")
    ckpt = None
    path = Path(out) / "checkpoint.pt" if out is not None else None
    if path is not None and kw["resume"] and path.is_file():   # a run to resume: its architecture first
        ckpt = _read_checkpoint(path, "cpu")   # RNG states must be CPU tensors; weights are copied to the device
        check_arch(ckpt.get("arch"), model, path)
    checked = check_data(data, owner)
    _check_logits(model, checked, owner)
    return checked, ckpt


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
    _check_logits(model, (train_x, train_y, test_x, test_y), owner)
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


def amp_dtype_for(device: torch.device) -> torch.dtype:
    """The autocast dtype :func:`fit` uses on ``device``: bf16 on CPUs and on GPUs with native bf16
    (compute capability >= 8.0), else fp16 (GPUs such as the T4 emulate bf16 convolutions slowly)."""
    device = _check.device("device", device, "amp_dtype_for", optional=False, available=False)
    if device.type != "cuda":
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


def _read_checkpoint(path: Path, device: torch.device | str) -> dict:
    """``torch.load`` of an mnf checkpoint, with one clear ``ValueError`` for anything else."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # noqa: BLE001 - corrupt, truncated or foreign files
        size = path.stat().st_size if path.exists() else 0
        what = "an empty file" if size == 0 else f"{size:,} bytes"
        raise ValueError(f"{path} is not a readable mnf checkpoint ({what}; torch.load raised "
                         f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no message'})") from error
    if not isinstance(ckpt, dict) or "model" not in ckpt or not ckpt.get("arch"):
        raise ValueError(f"{path} is not an mnf checkpoint with an architecture (keys: "
                         f"{sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__})")
    return ckpt


__all__ = ["COLUMNS", "Evaluation", "History", "SCHEDULES", "amp_dtype_for", "evaluate", "fit", "load_checkpoint",
           "lr_at", "Plan", "plan_training", "plot_confusion", "plot_history", "setup_distributed"]
