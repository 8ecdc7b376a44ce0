"""The training loop: :func:`fit` (and the torchrun set-up and autocast dtype it uses)."""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from mnf import _check
from mnf.budget import cap, full_size, record_work
from mnf.metrics import evaluate
from mnf.train.checkpoint import check_arch, read_checkpoint, write_atomic
from mnf.train.checks import check_data, check_logits
from mnf.train.history import History
from mnf.train.schedule import SCHEDULES, lr_at


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



def amp_dtype_for(device: torch.device) -> torch.dtype:
    """The autocast dtype :func:`fit` uses on ``device``: bf16 on CPUs and on GPUs with native bf16
    (compute capability >= 8.0), else fp16 (GPUs such as the T4 emulate bf16 convolutions slowly)."""
    device = _check.device("device", device, "amp_dtype_for", optional=False, available=False)
    if device.type != "cuda":
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


def fit(model: nn.Module, data: Any, *, epochs: int, batch_size: int = 128, lr: float = 0.1,
        momentum: float = 0.9, nesterov: bool = True, weight_decay: float = 5e-4,
        schedule: str = "cosine", sgdr_t0: float | None = None, sgdr_mult: float = 2,
        label_smoothing: float = 0.0, adder_eta: float | None = 0.2, augment: bool = True,
        device: torch.device | str | None = None, channels_last: bool = False, amp: bool | None = None,
        seed: int = 0, out: str | os.PathLike | None = None, resume: bool = True, progress: bool = True,
        eval_every: int = 1, stop_after: int | None = None, teacher: nn.Module | None = None,
        distill: float = 0.5, temperature: float = 4.0) -> History:
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
    teacher     knowledge distillation (Hinton et al. 2015): a trained model with the same number of
                outputs, run in eval mode without gradients on every training batch.  The loss is
                ``(1 − distill) · CE(s, y) + distill · temperature² · KL(softmax(t/τ) ‖ softmax(s/τ))``
                with ``s``, ``t`` the student's and teacher's logits and ``τ = temperature``.
                The teacher is moved to the training device (and memory format) and put in eval mode;
                its forward pass is part of every step (and of the step time).  A checkpoint does not
                hold the teacher: pass it again when resuming.
    distill     weight of the distillation term in [0, 1] (used only with a ``teacher``).
    temperature τ > 0 of the softened distributions.

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
                            stop_after=stop_after, teacher=teacher, distill=distill, temperature=temperature)
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

    if teacher is not None:
        teacher.to(device).eval()
        if channels_last:
            teacher.to(memory_format=torch.channels_last)
    hooks = []
    from mnf.layers.adder import Adder2d, adaptive_lr
    if adder_eta is not None and any(isinstance(m, Adder2d) for m in model.modules()):
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
                    if teacher is not None:
                        with torch.no_grad():
                            soft = F.log_softmax(teacher(x).float() / temperature, dim=1)
                        kl = F.kl_div(F.log_softmax(logits.float() / temperature, dim=1), soft, log_target=True,
                                      reduction="batchmean")
                        loss = (1 - distill) * loss + distill * temperature ** 2 * kl
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
                write_atomic(path, lambda p: torch.save(ckpt, p))
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
    _check.real("distill", kw["distill"], 0, 1, owner=owner)
    _check.real("temperature", kw["temperature"], 0, low_open=True, owner=owner)
    if kw["teacher"] is not None:
        _check.module("teacher", kw["teacher"], owner)
        if kw["teacher"] is model:
            raise ValueError(f"{owner}: teacher is the model being trained; pass a separately trained model")
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
        ckpt = read_checkpoint(path, "cpu")   # RNG states must be CPU tensors; weights are copied to the device
        check_arch(ckpt.get("arch"), model, path)
    checked = check_data(data, owner)
    width = check_logits(model, checked, owner)
    if kw["teacher"] is not None:
        teacher_width = check_logits(kw["teacher"], checked, owner, name="teacher")
        if teacher_width != width:
            raise ValueError(f"{owner}: the teacher gives {teacher_width} logits, the model {width}; "
                             "distillation needs the same classes")
    return checked, ckpt

