"""Fetching the official CIFAR-10 archive: streamed, checked (length, md5) and extracted safely."""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

from mnf import _check
from mnf.data.cifar10 import FILES, FOLDER

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"


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

