"""mnf: multiplier-free deep learning.

Subpackages (import what you need; nothing heavy is imported here):

- ``mnf.data``        CIFAR-10 as uint8 tensors, download, batched augmentation
- ``mnf.transforms``  Walsh-Hadamard transforms: matrices, orderings, fast kernels
- ``mnf.layers``      thresholding, WHT layers, adder layers
- ``mnf.models``      MobileNetV2 / ResNet-20 families with per-role layer policies
- ``mnf.train``       the trainer; ``mnf.cost`` parameter and operation counts
"""
from mnf.budget import budget, chapter, device, iterations, pick, smoke

__version__ = "0.1.0"
__all__ = ["budget", "chapter", "device", "iterations", "pick", "smoke", "__version__"]
