"""Wall-clock timing for the chapters: a generic median and a model's per-image latency.

    median_ms(lambda: T.fwht(x))                 # median of 5 timed calls after 1 warm-up, in ms
    latency_ms(model, x, repeats=10)             # ms per image, eval mode, no_grad, one thread

Both synchronise CUDA after every timed call when it is in use (kernels run asynchronously, so
without it a timer measures only the launch).  In smoke mode (``MNF_SMOKE=1``, :mod:`mnf.budget`)
the number of timed calls is capped at ``SMOKE_CAPS["repeats"]``.
"""
from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from typing import Any, Callable

import torch
from torch import nn

from mnf.bench.common import synchronizer, threads as thread_counts
from mnf.budget import cap
from mnf.metrics import as_input, eval_mode, model_device, model_dtype


def _check_int(name: str, value: Any, low: int) -> None:
    from mnf._check import integer
    integer(name, value, low)


def _cuda_sync() -> None:
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _median_seconds(fn: Callable[[], Any], repeat: int, warmup: int, sync: Callable[[], None]) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(cap(repeat, "repeats")):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_ms(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeat`` calls, after ``warmup`` untimed
    calls (e.g. Numba compilation).  When CUDA is initialised (``torch.cuda.is_initialized()``) the
    current device is synchronised after the warm-up and after every timed call."""
    if not callable(fn):
        raise TypeError(f"median_ms: fn must be a callable taking no arguments, got {type(fn).__name__}")
    _check_int("repeat", repeat, 1)
    _check_int("warmup", warmup, 0)
    return 1e3 * _median_seconds(fn, repeat, warmup, _cuda_sync)


def latency_ms(model: nn.Module, x: torch.Tensor, repeats: int, threads: int | None = 1) -> float:
    """Median time of ``model(x)`` per image, in milliseconds: ``median / len(x)``.

    ``x`` (a float batch, any device) is moved to the model's device and cast to its floating
    dtype first (:mod:`mnf.metrics`).  One untimed warm-up call, then ``repeats`` timed ones, in
    eval mode under ``no_grad``; on CUDA the model's device is synchronised after every call.
    ``threads``: PyTorch's and Numba's CPU thread counts during the measurement (Numba's capped at
    ``NUMBA_NUM_THREADS``; ``None`` leaves both as they are).  Thread counts and every submodule's
    train/eval mode are restored afterwards, also when the model raises.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"latency_ms: model must be a torch.nn.Module, got {type(model).__name__}")
    _check_int("repeats", repeats, 1)
    if threads is not None:
        from mnf._check import integer
        integer("threads", threads, 1, owner="latency_ms")
    device = model_device(model)
    x = as_input(x, device, model_dtype(model))
    if x.dim() == 0 or len(x) == 0:
        raise ValueError(f"latency_ms needs a non-empty batch, got shape {tuple(x.shape)}")

    pinned = nullcontext() if threads is None else thread_counts(threads, threads)
    with pinned, eval_mode(model), torch.no_grad():
        seconds = _median_seconds(lambda: model(x), repeats, 1, synchronizer(device))
    return 1e3 * seconds / len(x)


__all__ = ["latency_ms", "median_ms"]
