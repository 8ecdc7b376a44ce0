"""Argument checks shared by the public functions: the project's error convention in one place.

Each check returns the value it accepted (NumPy integers and floats as Python ``int`` / ``float``)
or raises with a message that names the argument, says what was given and what was expected::

    Adder2d: in_channels must be an int >= 1, got 0
    lr_at: sgdr_mult must be a finite number >= 1, got nan

- a value of the wrong *type* raises :class:`ArgumentTypeError`, a ``TypeError`` that is also a
  ``ValueError`` (like NumPy's ``AxisError``), so code that catches the project's usual
  ``ValueError`` keeps working;
- a value of the right type outside the accepted range raises ``ValueError``.

The checks are O(1) Python meant for the entry of a public function (``finite_tensor`` reads
the tensor once, for data that would otherwise poison a model); kernels never see a value that
did not pass them, so nothing is checked inside a Numba loop.
"""
from __future__ import annotations

import functools
import math
import numbers
import os
from typing import Any, Callable, Iterable

import numpy as np

# A buffer larger than the machine's memory is refused before anything is allocated (and sizes
# are computed with Python ints, so absurd arguments can never wrap around int64 in a kernel).
MAX_BYTES = 1 << 48   # 256 TiB: the limit where the memory size is unknown


@functools.lru_cache(maxsize=1)
def memory_bytes() -> int:
    """The machine's physical memory in bytes (``MAX_BYTES`` where it cannot be read)."""
    try:
        return min(MAX_BYTES, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return MAX_BYTES


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (a ``TypeError``; also a ``ValueError``, see the module doc)."""


def _who(owner: str | None) -> str:
    return f"{owner}: " if owner else ""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _range(low, high, low_open: bool = False, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high}"
    return ""


def is_int(value: Any) -> bool:
    """True for Python and NumPy integers (not for ``bool``)."""
    if type(value) is int:   # the common case, without the ABC check
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def integer(name: str, value: Any, low: int | None = None, high: int | None = None,
            owner: str | None = None) -> int:
    """``value`` as an ``int`` in ``[low, high]`` (either bound optional); NumPy integers accepted."""
    if type(value) is not int:
        if not is_int(value):
            raise ArgumentTypeError(f"{_who(owner)}{name} must be an int{_range(low, high)}, got {_shown(value)} "
                                    f"of type {type(value).__name__}")
        value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{_who(owner)}{name} must be an int{_range(low, high)}, got {value}")
    return value


def positive_int(name: str, value: Any, owner: str | None = None) -> int:
    """``value`` as an ``int >= 1``."""
    return integer(name, value, 1, owner=owner)


def optional_int(name: str, value: Any, low: int | None = None, owner: str | None = None) -> int | None:
    """``None``, or ``value`` as an ``int >= low``."""
    return None if value is None else integer(name, value, low, owner=owner)


def real(name: str, value: Any, low: float | None = None, high: float | None = None, *,
         low_open: bool = False, high_open: bool = False, owner: str | None = None) -> float:
    """``value`` as a finite ``float`` within the bounds (open or closed); NaN and infinities refused."""
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{_who(owner)}{name} must be a finite number"
                                f"{_range(low, high, low_open, high_open)}, got {_shown(value)} "
                                f"of type {type(value).__name__}")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad = bad or (value <= low if low_open else value < low)
    if high is not None:
        bad = bad or (value >= high if high_open else value > high)
    if bad:
        raise ValueError(f"{_who(owner)}{name} must be a finite number{_range(low, high, low_open, high_open)}, "
                         f"got {value!r}")
    return value


def optional_real(name: str, value: Any, low: float | None = None, high: float | None = None, *,
                  low_open: bool = False, high_open: bool = False, owner: str | None = None) -> float | None:
    """``None``, or :func:`real`."""
    if value is None:
        return None
    return real(name, value, low, high, low_open=low_open, high_open=high_open, owner=owner)


def flag(name: str, value: Any, owner: str | None = None) -> bool:
    """``value`` as a ``bool`` (``bool`` or NumPy ``bool_``; not ``0``/``1``, not a string)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{_who(owner)}{name} must be True or False, got {_shown(value)} "
                                f"of type {type(value).__name__}")
    return bool(value)


def optional_flag(name: str, value: Any, owner: str | None = None) -> bool | None:
    """``None``, or :func:`flag`."""
    return None if value is None else flag(name, value, owner)


