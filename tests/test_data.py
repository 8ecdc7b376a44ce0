"""mnf.data: the real loader on the offline copy, the download path against a local server,
the restricted unpickler, and batched augmentation."""
from __future__ import annotations

import hashlib
import http.server
import io
import os
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from mnf import data as D


# --------------------------------------------------------------------------- real data

@pytest.fixture(scope="module")
def cifar() -> D.CIFAR10:
    if not os.environ.get("MNF_DATA"):
        pytest.skip("MNF_DATA is not set (`make test` sets it to the offline copy)")
    return D.load_cifar10(download=False)


def test_real_loader_shapes_and_balance(cifar):
    assert cifar.train_images.shape == (50000, 3, 32, 32) and cifar.train_images.dtype == torch.uint8
    assert cifar.test_images.shape == (10000, 3, 32, 32) and cifar.test_labels.dtype == torch.int64
    assert cifar.train_labels.bincount().tolist() == [5000] * 10
    assert cifar.test_labels.bincount().tolist() == [1000] * 10
    assert cifar.classes[:3] == ["airplane", "automobile", "bird"] and len(cifar.classes) == 10
    assert D.load_cifar10(download=False) is cifar  # cached once per process


def test_normalize_statistics(cifar):
    x = D.normalize(cifar.train_images[:10000])
    assert x.dtype == torch.float32
    assert x.mean(dim=(0, 2, 3)).abs().max() < 0.05
    assert (x.std(dim=(0, 2, 3)) - 1).abs().max() < 0.05


# --------------------------------------------------------------------------- a tiny archive

def _pickle_batch(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)


def make_archive(n: int = 20, extra: dict[str, bytes] | None = None) -> bytes:
    """A small tar.gz in the official layout: n images per batch file."""
    rng = np.random.default_rng(0)
    files = {}
    for name in D.FILES[:-1]:
        files[name] = _pickle_batch({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                                     b"labels": [i % 10 for i in range(n)], b"batch_label": name.encode()})
    files["batches.meta"] = _pickle_batch({b"label_names": [f"class{i}".encode() for i in range(10)]})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, payload in {**{f"{D.FOLDER}/{k}": v for k, v in files.items()}, **(extra or {})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


class _Server:
    """Serves ``body`` at /archive.tar.gz on 127.0.0.1, optionally lying about its length."""

    def __init__(self, body: bytes, claimed_length: int | None = None):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(claimed_length or len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args):
                pass

        self.body = body
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/archive.tar.gz"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _left_behind(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_download_success_then_load(tmp_path):
    body = make_archive()
    with _Server(body) as server:
        folder = D.download_cifar10(tmp_path, url=server.url, md5=hashlib.md5(body).hexdigest(),
                                    progress=False)
    assert folder == tmp_path / D.FOLDER and _left_behind(tmp_path) == [D.FOLDER]
    data = D.load_cifar10(tmp_path, download=False)
    assert data.train_images.shape == (100, 3, 32, 32) and data.test_images.shape == (20, 3, 32, 32)
    assert data.classes[0] == "class0"


def test_load_downloads_when_missing(tmp_path, monkeypatch):
    body = make_archive()
    with _Server(body) as server:
        real = D.download_cifar10
        monkeypatch.setattr(D.download, "download_cifar10",
                            lambda root: real(root, url=server.url, md5=hashlib.md5(body).hexdigest(),
                                              progress=False))
        data = D.load_cifar10(tmp_path / "fresh", download=True)
    assert data.train_labels.shape == (100,)


def test_md5_mismatch_keeps_nothing(tmp_path):
    with _Server(make_archive()) as server:
        with pytest.raises(D.DownloadError, match="md5"):
            D.download_cifar10(tmp_path, url=server.url, md5="0" * 32, progress=False)
    assert _left_behind(tmp_path) == []


def test_connection_cut_short_keeps_nothing(tmp_path):
    body = make_archive()
    with _Server(body, claimed_length=len(body) + 1000) as server:
        with pytest.raises(D.DownloadError, match="truncated|could not download"):
            D.download_cifar10(tmp_path, url=server.url, md5=None, progress=False)
    assert _left_behind(tmp_path) == []


def test_truncated_archive_keeps_nothing(tmp_path):
    body = make_archive()[:-200]
    with _Server(body) as server:
        with pytest.raises(D.DownloadError, match="corrupt or truncated"):
            D.download_cifar10(tmp_path, url=server.url, md5=hashlib.md5(body).hexdigest(), progress=False)
    assert _left_behind(tmp_path) == []


def test_path_traversal_member_refused(tmp_path):
    body = make_archive(extra={"../evil.txt": b"gotcha"})
    with _Server(body) as server:
        with pytest.raises(D.DownloadError, match=r"refusing to extract '\.\./evil\.txt'"):
            D.download_cifar10(tmp_path / "root", url=server.url, md5=None, progress=False)
    assert not (tmp_path / "evil.txt").exists() and _left_behind(tmp_path / "root") == []


def test_offline_fails_fast_naming_directory_and_variable(tmp_path):
    with pytest.raises(D.DownloadError) as err:
        D.download_cifar10(tmp_path, url="http://127.0.0.1:9/cifar.tar.gz", timeout=5, progress=False)
    assert str(tmp_path) in str(err.value) and "MNF_DATA" in str(err.value)


def test_missing_data_without_download_says_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNF_DATA") as err:
        D.load_cifar10(tmp_path, download=False)
    assert str(tmp_path) in str(err.value)


def test_restricted_unpickler_refuses_code(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Exploit()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load (posix|os|nt)\\.system"):
        D.read_batch(path)


# --------------------------------------------------------------------------- batches

def test_random_crop_flip_is_a_shifted_window():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float64).reshape(2, 3, 8, 8)
    out = D.random_crop_flip(images, pad=2, generator=torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == images.dtype
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, r:r + 8, c:c + 8] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)


def test_random_crop_flip_flips_about_half():
    images = torch.arange(8.0).expand(1000, 1, 1, 8).clone()
    out = D.random_crop_flip(images, pad=0, generator=torch.Generator().manual_seed(0))
    flipped = (out[:, 0, 0, 0] == 7).float().mean()
    assert 0.4 < flipped < 0.6


def test_stratified_subset_and_batches():
    labels = torch.arange(10).repeat(30)
    images = torch.arange(300, dtype=torch.uint8).view(300, 1, 1, 1).expand(300, 3, 4, 4)
    x, y = D.stratified_subset(images, labels, per_class=7, seed=3)
    assert y.bincount().tolist() == [7] * 10 and x.shape == (70, 3, 4, 4)
    seen = torch.cat([yb for _, yb in D.batches(x, y, 16, shuffle=True,
                                                generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == sorted(y.tolist())
    assert len(list(D.batches(x, y, 16, drop_last=True))) == 4
    with pytest.raises(ValueError, match="fewer than per_class"):
        D.stratified_subset(images, labels, per_class=31)
    with pytest.raises(ValueError, match="expected a batch"):
        D.random_crop_flip(images[0])
