"""CIFAR-10 as tensors: loading, downloading, batched augmentation.

The whole dataset is 180 MB of uint8, so it lives in memory (and on the training device) as
tensors; there are no Dataset/DataLoader objects and no torchvision.

    data = load_cifar10()                       # root: argument, else $MNF_DATA, else ~/.cache/mnf
    data.train_images.shape                     # (50000, 3, 32, 32) uint8
    for x, y in batches(data.train_images, data.train_labels, 128, augment=True):
        ...                                     # x: (128, 3, 32, 32) float32, normalised

The files read are the official "python version" layout (``cifar-10-batches-py/data_batch_1..5``,
``test_batch``, ``batches.meta``: pickled dicts).  They are unpickled with
:class:`RestrictedUnpickler`, which builds numpy arrays and builtin containers and refuses
anything else, so a tampered file cannot run code.
"""
from __future__ import annotations

import hashlib
import http.client
import math
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from mnf import _check

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
NUM_CLASSES = 10
# Per-channel statistics of the training set (pixel values scaled to [0, 1]).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


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
        download_cifar10(root)
    train_images, train_labels = _read_split(folder, FILES[:5])
    test_images, test_labels = _read_split(folder, ["test_batch"])
    names = read_batch(folder / "batches.meta").get("label_names")
    if not isinstance(names, (list, tuple)) or len(names) != NUM_CLASSES:
        raise ValueError(f"{folder / 'batches.meta'}: expected {NUM_CLASSES} label_names, got {names!r}")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    _CACHE[folder] = CIFAR10(train_images, train_labels, test_images, test_labels, classes)
    return _CACHE[folder]


# --------------------------------------------------------------------------- downloading

class DownloadError(RuntimeError):
    """The archive could not be fetched, was corrupt, or was unsafe to extract."""


def download_cifar10(root: str | os.PathLike, url: str = URL, md5: str | None = MD5,
                     timeout: float = 30.0, progress: bool = True) -> Path:
    """Fetch the official archive into ``root`` and unpack ``root/cifar-10-batches-py``.

    Streams to a temporary file beside the destination, checks the length and the md5 sum,
    extracts with a filter that refuses absolute paths, ``..`` and links, and moves the folder
    into place with one rename, so an interrupted or corrupt download leaves nothing behind.
    """
    from tqdm.auto import tqdm

    _check.path("root", root, "download_cifar10")
    _check.instance("url", url, str, "a URL string", "download_cifar10")
    if md5 is not None:
        _check.instance("md5", md5, str, "a hex digest string or None", "download_cifar10")
    timeout = _check.real("timeout", timeout, 0, low_open=True, owner="download_cifar10")
    progress = _check.flag("progress", progress, "download_cifar10")
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        archive = Path(tmp) / "cifar-10-python.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(archive, "wb") as f:
                total = int(response.headers.get("Content-Length") or 0)
                digest, received = hashlib.md5(), 0
                with tqdm(total=total or None, unit="B", unit_scale=True, desc="CIFAR-10",
                          disable=not progress) as bar:
                    while chunk := response.read(1 << 20):
                        f.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            raise DownloadError(
                f"could not download {url} into {root} ({err}). Offline? Point MNF_DATA at a "
                f"directory that holds '{FOLDER}' (in this repository: "
                "`python ../shared/data/make_cifar10.py DIR`), or pass root=...") from err
        if total and received != total:
            raise DownloadError(f"download of {url} truncated: got {received} of {total} bytes; "
                                "nothing was kept, try again")
        if md5 is not None and digest.hexdigest() != md5:
            raise DownloadError(f"md5 of {url} is {digest.hexdigest()}, expected {md5}: the file is "
                                "corrupt or not the official archive; nothing was kept")
        staging = Path(tmp) / "extract"
        _safe_extract(archive, staging)
        if not all((staging / FOLDER / f).is_file() for f in FILES):
            raise DownloadError(f"{url} does not contain {FOLDER}/ with {', '.join(FILES)}")
        target = root / FOLDER
        if target.exists():  # a partial folder from an older copy: replace it whole
            shutil.rmtree(target)
        os.replace(staging / FOLDER, target)
    return target


