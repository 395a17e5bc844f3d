"""Data sets made in code or bundled with scikit-learn, split helpers, and checksummed files in
``data/`` (nothing is downloaded at run time)."""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.config import DATA_DIR
from helpers.validation import check_int

MANIFEST_NAME = "MANIFEST.csv"
MANIFEST_COLUMNS = ("file", "sha256", "rows", "source", "licence")


def _check_fraction(name: str, value: float, *, allow_zero: bool = True) -> None:
    is_number = not isinstance(value, bool) and isinstance(value, (int, float))
    low_ok = is_number and (value >= 0 if allow_zero else value > 0)
    if not low_ok or value >= 1:
        bound = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(f"{name} must be a number in {bound}, got {value!r}")


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits: X of shape (1797, 64) scaled to [0, 1] (float32), y int64."""
    from sklearn.datasets import load_digits as _load

    bunch = _load()
    return (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64)


def make_circles(n_samples: int, *, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric rings: a task no linear model can fit (float32 X, int64 y)."""
    from sklearn.datasets import make_circles as _make

    check_int("n_samples", n_samples)
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    X, y = _make(n_samples=n_samples, noise=noise, factor=0.5, random_state=seed)
    return X.astype(np.float32), y.astype(np.int64)


def make_imbalanced(
    n_samples: int, *, imbalance: float = 20.0, n_features: int = 20, class_sep: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Binary task with ``imbalance`` negatives per positive (1 = the rare class), built with
    scikit-learn's ``make_classification`` (5 informative features, no label noise)."""
    from sklearn.datasets import make_classification

    check_int("n_samples", n_samples)
    if isinstance(imbalance, bool) or not isinstance(imbalance, (int, float)) or imbalance < 1:
        raise ValueError(f"imbalance must be a number >= 1 (negatives per positive), got {imbalance!r}")
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 5:
        raise ValueError(f"n_features must be an int >= 5, got {n_features!r}")
    X, y = make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=5,
        n_redundant=2,
        weights=[imbalance / (imbalance + 1)],
        class_sep=class_sep,
        flip_y=0.0,
        random_state=seed,
    )
    return X.astype(np.float32), y.astype(np.int64)


def make_noisy_sine(
    n_samples: int, *, noise: float = 0.3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """x uniform in [0, 1], y = sin(2πx) + Gaussian noise: the classic bias–variance playground."""
    check_int("n_samples", n_samples)
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=n_samples)
    y = np.sin(2 * np.pi * x) + rng.normal(0.0, noise, size=n_samples)
    return x.reshape(-1, 1), y


def flip_labels(y: np.ndarray, fraction: float, *, n_classes: int | None = None, seed: int = 0) -> np.ndarray:
    """Return a copy of ``y`` where ``fraction`` of the labels are replaced by a different class."""
    _check_fraction("fraction", fraction)
    y = np.asarray(y)
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2 to flip labels, got {n_classes}")
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    flip = rng.choice(len(y), size=int(round(fraction * len(y))), replace=False)
    noisy[flip] = (y[flip] + rng.integers(1, n_classes, size=len(flip))) % n_classes
    return noisy


@dataclass(frozen=True)
class Split:
    """Train / validation / test arrays."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def split(
    X: np.ndarray,
    y: np.ndarray,
    *,
    val_size: float = 0.2,
    test_size: float = 0.2,
    seed: int = 0,
    stratify: bool = True,
) -> Split:
    """Shuffle and split into train/validation/test; stratified by ``y`` by default.

    ``val_size`` and ``test_size`` are fractions of the whole data set.
    """
    from sklearn.model_selection import train_test_split

    _check_fraction("val_size", val_size, allow_zero=False)
    _check_fraction("test_size", test_size, allow_zero=False)
    if val_size + test_size >= 1:
        raise ValueError(f"val_size + test_size must be < 1, got {val_size + test_size}")
    if len(X) != len(y):
        raise ValueError(f"X and y must have the same length, got {len(X)} and {len(y)}")
    # Counts, not the fraction val_size / (1 - test_size): its rounding error made 0.1 of 100 rows 11.
    n_test, n_val = (math.ceil(round(size * len(X), 9)) for size in (test_size, val_size))
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=n_test, random_state=seed, stratify=y if stratify else None
    )
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest,
        y_rest,
        test_size=n_val,
        random_state=seed,
        stratify=y_rest if stratify else None,
    )
    return Split(X_train, y_train, X_val, y_val, X_test, y_test)


def standardize(parts: Split) -> Split:
    """Scale every feature to mean 0 and standard deviation 1 with the training set's statistics.

    Validation and test data get the same shift and scale (fitting them on all the data would leak).
    Features that are constant in the training set are only centred. Integer features come back
    as floats.
    """
    mean = parts.X_train.mean(axis=0)
    std = parts.X_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)

    dtype = np.result_type(parts.X_train.dtype, np.float32)  # float32 stays float32; integers become floats

    def scale(X: np.ndarray) -> np.ndarray:
        return ((X - mean) / std).astype(dtype)

    return Split(scale(parts.X_train), parts.y_train, scale(parts.X_val), parts.y_val, scale(parts.X_test), parts.y_test)


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(data_dir: str | Path = DATA_DIR) -> dict[str, dict[str, str]]:
    """The rows of ``data/MANIFEST.csv`` keyed by file name."""
    path = Path(data_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {MANIFEST_NAME} in {data_dir}")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != MANIFEST_COLUMNS:
            raise ValueError(f"{path} must have the columns {MANIFEST_COLUMNS}, got {reader.fieldnames}")
        return {row["file"]: row for row in reader}


def manifest_problems(data_dir: str | Path = DATA_DIR) -> list[str]:
    """Every way ``data/`` disagrees with its MANIFEST (unlisted, missing or changed files)."""
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    present = {
        p.relative_to(data_dir).as_posix()
        for p in data_dir.rglob("*")
        if p.is_file() and p.name not in {MANIFEST_NAME, "README.md"}
    }
    problems = [f"{name}: in data/ but not in the MANIFEST" for name in sorted(present - set(manifest))]
    problems += [f"{name}: in the MANIFEST but missing" for name in sorted(set(manifest) - present)]
    for name in sorted(present & set(manifest)):
        if sha256_of(data_dir / name) != manifest[name]["sha256"]:
            problems.append(f"{name}: sha256 differs from the MANIFEST")
    return problems


def verified_path(name: str, data_dir: str | Path = DATA_DIR) -> Path:
    """Path of a bundled file after checking its SHA-256 against the MANIFEST."""
    manifest = read_manifest(data_dir)
    if name not in manifest:
        raise ValueError(f"name {name!r} is not in {MANIFEST_NAME}; bundled files: {sorted(manifest)}")
    path = Path(data_dir) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is listed in the MANIFEST but missing")
    actual = sha256_of(path)
    if actual != manifest[name]["sha256"]:
        raise ValueError(f"{name}: sha256 {actual} does not match the MANIFEST ({manifest[name]['sha256']})")
    return path
