"""CIFAR-10's files: where they live, reading them safely, loading the whole set as tensors.

The files read are the official "python version" layout (``cifar-10-batches-py/data_batch_1..5``,
``test_batch``, ``batches.meta``: pickled dicts).  They are unpickled with
:class:`RestrictedUnpickler`, which builds numpy arrays and builtin containers and refuses
anything else, so a tampered file cannot run code.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mnf import _check

FOLDER = "cifar-10-batches-py"
FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
NUM_CLASSES = 10


@dataclass(frozen=True)
class CIFAR10:
    """The dataset as CPU tensors: images ``(N, 3, 32, 32)`` uint8, labels ``(N,)`` int64."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]


def default_root() -> Path:
    """``$MNF_DATA`` if set, else a per-user cache directory (``$XDG_CACHE_HOME/mnf``)."""
    if os.environ.get("MNF_DATA"):
        return Path(os.environ["MNF_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "mnf"


# --------------------------------------------------------------------------- reading

class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only what the CIFAR files contain: numpy arrays, dtypes, builtin containers."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocol 2 (text -> latin-1 bytes)
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch file holds only numpy arrays "
                "and builtin containers, so this file is not one (or has been tampered with)")
        return super().find_class(module, name)


def read_batch(path: Path) -> dict[str, object]:
    """One pickled batch file as a dict with ``str`` keys.

    A file that is not a pickle (empty, truncated, another format) raises ``ValueError`` naming
    it; a pickle that would build anything but arrays and containers ``pickle.UnpicklingError``.
    """
    with open(path, "rb") as f:
        try:
            raw = RestrictedUnpickler(f, encoding="bytes").load()
        except pickle.UnpicklingError as error:
            if str(error).startswith("refusing to load"):
                raise
            raise ValueError(f"{path}: not a CIFAR-10 batch file ({error})") from error
        except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                UnicodeDecodeError, MemoryError) as error:
            raise ValueError(f"{path}: not a CIFAR-10 batch file ({type(error).__name__}: {error})") from error
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(raw).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _read_split(folder: Path, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for name in names:
        path = folder / name
        batch = read_batch(path)
        if "data" not in batch or "labels" not in batch:
            raise ValueError(f"{path}: expected a CIFAR-10 batch with 'data' and 'labels', got keys {sorted(batch)}")
        data, y = np.asarray(batch["data"]), np.asarray(batch["labels"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"{path}: expected uint8 data of shape (N, 3072), got {data.dtype} {data.shape}")
        if y.ndim != 1 or (y.size and y.dtype.kind not in "iu"):
            raise ValueError(f"{path}: expected a list of integer labels, got {y.dtype} of shape {y.shape}")
        if len(y) != len(data):
            raise ValueError(f"{path}: {len(data)} images but {len(y)} labels")
        if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
            raise ValueError(f"{path}: labels must lie in 0..{NUM_CLASSES - 1}, got values in [{y.min()}, {y.max()}]")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(y.astype(np.int64))
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


_CACHE: dict[Path, CIFAR10] = {}


def load_cifar10(root: str | os.PathLike | None = None, download: bool | None = None) -> CIFAR10:
    """Load CIFAR-10 from ``root/cifar-10-batches-py`` (cached in memory once per process).

    ``root``: argument, else ``$MNF_DATA``, else :func:`default_root`.  When the files are
    missing and ``download`` is true (default: unless ``$MNF_DOWNLOAD=0``) the official archive
    is fetched with :func:`download_cifar10`.

    In smoke mode (``MNF_SMOKE=1``, see :mod:`mnf.budget`) the result holds a stratified subset
    of ``SMOKE_CAPS["train_per_class"]`` / ``["test_per_class"]`` images per class.
    """
    from mnf.budget import SMOKE_CAPS, smoke

    _check.path("root", root, "load_cifar10", optional=True)
    _check.optional_flag("download", download, "load_cifar10")
    full = _load_full(root, download)
    if not smoke():
        return full
    from mnf.budget import note_full_size
    train = _first_per_class(full.train_images, full.train_labels, SMOKE_CAPS["train_per_class"])
    test = _first_per_class(full.test_images, full.test_labels, SMOKE_CAPS["test_per_class"])
    for small, big in ((train, full.train_images), (test, full.test_images)):
        for t in small:
            note_full_size(t, len(big))
    return CIFAR10(*train, *test, full.classes)


def _first_per_class(images: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``k`` images of every class, in file order (so the first image stays first)."""
    keep = torch.cat([torch.nonzero(labels == c).flatten()[:k] for c in labels.unique().tolist()]).sort().values
    return images[keep], labels[keep]


def _load_full(root: str | os.PathLike | None, download: bool | None) -> CIFAR10:
    root = Path(root).expanduser() if root is not None else default_root()
    folder = (root / FOLDER).resolve()
    if folder in _CACHE:
        return _CACHE[folder]
    if not all((folder / f).is_file() for f in FILES):
        if download is None:
            download = os.environ.get("MNF_DOWNLOAD", "1") != "0"
        if not download:
            raise FileNotFoundError(
                f"CIFAR-10 is not in {folder} and downloads are off. Put the official "
                f"'{FOLDER}' folder under {root}, set MNF_DATA to a directory that has it, "
                "or allow downloads (download=True / MNF_DOWNLOAD=1).")
        from mnf.data.download import download_cifar10   # imported here: it imports this module
        download_cifar10(root)
    train_images, train_labels = _read_split(folder, FILES[:5])
    test_images, test_labels = _read_split(folder, ["test_batch"])
    names = read_batch(folder / "batches.meta").get("label_names")
    if not isinstance(names, (list, tuple)) or len(names) != NUM_CLASSES:
        raise ValueError(f"{folder / 'batches.meta'}: expected {NUM_CLASSES} label_names, got {names!r}")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    _CACHE[folder] = CIFAR10(train_images, train_labels, test_images, test_labels, classes)
    return _CACHE[folder]