def _safe_extract(archive: Path, dest: Path) -> None:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                parts = PurePosixPath(m.name).parts
                if m.name.startswith(("/", "\\")) or ".." in parts or not (m.isfile() or m.isdir()):
                    raise DownloadError(f"refusing to extract {m.name!r} from {archive.name}: "
                                        "absolute paths, '..' and links are not allowed")
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DownloadError(f"{archive.name} is corrupt or truncated ({err}); nothing was kept") from err


# --------------------------------------------------------------------------- batches

def check_labels(labels, n: int | None, owner: str, name: str = "labels",
                 num_classes: int | None = None) -> torch.Tensor:
    """``labels`` as an int64 ``(N,)`` tensor of class indices ``>= 0`` (and ``< num_classes`` if
    given), ``N == n`` if given; any integer dtype is accepted (converted to int64)."""
    _check.tensor(name, labels, owner)
    if labels.dim() != 1:
        raise ValueError(f"{owner}: {name} must be a 1-d tensor of class indices, got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise _check.ArgumentTypeError(f"{owner}: {name} must be an integer tensor of class indices, "
                                       f"got {labels.dtype}")
    if n is not None and len(labels) != n:
        raise ValueError(f"{owner}: {n} images but {len(labels)} {name}")
    if len(labels):
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or (num_classes is not None and high >= num_classes):
            want = ">= 0" if num_classes is None else f"0..{num_classes - 1}"
            raise ValueError(f"{owner}: {name} must be class indices {want}, got values in [{low}, {high}]")
    return labels.long()