def choice(name: str, value: Any, choices: Iterable[str], owner: str | None = None) -> str:
    """``value`` if it is one of the strings ``choices``."""
    if isinstance(value, str) and value in choices:
        return value
    valid = ", ".join(map(repr, choices))
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{_who(owner)}{name} must be one of {valid}, got {_shown(value)} "
                                f"of type {type(value).__name__}")
    raise ValueError(f"{_who(owner)}{name} must be one of {valid}, got {value!r}")


def instance(name: str, value: Any, types: type | tuple[type, ...], expected: str,
             owner: str | None = None) -> Any:
    """``value`` if it is an instance of ``types`` (``expected`` describes them in the message)."""
    if not isinstance(value, types):
        raise ArgumentTypeError(f"{_who(owner)}{name} must be {expected}, got {_shown(value)} "
                                f"of type {type(value).__name__}")
    return value


def array(name: str, value: Any, owner: str | None = None) -> np.ndarray:
    """``np.asarray(value)``; a value NumPy cannot make an array of (ragged lists, ...) raises
    :class:`ArgumentTypeError` naming the argument."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as error:
        raise ArgumentTypeError(f"{_who(owner)}{name} must be an array or array-like of numbers, got "
                                f"{_shown(value)} ({error})") from None


def module(name: str, value: Any, owner: str | None = None):
    """``value`` if it is a ``torch.nn.Module``."""
    from torch import nn
    return instance(name, value, nn.Module, "a torch.nn.Module", owner)


def tensor(name: str, value: Any, owner: str | None = None, ndim: int | None = None):
    """``value`` if it is a ``torch.Tensor`` (of ``ndim`` dimensions, if given)."""
    import torch
    if not isinstance(value, torch.Tensor):
        instance(name, value, torch.Tensor, "a torch.Tensor", owner)
    if ndim is not None and value.dim() != ndim:
        raise ValueError(f"{_who(owner)}{name} must be a {ndim}-d tensor, got shape {tuple(value.shape)}")
    return value


def floating_tensor(name: str, value: Any, owner: str | None = None):
    """``value`` if it is a floating-point ``torch.Tensor``."""
    tensor(name, value, owner)
    if not value.is_floating_point():
        raise ArgumentTypeError(f"{_who(owner)}{name} must be a floating-point tensor, got {value.dtype}")
    return value


def finite_tensor(name: str, value: Any, owner: str | None = None, what: str = "values"):
    """``value`` if its floating-point entries are all finite (one pass over the tensor)."""
    import torch
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel():
        if not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(f"{_who(owner)}{name} must hold finite {what}, got {bad} NaN or infinite "
                             f"of {value.numel()}")
    return value


def path(name: str, value: Any, owner: str | None = None, optional: bool = False):
    """``value`` if it is a ``str`` or ``os.PathLike`` (or ``None`` when ``optional``)."""
    if value is None and optional:
        return None
    return instance(name, value, (str, os.PathLike), "a path (str or os.PathLike)" +
                    (" or None" if optional else ""), owner)


def device(name: str, value: Any, owner: str | None = None, optional: bool = True, available: bool = True):
    """``value`` as a ``torch.device`` (``None`` kept when ``optional``); an unknown device (or,
    with ``available``, one this machine does not have) raises ``ValueError`` naming it."""
    import torch
    if value is None and optional:
        return None
    if not isinstance(value, (str, torch.device)):
        raise ArgumentTypeError(f"{_who(owner)}{name} must be a torch.device or a device string such as "
                                f"'cpu' or 'cuda'{' (or None)' if optional else ''}, got {_shown(value)} "
                                f"of type {type(value).__name__}")
    try:
        dev = torch.device(value)
    except RuntimeError as error:
        raise ValueError(f"{_who(owner)}{name}: {value!r} is not a device ({error})") from None
    if not available:
        return dev
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{_who(owner)}{name}={str(value)!r}, but CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"{_who(owner)}{name}={str(value)!r}, but this machine has "
                         f"{torch.cuda.device_count()} CUDA device(s)")
    return dev


def size(what: str | Callable[[], str], elements: int, itemsize: int, owner: str | None = None) -> int:
    """Refuse a buffer of ``elements`` items of ``itemsize`` bytes larger than the machine's
    memory (:func:`memory_bytes`); ``what`` names the buffer and the arguments that size it (or
    is a function returning that text, formatted only for the error).

    ``elements`` is computed by the caller with Python ints (no wrap-around); returns it.
    """
    limit = memory_bytes()
    if elements * itemsize > limit:
        what = what() if callable(what) else what
        raise ValueError(f"{_who(owner)}{what} would need {elements:,} elements "
                         f"({elements * itemsize / 2**30:,.1f} GiB), more than this machine's memory "
                         f"({limit / 2**30:,.1f} GiB)")
    return elements
