"""Model families with per-role layer policies, and a name registry for the CLI and checkpoints.

    model = build("mobilenet_v2", layout="cifar", width=0.5, pointwise="wht")
    model.arch          # {"name": "mobilenet_v2", "kwargs": {...}}: build(**) rebuilds it
"""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from mnf.models.autoencoder import AutoEncoder, conv_autoencoder, dense_autoencoder, mf_autoencoder, psnr
from mnf.models.mobilenet_v2 import MobileNetV2, mobilenet_v2
from mnf.models.resnet import ResNetCIFAR, resnet20

MODELS: dict[str, Callable[..., nn.Module]] = {"mobilenet_v2": mobilenet_v2, "resnet20": resnet20}


def build(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` (``"mobilenet_v2"`` or ``"resnet20"``) with ``kwargs``."""
    if not isinstance(name, str):
        from mnf._check import ArgumentTypeError
        raise ArgumentTypeError(f"model name must be one of {', '.join(map(repr, MODELS))}, got {name!r} "
                                f"of type {type(name).__name__}")
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(map(repr, MODELS))}")
    return MODELS[name](**kwargs)


__all__ = ["MODELS", "AutoEncoder", "MobileNetV2", "ResNetCIFAR", "build", "conv_autoencoder",
           "dense_autoencoder", "mf_autoencoder", "mobilenet_v2", "psnr", "resnet20"]
