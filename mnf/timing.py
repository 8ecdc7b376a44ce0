"""Wall-clock timing for the chapters and the benchmarks, in one module::

    with Stopwatch() as clock:                            # a block of work
        data = load_cifar10()
    print(f"{clock.seconds:.1f} s")
    best_seconds(lambda: walsh(n), repeat=3, warmup=0)     # fastest of 3 calls
    best_seconds_each([f, g], repeat=10)                   # f and g taking turns, fastest of each
    median_seconds(lambda: T.fwht(x))                      # median of 5 calls after 1 warm-up
    latency_ms(model, x, repeats=10)                       # ms per image, eval mode, no_grad, one thread

CUDA kernels run asynchronously, so a clock read without waiting for them measures only the
launch: every function here waits for the queued work of ``device`` before it reads the clock
(:func:`synchronizer`; ``device=None``: the current CUDA device whenever CUDA is initialised,
nothing otherwise).  In smoke mode (``MNF_SMOKE=1``, :mod:`mnf.budget`) the number of timed calls
is capped at ``SMOKE_CAPS["repeats"]``.  The benchmarks (:mod:`mnf.bench`) build on the
primitives :func:`threads`, :func:`synchronizer` and :func:`seconds`.
"""
from __future__ import annotations

import statistics
import time
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator, Sequence

import numba
import torch
from torch import nn

from mnf import _check
from mnf.budget import cap
from mnf.metrics import as_input, eval_mode, model_device, model_dtype

Sync = Callable[[], None]


# ----------------------------------------------------------------------------- primitives

@contextmanager
def threads(torch_threads: int, numba_threads: int | None = None) -> Iterator[None]:
    """Run the block with ``torch_threads`` torch threads and ``numba_threads`` Numba threads
    (capped at ``NUMBA_NUM_THREADS``; ``None`` leaves Numba alone); restore both afterwards."""
    saved = torch.get_num_threads(), numba.get_num_threads()
    try:
        torch.set_num_threads(torch_threads)
        if numba_threads is not None:
            numba.set_num_threads(min(numba_threads, numba.config.NUMBA_NUM_THREADS))
        yield
    finally:
        torch.set_num_threads(saved[0])
        numba.set_num_threads(saved[1])


_threads = threads   # for latency_ms, whose argument of that name hides the function


def _sync_if_cuda() -> None:
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _no_sync() -> None:
    pass


def synchronizer(device: torch.device | str | None = None) -> Sync:
    """A function that waits for the queued work of ``device``: ``torch.cuda.synchronize(device)``
    on a CUDA device, nothing on another device; for ``None``, the current CUDA device whenever
    CUDA is initialised (asked at every call), else nothing."""
    return _sync_for(device, "synchronizer")


def _sync_for(device: Any, owner: str) -> Sync:
    """:func:`synchronizer` of ``device``, checked for ``owner``: an unknown device (or a CUDA
    device this machine does not have) raises ValueError naming the argument."""
    device = _check.device("device", device, owner)
    if device is None:
        return _sync_if_cuda
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return _no_sync


def seconds(fn: Callable[[], Any], sync: Sync | None = None) -> float:
    """Wall time of one call of ``fn()``, with ``sync()`` before starting and before stopping the
    clock (default: ``synchronizer()``, CUDA whenever it is initialised)."""
    sync = sync or _sync_if_cuda
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def _check_timed(owner: str, name: str, fns: Sequence[Any], repeat: Any, warmup: Any) -> tuple[int, int]:
    """``repeat`` (an int >= 1) and ``warmup`` (an int >= 0) checked, and every one of ``fns`` callable."""
    for f in fns:
        if not callable(f):
            raise _check.ArgumentTypeError(f"{owner}: {name} must be callable with no arguments, "
                                           f"got {_check._shown(f)} of type {type(f).__name__}")
    return _check.positive_int("repeat", repeat, owner), _check.integer("warmup", warmup, 0, owner=owner)


def _timed(fns: Sequence[Callable[[], Any]], repeat: int, warmup: int, sync: Sync) -> list[list[float]]:
    """Seconds of every timed call of each of ``fns``, which take turns: ``warmup`` untimed calls
    of each, then ``repeat`` rounds of one timed call each (so a burst of load from elsewhere hits
    them alike); ``sync()`` after the warm-up and after every timed call."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    sync()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(cap(repeat, "repeats")):
        for fn, t in zip(fns, times):
            start = time.perf_counter()
            fn()
            sync()
            t.append(time.perf_counter() - start)
    return times


# ----------------------------------------------------------------------------- for chapters

def median_seconds(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1,
                   device: torch.device | str | None = None) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` calls (an int >= 1), after
    ``warmup`` untimed calls (an int >= 0: e.g. Numba compilation); ``device`` as in the module doc."""
    repeat, warmup = _check_timed("median_seconds", "fn", [fn], repeat, warmup)
    return statistics.median(_timed([fn], repeat, warmup, _sync_for(device, "median_seconds"))[0])


