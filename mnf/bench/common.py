"""What the benchmarks share: thread counts for a measurement and a CUDA-aware timer."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numba
import torch


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


def synchronizer(device: torch.device | str) -> Callable[[], None]:
    """A function that waits for the queued work of ``device``: ``torch.cuda.synchronize`` on CUDA
    (kernels run asynchronously; without it a timer measures only the launch), else nothing."""
    device = torch.device(device)
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def seconds(fn: Callable[[], Any], sync: Callable[[], None]) -> float:
    """Wall time of one call of ``fn()``, with ``sync()`` before starting and before stopping."""
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0
