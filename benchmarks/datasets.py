"""Offline data sets for the benchmarks, with shifted test sets at five severities.

Every set is made here or ships with a package: MNIST-1D (``mnist1d.make_dataset``),
scikit-learn's digits, two spirals; CIFAR-10 only from a folder the user already has.

Shift severities (1 = mildest, 5 = strongest):

- MNIST-1D: the test series are generated anew (seed 1000 + severity) with stronger
  noise and distortion than the training series: ``iid_noise_scale = 0.02 * (1 + 0.35s)``,
  ``corr_noise_scale = 0.25 * (1 + 0.12s)``, ``shear_scale = 0.75 * (1 + 0.2s)`` (the
  package's defaults, used for training, are 0.02, 0.25 and 0.75).
- digits (8 x 8 images, pixels scaled to [0, 1]): ``rotation`` by ``6s`` degrees;
  ``noise``, added Gaussian noise of standard deviation ``0.1s``; ``blur``, a Gaussian
  filter of standard deviation ``0.25s`` pixels.
- CIFAR-10 (``--data-dir``): ``noise`` with standard deviation ``0.04s`` and ``blur`` of
  ``0.4s`` pixels, on pixels scaled to [0, 1] before normalisation.
- two spirals: no shift.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SEVERITIES = (1, 2, 3, 4, 5)


@dataclass
class Data:
    """Training and test arrays, and shifted test sets: {(shift, severity): (X, y)}."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    shifted: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def _mnist1d_args(seed: int, severity: int = 0):
    from mnist1d.data import get_dataset_args

    args = get_dataset_args()
    args.seed = seed
    args.iid_noise_scale = 0.02 * (1 + 0.35 * severity)
    args.corr_noise_scale = 0.25 * (1 + 0.12 * severity)
    args.shear_scale = 0.75 * (1 + 0.2 * severity)
    return args


def mnist1d(shift: bool = True, n_train: int = 4000) -> Data:
    """MNIST-1D with the package's defaults: ``n_train`` training series of length 40
    (4000 by default, the package's own size) and a quarter as many test series."""
    from mnist1d.data import make_dataset

    args = _mnist1d_args(seed=42)
    args.num_samples = int(round(n_train / args.train_split))
    clean = make_dataset(args)
    data = Data(clean["x"].astype(np.float32), clean["y"].astype(np.int64),
                clean["x_test"].astype(np.float32), clean["y_test"].astype(np.int64))
    for s in SEVERITIES if shift else ():
        shifted = make_dataset(_mnist1d_args(seed=1000 + s, severity=s))
        data.shifted[("noise+shear", s)] = (shifted["x_test"].astype(np.float32), shifted["y_test"].astype(np.int64))
    return data


def _shift_images(images: np.ndarray, kind: str, severity: int, rng: np.random.RandomState) -> np.ndarray:
    """Shift a batch of (n, channels, h, w) images with pixels in [0, 1]."""
    if kind == "rotation":
        return ndimage.rotate(images, 6 * severity, axes=(-2, -1), reshape=False, order=1, mode="constant")
    if kind == "noise":
        return np.clip(images + rng.normal(0, 0.1 * severity, images.shape), 0, 1)
    if kind == "blur":
        return ndimage.gaussian_filter(images, sigma=(0, 0, 0.25 * severity, 0.25 * severity))
    raise ValueError(kind)


def digits(images: bool = False, shift: bool = True) -> Data:
    """scikit-learn's digits, 70/30 stratified split; (n, 64) or, with ``images``, (n, 1, 8, 8)."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    X, X_test, y, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    flat = (lambda a: a) if images else (lambda a: a.reshape(len(a), -1))
    data = Data(flat(X), y, flat(X_test), y_test)
    rng = np.random.RandomState(0)
    for kind in ("rotation", "noise", "blur") if shift else ():
        for s in SEVERITIES:
            data.shifted[(kind, s)] = (flat(_shift_images(X_test, kind, s, rng).astype(np.float32)), y_test)
    return data


def spirals(n_samples: int = 1000, noise: float = 0.3, seed: int = 0) -> Data:
    """Two interleaved spirals in the plane (Section 5.3's toy problem), 50/50 split."""
    rng = np.random.RandomState(seed)
    t = np.sqrt(rng.rand(n_samples)) * 3 * np.pi
    label = rng.randint(0, 2, n_samples)
    sign = np.where(label == 1, 1.0, -1.0)[:, None]
    X = sign * np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / np.pi + noise * rng.randn(n_samples, 2)
    X = X.astype(np.float32)
    half = n_samples // 2
    return Data(X[:half], label[:half], X[half:], label[half:])


def cifar10(data_dir: Path, shift: bool = True) -> Data:
    """CIFAR-10 from the ``cifar-10-batches-py`` folder of the official python archive."""
    folder = Path(data_dir)
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"

    def read(name):
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        return batch["data"].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, np.asarray(batch["labels"])

    parts = [read(f"data_batch_{i}") for i in range(1, 6)]
    X, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    X_test, y_test = read("test_batch")
    mean, std = X.mean(axis=(0, 2, 3), keepdims=True), X.std(axis=(0, 2, 3), keepdims=True)
    norm = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    data = Data(norm(X), y, norm(X_test), y_test)
    rng = np.random.RandomState(0)
    for s in SEVERITIES if shift else ():
        data.shifted[("noise", s)] = (norm(np.clip(X_test + rng.normal(0, 0.04 * s, X_test.shape), 0, 1)), y_test)
        data.shifted[("blur", s)] = (norm(ndimage.gaussian_filter(X_test, sigma=(0, 0, 0.4 * s, 0.4 * s))), y_test)
    return data