def best_seconds_each(fns: Sequence[Callable[[], Any]], repeat: int = 5, warmup: int = 1,
                      device: torch.device | str | None = None) -> list[float]:
    """The fastest of ``repeat`` timed calls of each of ``fns``, in seconds, one per function.

    The functions take turns (``warmup`` untimed calls of each, then rounds of one call each), so
    that all of them see the same load from whatever else runs on the machine; the minimum is
    the least disturbed call.  ``device`` as in the module doc.
    """
    if isinstance(fns, (str, bytes)) or not isinstance(fns, Sequence) or len(fns) == 0:
        raise _check.ArgumentTypeError(f"best_seconds_each: fns must be a non-empty list of callables, "
                                       f"got {_check._shown(fns)}")
    repeat, warmup = _check_timed("best_seconds_each", "fns", fns, repeat, warmup)
    return [min(t) for t in _timed(list(fns), repeat, warmup, _sync_for(device, "best_seconds_each"))]


def best_seconds(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1,
                 device: torch.device | str | None = None) -> float:
    """The fastest of ``repeat`` timed calls of ``fn()`` in seconds, after ``warmup`` untimed calls
    (see :func:`best_seconds_each`)."""
    repeat, warmup = _check_timed("best_seconds", "fn", [fn], repeat, warmup)
    return min(_timed([fn], repeat, warmup, _sync_for(device, "best_seconds"))[0])


class Stopwatch:
    """The wall time of a block, waiting for ``device``'s queued work at start and stop::

        with Stopwatch() as clock:
            history = fit(model, data, epochs=3)
        print(f"trained in {clock.seconds:.0f} s")

    ``seconds`` is the time from :meth:`start` (entering the block) to :meth:`stop` (leaving it);
    while the stopwatch runs, the time so far.
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        self._sync = _sync_for(device, "Stopwatch")
        self._start: float | None = None
        self._stop: float | None = None

    def start(self) -> "Stopwatch":
        """Start (or restart) the clock; returns the stopwatch."""
        self._sync()
        self._start, self._stop = time.perf_counter(), None
        return self

    def stop(self) -> float:
        """Stop the clock; returns :attr:`seconds`."""
        if self._start is None:
            raise RuntimeError("Stopwatch.stop: the stopwatch was never started")
        self._sync()
        self._stop = time.perf_counter()
        return self.seconds

    @property
    def seconds(self) -> float:
        """Seconds from start to stop (to now while running)."""
        if self._start is None:
            raise RuntimeError("Stopwatch.seconds: the stopwatch was never started")
        return (time.perf_counter() if self._stop is None else self._stop) - self._start

    def __enter__(self) -> "Stopwatch":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def latency_ms(model: nn.Module, x: torch.Tensor, repeats: int, threads: int | None = 1) -> float:
    """Median time of ``model(x)`` per image, in milliseconds: ``median / len(x)``.

    ``x`` (a float batch, any device) is moved to the model's device and cast to its floating
    dtype first (:mod:`mnf.metrics`).  One untimed warm-up call, then ``repeats`` timed ones, in
    eval mode under ``no_grad``; on CUDA the model's device is synchronised after every call.
    ``threads``: PyTorch's and Numba's CPU thread counts during the measurement (Numba's capped at
    ``NUMBA_NUM_THREADS``; ``None`` leaves both as they are).  Thread counts and every submodule's
    train/eval mode are restored afterwards, also when the model raises.
    """
    owner = "latency_ms"
    if not isinstance(model, nn.Module):
        raise _check.ArgumentTypeError(f"{owner}: model must be a torch.nn.Module, got {type(model).__name__}")
    repeats = _check.positive_int("repeats", repeats, owner)
    if threads is not None:
        _check.integer("threads", threads, 1, owner=owner)
    device = model_device(model)
    x = as_input(x, device, model_dtype(model))
    if x.dim() == 0 or len(x) == 0:
        raise ValueError(f"{owner} needs a non-empty batch, got shape {tuple(x.shape)}")

    pinned = nullcontext() if threads is None else _threads(threads, threads)
    with pinned, eval_mode(model), torch.no_grad():
        times = _timed([lambda: model(x)], repeats, 1, _sync_for(device, owner))[0]
    return 1e3 * statistics.median(times) / len(x)


__all__ = ["Stopwatch", "best_seconds", "best_seconds_each", "latency_ms", "median_seconds", "seconds",
           "synchronizer", "threads"]
