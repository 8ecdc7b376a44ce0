"""Layers that drop into any PyTorch model: thresholding, WHT layers, adder layers."""
