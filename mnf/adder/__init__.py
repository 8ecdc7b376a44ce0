"""Adder (negative-L1) convolution: ``Y = -sum |X - F|`` over each window (Urso 2022, eq. 3.1).

- :func:`adder2d` the differentiable function (dispatches to CPU or CUDA Numba kernels; float16 /
  bfloat16 arguments, e.g. under ``torch.autocast``, are computed in float32)
- :func:`output_size` the output rows (or columns) of a layer
- ``reference`` plain-NumPy loops (the definition), ``cpu`` Numba CPU kernels, ``cuda`` Numba
  CUDA kernels (each backend: torch tensors in and out), ``unfold`` the plain-torch reference
"""
from mnf.adder.function import Adder2dFunction, adder2d
from mnf.adder.shape import output_size

__all__ = ["Adder2dFunction", "adder2d", "output_size"]
