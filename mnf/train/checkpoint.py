"""Checkpoints of :func:`mnf.train.fit`: reading them, checking their architecture, rebuilding the
model they were written for, and writing files atomically (temp file + ``os.replace``)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from mnf import _check


def write_atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it to ``path`` in one step
    (an interrupted run never leaves half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def read_checkpoint(path: Path, device: torch.device | str) -> dict:
    """``torch.load`` of an mnf checkpoint, with one clear ``ValueError`` for anything else."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # noqa: BLE001 - corrupt, truncated or foreign files
        size = path.stat().st_size if path.exists() else 0
        what = "an empty file" if size == 0 else f"{size:,} bytes"
        raise ValueError(f"{path} is not a readable mnf checkpoint ({what}; torch.load raised "
                         f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no message'})") from error
    if not isinstance(ckpt, dict) or "model" not in ckpt or not ckpt.get("arch"):
        raise ValueError(f"{path} is not an mnf checkpoint with an architecture (keys: "
                         f"{sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__})")
    return ckpt



def check_arch(saved: Any, model: nn.Module, path: Path) -> None:
    """Refuse a checkpoint whose architecture differs from ``model.arch``."""
    current = getattr(model, "arch", None)
    if saved != current:
        raise ValueError(f"checkpoint {path} was written for architecture {saved}, but the model is "
                         f"{current}; build the matching model (mnf.models.build(**arch)), or use "
                         "another out directory / resume=False")


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint was written for and load its weights; returns ``(model, checkpoint)``."""
    from mnf.models import build
    _check.path("path", path, "load_checkpoint")
    device = _check.device("device", device, "load_checkpoint", optional=False)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}")
    ckpt = read_checkpoint(path, device)
    arch = ckpt["arch"]
    try:
        model = build(arch["name"], **arch["kwargs"]).to(device)
        model.load_state_dict(ckpt["model"])
    except Exception as error:  # noqa: BLE001 - an architecture or weights this version cannot rebuild
        raise ValueError(f"{path}: cannot rebuild the model {arch!r} from this checkpoint: "
                         f"{type(error).__name__}: {error}") from error
    return model, ckpt

