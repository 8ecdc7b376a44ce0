"""Layers that drop into any PyTorch model: thresholding, WHT layers, adder layers.

Importing compiles nothing; the Numba kernels compile (and are cached) on first use.
"""
from mnf.layers.adder import Adder2d, adaptive_lr
from mnf.layers.swap import SwapReport, swap_layers
from mnf.layers.threshold import Threshold, hard_threshold, smooth_threshold, soft_threshold, threshold
from mnf.layers.wht import WHTPointwise, WHTSpatial

__all__ = ["Adder2d", "SwapReport", "Threshold", "WHTPointwise", "WHTSpatial", "adaptive_lr",
           "hard_threshold", "smooth_threshold", "soft_threshold", "swap_layers", "threshold"]
