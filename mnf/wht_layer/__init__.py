"""The WHT layers' kernels: transform, threshold (and scale), inverse transform.

- ``reference`` the maps with dense Hadamard matrices (torch): the definition
- ``cpu`` fused Numba CPU kernels (one pass over the data, forward and backward)
- ``cuda`` the CUDA path: ``mnf.transforms``' CUDA kernels composed with torch ops
- ``function`` the one dispatch point: ``Pointwise`` / ``Spatial`` (``torch.autograd.Function``),
  backend picked by device

The modules of :mod:`mnf.layers.wht` (``WHTPointwise``, ``WHTSpatial``) check the input and
apply these Functions. Importing compiles nothing.
"""
from mnf.wht_layer.function import Pointwise, Spatial

__all__ = ["Pointwise", "Spatial"]
