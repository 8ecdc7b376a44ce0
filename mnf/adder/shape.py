"""The output size of an adder (or any) convolution: the one place the formula is written."""
from __future__ import annotations

from mnf import _check


def output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output rows (or columns) of a layer on ``size`` input rows (or columns):
    ``(size + 2 * padding - kernel) // stride + 1``.

    ``size >= 0``, ``kernel >= 1``, ``stride >= 1``, ``padding >= 0`` (Python or NumPy ints;
    computed with Python ints, so huge paddings cannot wrap). ``ValueError`` when the kernel is
    larger than the padded input (no output position).
    """
    size = _check.integer("size", size, 0, owner="output_size")
    kernel = _check.positive_int("kernel", kernel, owner="output_size")
    stride = _check.positive_int("stride", stride, owner="output_size")
    padding = _check.integer("padding", padding, 0, owner="output_size")
    if kernel > size + 2 * padding:
        raise ValueError(f"output_size: kernel {kernel} is larger than the padded input {size + 2 * padding} "
                         f"(size {size}, padding {padding})")
    return (size + 2 * padding - kernel) // stride + 1
