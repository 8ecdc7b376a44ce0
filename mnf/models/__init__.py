"""Model builders with per-role layer choices, and a name registry for the CLI and checkpoints.

    model = build("mobilenet_v2", layout="cifar", width=0.5, pointwise="wht")
    model.arch          # {"name": "mobilenet_v2", "kwargs": {...}}: build(**model.arch) rebuilds it

Every builder takes keyword arguments only; a layer choice is a role keyword whose value is a
kind of :data:`mnf.models.policy.KINDS` (:data:`mnf.models.policy.ROLES` lists them per builder).
"""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from mnf.models.autoencoder import AutoEncoder, conv_autoencoder, dense_autoencoder, mf_autoencoder, psnr
from mnf.models.mobilenet_v2 import MobileNetV2, mobilenet_v2
from mnf.models.resnet import ResNetCIFAR, resnet20
from mnf.models.small import SmallCNN, small_cnn

MODELS: dict[str, Callable[..., nn.Module]] = {
    "mobilenet_v2": mobilenet_v2, "resnet20": resnet20, "small_cnn": small_cnn,
    "conv_autoencoder": conv_autoencoder, "mf_autoencoder": mf_autoencoder, "dense_autoencoder": dense_autoencoder,
}

# renamed keywords (role keyword, kind values): checkpoints that store the old names still load
RENAMED: dict[tuple[str, str], tuple[str, dict[str, str]]] = {
    ("resnet20", "layer"): ("conv3x3", {"dw_adder": "separable_adder"}),
    ("mf_autoencoder", "layer"): ("conv3x3", {"wht": "separable_adder_wht"}),
}


def _upgrade_arch(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` of builder ``name`` with keywords of older versions renamed (see :data:`RENAMED`)."""
    out = dict(kwargs)
    for (model, old), (new, values) in RENAMED.items():
        if model == name and old in out:
            if new in out:
                raise ValueError(f"{name}: got both {old}= (the old name) and {new}=; give {new}= only")
            value = out.pop(old)
            out[new] = values.get(value, value) if isinstance(value, str) else value
    return out


def build(name: str, kwargs: dict[str, Any] | None = None, **keywords: Any) -> nn.Module:
    """Build the registered model ``name`` (a key of :data:`MODELS`) with its keyword arguments.

    ``build("resnet20", conv3x3="adder")``, or ``build(**model.arch)`` with the arguments as a
    dict ``kwargs``: that rebuilds a model (same layers, parameters, state_dict keys).  The
    ``arch`` of a checkpoint written before the role keywords were renamed is translated
    (:data:`RENAMED`).
    """
    if not isinstance(name, str):
        from mnf._check import ArgumentTypeError
        raise ArgumentTypeError(f"model name must be one of {', '.join(map(repr, MODELS))}, got {name!r} "
                                f"of type {type(name).__name__}")
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(map(repr, MODELS))}")
    if kwargs is not None and not isinstance(kwargs, dict):
        from mnf._check import ArgumentTypeError
        raise ArgumentTypeError(f"build: kwargs must be a dict of {name}'s keyword arguments, got {kwargs!r}")
    return MODELS[name](**_upgrade_arch(name, {**(kwargs or {}), **keywords}))


__all__ = ["MODELS", "RENAMED", "AutoEncoder", "MobileNetV2", "ResNetCIFAR", "SmallCNN", "build", "conv_autoencoder",
           "dense_autoencoder", "mf_autoencoder", "mobilenet_v2", "psnr", "resnet20", "small_cnn"]
