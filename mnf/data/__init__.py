"""CIFAR-10 as tensors: loading, downloading, batched augmentation.

The whole dataset is 180 MB of uint8, so it lives in memory (and on the training device) as
tensors; there are no Dataset/DataLoader objects and no torchvision.

    data = load_cifar10()                       # root: argument, else $MNF_DATA, else ~/.cache/mnf
    data.train_images.shape                     # (50000, 3, 32, 32) uint8
    for x, y in batches(data.train_images, data.train_labels, 128, augment=True):
        ...                                     # x: (128, 3, 32, 32) float32, normalised

The package, a file per part: :mod:`~mnf.data.cifar10` (the files, read safely, and
:func:`load_cifar10`), :mod:`~mnf.data.download` (:func:`download_cifar10`),
:mod:`~mnf.data.tensors` (checks, subsets, normalisation, augmentation, :func:`batches`).
Import from ``mnf.data``.
"""
from mnf.data.cifar10 import (CIFAR10, FILES, FOLDER, NUM_CLASSES, RestrictedUnpickler, default_root, load_cifar10,
                              read_batch)
from mnf.data.download import MD5, URL, DownloadError, download_cifar10
from mnf.data.tensors import (MEAN, STD, augment, batches, check_images, check_labels, check_pixels, normalize,
                              random_crop_flip, stratified_subset)

__all__ = ["CIFAR10", "DownloadError", "FILES", "FOLDER", "MD5", "MEAN", "NUM_CLASSES", "RestrictedUnpickler", "STD",
           "URL", "augment", "batches", "check_images", "check_labels", "check_pixels", "default_root",
           "download_cifar10", "load_cifar10", "normalize", "random_crop_flip", "read_batch", "stratified_subset"]
