import csv
import hashlib

import numpy as np
import pytest

from helpers import data


def test_load_digits_is_scaled_float32():
    X, y = data.load_digits()
    assert X.shape == (1797, 64)
    assert X.dtype == np.float32
    assert y.dtype == np.int64
    assert (X.min(), X.max()) == (0.0, 1.0)
    assert set(np.unique(y)) == set(range(10))


def test_make_circles_gives_two_balanced_rings():
    X, y = data.make_circles(200, noise=0.0, seed=1)
    assert (X.shape, X.dtype, y.dtype) == ((200, 2), np.float32, np.int64)
    assert np.bincount(y).tolist() == [100, 100]
    radius = np.linalg.norm(X, axis=1)
    np.testing.assert_allclose(radius[y == 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(radius[y == 1], 0.5, atol=1e-6)


def test_make_circles_is_seeded():
    np.testing.assert_array_equal(data.make_circles(50, seed=3)[0], data.make_circles(50, seed=3)[0])


def test_make_noisy_sine_without_noise_is_the_sine():
    x, y = data.make_noisy_sine(500, noise=0.0)
    assert x.shape == (500, 1)
    assert x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_allclose(y, np.sin(2 * np.pi * x[:, 0]))


def test_make_noisy_sine_noise_level():
    x, y = data.make_noisy_sine(4000, noise=0.3, seed=5)
    assert np.std(y - np.sin(2 * np.pi * x[:, 0])) == pytest.approx(0.3, abs=0.02)


@pytest.mark.parametrize("make", [data.make_circles, data.make_noisy_sine])
@pytest.mark.parametrize(
    ("name", "args", "kwargs"),
    [("n_samples", (0,), {}), ("n_samples", (2.5,), {}), ("noise", (10,), {"noise": -0.1})],
)
def test_generators_reject_bad_arguments(make, name, args, kwargs):
    with pytest.raises(ValueError, match=name):
        make(*args, **kwargs)


def test_flip_labels_flips_exactly_the_fraction_to_other_classes():
    y = np.repeat(np.arange(4), 50)
    noisy = data.flip_labels(y, 0.25, seed=3)
    assert (noisy != y).sum() == 50
    assert set(np.unique(noisy)) <= set(range(4))
    np.testing.assert_array_equal(y, np.repeat(np.arange(4), 50))


def test_flip_labels_is_seeded():
    y = np.repeat(np.arange(3), 20)
    np.testing.assert_array_equal(data.flip_labels(y, 0.3, seed=1), data.flip_labels(y, 0.3, seed=1))
    assert not np.array_equal(data.flip_labels(y, 0.3, seed=1), data.flip_labels(y, 0.3, seed=2))


def test_flip_labels_zero_fraction_is_a_copy():
    y = np.array([0, 1, 1, 0])
    noisy = data.flip_labels(y, 0.0)
    np.testing.assert_array_equal(noisy, y)
    assert noisy is not y


def test_flip_labels_uses_given_number_of_classes():
    noisy = data.flip_labels(np.zeros(40, dtype=np.int64), 0.5, n_classes=3)
    assert (noisy != 0).sum() == 20
    assert set(np.unique(noisy)) == {0, 1, 2}


def test_flip_labels_needs_two_classes():
    with pytest.raises(ValueError, match="n_classes"):
        data.flip_labels(np.zeros(10, dtype=np.int64), 0.5)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, True, "0.2"])
def test_flip_labels_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="fraction"):
        data.flip_labels(np.array([0, 1]), fraction)


@pytest.fixture
def imbalanced():
    X = np.arange(200).reshape(100, 2)
    y = np.array([1] * 30 + [0] * 70)
    return X, y


def test_split_sizes_are_fractions_of_the_whole(imbalanced):
    parts = data.split(*imbalanced, val_size=0.2, test_size=0.2)
    assert parts.sizes() == {"train": 60, "val": 20, "test": 20}


def test_split_parts_are_disjoint_and_cover_the_data(imbalanced):
    parts = data.split(*imbalanced, seed=4)
    ids = [set(part[:, 0]) for part in (parts.X_train, parts.X_val, parts.X_test)]
    assert sum(len(s) for s in ids) == 100
    assert set.union(*ids) == set(imbalanced[0][:, 0])


def test_split_keeps_rows_aligned_with_labels(imbalanced):
    parts = data.split(*imbalanced)
    np.testing.assert_array_equal(parts.y_train, (parts.X_train[:, 0] < 60).astype(int))


def test_split_is_stratified(imbalanced):
    parts = data.split(*imbalanced)
    assert [part.mean() for part in (parts.y_train, parts.y_val, parts.y_test)] == [0.3, 0.3, 0.3]


@pytest.mark.parametrize(("val_size", "test_size"), [(0.1, 0.3), (0.07, 0.13), (0.15, 0.25)])
def test_split_without_stratification_keeps_exact_sizes(imbalanced, val_size, test_size):
    parts = data.split(*imbalanced, val_size=val_size, test_size=test_size, stratify=False)
    n_val, n_test = round(100 * val_size), round(100 * test_size)
    assert parts.sizes() == {"train": 100 - n_val - n_test, "val": n_val, "test": n_test}