def check_images(images, owner: str, name: str = "images", channels: int | None = 3) -> torch.Tensor:
    """``images`` if they are a ``(N, channels, H, W)`` tensor of uint8 pixels (or floats in
    ``[0, 255]``, see :func:`normalize`)."""
    _check.tensor(name, images, owner)
    c = "C" if channels is None else channels
    if images.dim() != 4 or (channels is not None and images.shape[1] != channels):
        raise ValueError(f"{owner}: {name} must be a batch of shape (N, {c}, H, W), got {tuple(images.shape)}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise _check.ArgumentTypeError(f"{owner}: {name} must be uint8 pixels (0..255), got {images.dtype}")
    return images


def check_pixels(images, owner: str, name: str = "images") -> torch.Tensor:
    """:func:`check_images`, and for float images their values: finite, in ``[0, 255]``, and not
    all in ``[0, 1]`` (images scaled to [0, 1] would be normalised as if they were 0..255)."""
    check_images(images, owner, name)
    if images.is_floating_point() and images.numel():
        low, high = images.min().item(), images.max().item()
        if not (math.isfinite(low) and math.isfinite(high)) or low < 0 or high > 255:
            raise ValueError(f"{owner}: float {name} must hold pixel values in [0, 255], got values in "
                             f"[{low:.3g}, {high:.3g}] (already normalised, or not images?)")
        if high <= 1:
            raise ValueError(f"{owner}: float {name} with all values in [0, 1] look scaled to [0, 1] already; "
                             "expected 0..255 pixels: pass the uint8 images (or images * 255)")
    return images


def stratified_subset(images: torch.Tensor, labels: torch.Tensor, per_class: int,
                      seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` random images of every class, shuffled together: ``(10·per_class, ...)``.

    ``images`` any tensor with one item per label along axis 0; ``labels`` int ``(N,)`` class
    indices; ``per_class`` an int >= 1.  In smoke mode (``MNF_SMOKE=1``) ``per_class`` is cut to
    what the smallest class has, so a chapter's full-size request works on the smoke run's small
    data set.
    """
    from mnf.budget import note_full_size, smoke

    owner = "stratified_subset"
    per_class = _check.positive_int("per_class", per_class, owner)
    _check.tensor("images", images, owner)
    if images.dim() == 0:
        raise ValueError(f"{owner}: images must have one item per label along axis 0, got a 0-d tensor")
    labels = check_labels(labels, len(images), owner)
    seed = _check.integer("seed", seed, -2**63, 2**64 - 1, owner)
    if not len(labels):
        raise ValueError(f"{owner}: got no images (empty labels)")
    generator = torch.Generator().manual_seed(seed)
    asked = per_class
    if smoke() and len(labels):
        per_class = min(per_class, int(torch.bincount(labels).min()))
    picks = []
    for c in labels.unique().tolist():
        where = torch.nonzero(labels == c).flatten()
        if len(where) < per_class:
            raise ValueError(f"class {c} has {len(where)} images, fewer than per_class={per_class}")
        picks.append(where[torch.randperm(len(where), generator=generator)[:per_class]])
    index = torch.cat(picks)
    index = index[torch.randperm(len(index), generator=generator)]
    images, labels = images[index], labels[index]
    for t in (images, labels):
        note_full_size(t, asked * len(picks))
    return images, labels


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or float in [0, 255]) ``(N, 3, H, W)`` → float32 with the CIFAR-10 mean/std removed.

    Refused with ``ValueError``: another shape (one-channel images would broadcast to three),
    float images that cannot be 0..255 pixels -- all values in [0, 1] (images already scaled:
    multiply by 255 or pass the uint8 originals), negative (already normalised) or non-finite.
    """
    check_pixels(images, "normalize")
    mean = torch.tensor(MEAN, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=images.device).view(1, 3, 1, 1) * 255
    return (images.float() - mean) / std


def random_crop_flip(images: torch.Tensor, pad: int = 4,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Random ``pad``-pixel translation (zero fill) and horizontal flip of every image of a batch.

    ``images``: ``(N, C, H, W)`` of any dtype, on any device; the result has the same shape,
    dtype and device; the whole batch is one gather.
    """
    _check.tensor("images", images, "random_crop_flip")
    if images.ndim != 4:
        raise ValueError(f"random_crop_flip: expected a batch (N, C, H, W), got shape {tuple(images.shape)}")
    pad = _check.integer("pad", pad, 0, owner="random_crop_flip")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise _check.ArgumentTypeError(f"random_crop_flip: generator must be a torch.Generator or None, "
                                       f"got {type(generator).__name__}")
    n, c, h, w = images.shape
    _check.size(f"the batch padded by pad={pad}", n * c * (h + 2 * pad) * (w + 2 * pad),
                images.element_size(), "random_crop_flip")
    hp, wp = h + 2 * pad, w + 2 * pad
    device = images.device
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad)).reshape(n * c, hp * wp)
    shift = torch.randint(0, 2 * pad + 1, (2, n), generator=generator).to(device)
    flip = (torch.rand(n, generator=generator) < 0.5).to(device)
    cols = torch.arange(w, device=device).expand(n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + shift[1, :, None]      # (N, W)
    rows = shift[0, :, None] + torch.arange(h, device=device)                      # (N, H)
    # One flat gather: output pixel (y, x) of image i reads padded pixel (rows[i, y], cols[i, x]).
    index = (rows[:, :, None] * wp + cols[:, None, :]).reshape(n, 1, h * w)
    index = index.expand(n, c, h * w).reshape(n * c, h * w)
    return padded.gather(1, index).view(n, c, h, w)


augment = random_crop_flip


def batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, *, shuffle: bool = True,
            augment: bool = False, device: torch.device | str | None = None,
            generator: torch.Generator | None = None, drop_last: bool = False):
    """Yield ``(x, y)`` minibatches: ``x`` float32 normalised ``(B, 3, H, W)``, ``y`` int64 ``(B,)``.

    ``images`` uint8 ``(N, 3, H, W)`` (see :func:`normalize`), ``labels`` integer ``(N,)`` class
    indices.  The arguments are checked when ``batches`` is called (not at the first batch).  The
    tensors are moved to ``device`` once; shuffling, augmentation and normalisation then happen
    there, a whole batch at a time.
    """
    owner = "batches"
    check_pixels(images, owner)
    labels = check_labels(labels, len(images), owner)
    batch_size = _check.positive_int("batch_size", batch_size, owner)
    shuffle, augment, drop_last = (_check.flag(k, v, owner) for k, v in
                                   (("shuffle", shuffle), ("augment", augment), ("drop_last", drop_last)))
    device = _check.device("device", device, owner)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise _check.ArgumentTypeError(f"{owner}: generator must be a torch.Generator or None, "
                                       f"got {type(generator).__name__}")
    return _batches(images, labels, batch_size, shuffle, augment, device, generator, drop_last)


def _batches(images, labels, batch_size, shuffle, augment, device, generator, drop_last):
    images, labels = images.to(device), labels.to(device)
    n = len(images)
    order = (torch.randperm(n, generator=generator).to(images.device) if shuffle
             else torch.arange(n, device=images.device))
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        index = order[start:start + batch_size]
        x = images[index]
        if augment:
            x = random_crop_flip(x, generator=generator)
        yield normalize(x), labels[index]
