"""mnf: multiplier-free deep learning.

Subpackages (import what you need; nothing heavy is imported here unless MNF_SPIN=short, see below):

- ``mnf.data``        CIFAR-10 as uint8 tensors, download, batched augmentation
- ``mnf.transforms``  Walsh-Hadamard transforms: matrices, orderings, fast kernels
- ``mnf.layers``      thresholding, WHT layers, adder layers
- ``mnf.models``      MobileNetV2 / ResNet-20 families with per-role layer policies
- ``mnf.train``       the trainer; ``mnf.metrics`` evaluation, eval mode and hooks; ``mnf.cost``
  parameter and operation counts
- ``mnf.timing``      clocks that wait for CUDA: ``Stopwatch``, ``best_seconds``, ``median_seconds``
- ``mnf.diagrams``, ``mnf.plots``, ``mnf.tables``  the book's figures and tables

With ``MNF_SPIN=short`` in the environment, ``import mnf`` loads torch with a short spin for its
OpenMP workers (for machines that are busy most of the time; :mod:`mnf.runtime` says why it is
not the default), so import mnf before torch. Here: the budget helpers of :mod:`mnf.budget` a chapter starts and ends with
(``mnf.chapter(name)`` ... ``mnf.chapter_done()``).
"""
from mnf import runtime as _runtime

_runtime.apply_spin_policy()   # before anything loads torch (see mnf.runtime)

from mnf.budget import budget, chapter, chapter_done, device, iterations, pick, smoke  # noqa: E402

__version__ = "0.1.0"
__all__ = ["budget", "chapter", "chapter_done", "device", "iterations", "pick", "smoke", "__version__"]