def test_split_is_seeded(imbalanced):
    np.testing.assert_array_equal(
        data.split(*imbalanced, seed=9).X_test, data.split(*imbalanced, seed=9).X_test
    )


@pytest.mark.parametrize(
    ("match", "kwargs"),
    [
        ("val_size", {"val_size": 0}),
        ("test_size", {"test_size": 1.0}),
        ("test_size", {"test_size": False}),
        (r"val_size \+ test_size", {"val_size": 0.5, "test_size": 0.5}),
    ],
)
def test_split_rejects_bad_sizes(imbalanced, match, kwargs):
    with pytest.raises(ValueError, match=match):
        data.split(*imbalanced, **kwargs)


def test_split_rejects_length_mismatch(imbalanced):
    X, y = imbalanced
    with pytest.raises(ValueError, match="X and y"):
        data.split(X, y[:-1])


def test_sha256_of_reads_large_files_in_chunks(tmp_path):
    payload = bytes(range(256)) * 12_000
    path = tmp_path / "blob.bin"
    path.write_bytes(payload)
    assert data.sha256_of(path) == hashlib.sha256(payload).hexdigest()


def write_manifest(data_dir, rows, columns=data.MANIFEST_COLUMNS):
    with open(data_dir / data.MANIFEST_NAME, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)


@pytest.fixture
def data_dir(tmp_path):
    (tmp_path / "sub").mkdir()
    files = {"points.csv": b"x,y\n1,2\n", "sub/notes.txt": b"hello\n"}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "README.md").write_text("ignored\n")
    rows = [
        (name, hashlib.sha256(content).hexdigest(), "1", "made here", "CC0")
        for name, content in files.items()
    ]
    write_manifest(tmp_path, rows)
    return tmp_path


def test_read_manifest_keys_rows_by_file(data_dir):
    manifest = data.read_manifest(data_dir)
    assert sorted(manifest) == ["points.csv", "sub/notes.txt"]
    assert manifest["points.csv"]["licence"] == "CC0"


def test_read_manifest_without_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="MANIFEST.csv"):
        data.read_manifest(tmp_path)


def test_read_manifest_rejects_wrong_columns(tmp_path):
    write_manifest(tmp_path, [("a.csv", "0" * 64)], columns=("file", "sha256"))
    with pytest.raises(ValueError, match="columns"):
        data.read_manifest(tmp_path)


def test_verified_path_of_an_intact_file(data_dir):
    assert data.verified_path("sub/notes.txt", data_dir) == data_dir / "sub" / "notes.txt"


def test_verified_path_unknown_name(data_dir):
    with pytest.raises(ValueError, match="name 'other.csv'"):
        data.verified_path("other.csv", data_dir)


def test_verified_path_changed_file(data_dir):
    (data_dir / "points.csv").write_bytes(b"x,y\n1,3\n")
    with pytest.raises(ValueError, match="points.csv: sha256"):
        data.verified_path("points.csv", data_dir)


def test_verified_path_missing_file(data_dir):
    (data_dir / "points.csv").unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        data.verified_path("points.csv", data_dir)


def test_manifest_problems_clean_directory(data_dir):
    assert data.manifest_problems(data_dir) == []


def test_manifest_problems_lists_every_disagreement(data_dir):
    (data_dir / "sub" / "extra.bin").write_bytes(b"\0")
    (data_dir / "points.csv").unlink()
    (data_dir / "sub" / "notes.txt").write_bytes(b"changed\n")
    assert data.manifest_problems(data_dir) == [
        "sub/extra.bin: in data/ but not in the MANIFEST",
        "points.csv: in the MANIFEST but missing",
        "sub/notes.txt: sha256 differs from the MANIFEST",
    ]


def test_make_imbalanced_has_the_requested_ratio():
    X, y = data.make_imbalanced(2100, imbalance=20, n_features=8, seed=3)
    assert X.shape == (2100, 8) and X.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [2000, 100]
    X2, y2 = data.make_imbalanced(2100, imbalance=20, n_features=8, seed=3)
    np.testing.assert_array_equal(X, X2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 0}, "n_samples"),
        ({"n_samples": 100, "imbalance": 0.5}, "imbalance"),
        ({"n_samples": 100, "imbalance": True}, "imbalance"),
        ({"n_samples": 100, "n_features": 4}, "n_features"),
    ],
)
def test_make_imbalanced_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.make_imbalanced(**kwargs)


def test_standardize_uses_training_statistics_only(imbalanced):
    parts = data.split(*imbalanced, seed=0)
    scaled = data.standardize(parts)
    assert np.allclose(scaled.X_train.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(scaled.X_train.std(axis=0), 1, atol=1e-4)
    mean, std = parts.X_train.mean(axis=0), parts.X_train.std(axis=0)
    assert np.allclose(scaled.X_val, (parts.X_val - mean) / std, atol=1e-5)
    assert scaled.X_test.dtype.kind == "f" and scaled.y_test is parts.y_test


def test_standardize_only_centres_constant_features():
    X = np.column_stack([np.ones(40), np.arange(40.0)]).astype(np.float32)
    parts = data.split(X, np.arange(40) % 2, seed=0)
    scaled = data.standardize(parts)
    assert np.all(scaled.X_train[:, 0] == 0) and np.all(np.isfinite(scaled.X_val))
