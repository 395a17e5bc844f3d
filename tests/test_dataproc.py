import time
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import dataproc


@pytest.fixture(scope="module")
def events():
    return dataproc.make_events(3_000, n_groups=7, seed=1)


@pytest.fixture(scope="module")
def expected(events):
    grouped = events.groupby("group")["amount"].agg(count="count", total="sum")
    grouped["mean"] = grouped["total"] / grouped["count"]
    return grouped


@pytest.fixture(scope="module")
def files(tmp_path_factory, events):
    directory = tmp_path_factory.mktemp("events")
    paths = {"csv": directory / "events.csv", "parquet": directory / "events.parquet",
             "key": directory / "group.npy", "value": directory / "amount.npy"}
    events.to_csv(paths["csv"], index=False)
    pq.write_table(pa.Table.from_pandas(events, preserve_index=False), paths["parquet"], row_group_size=700)
    np.save(paths["key"], events["group"].to_numpy())
    np.save(paths["value"], events["amount"].to_numpy())
    return paths


def assert_same_aggregate(result, expected):
    assert list(result.columns) == ["count", "total", "mean"]
    assert result.index.name == "key"
    np.testing.assert_array_equal(result.index.to_numpy(), expected.index.to_numpy())
    np.testing.assert_array_equal(result["count"].to_numpy(), expected["count"].to_numpy())
    np.testing.assert_array_equal(result["total"].to_numpy(), expected["total"].to_numpy())
    np.testing.assert_array_equal(result["mean"].to_numpy(), expected["mean"].to_numpy())


# ---- the synthetic event log ----------------------------------------------------------------------------


def test_make_events_columns_and_determinism(events):
    assert list(events.columns) == ["user_id", "group", "amount", "score", "country"]
    assert len(events) == 3_000
    assert events["group"].between(0, 6).all()
    assert events["amount"].dtype == np.int64
    assert set(events["country"]) <= set(dataproc.COUNTRIES)
    pd.testing.assert_frame_equal(events, dataproc.make_events(3_000, n_groups=7, seed=1))
    assert not events.equals(dataproc.make_events(3_000, n_groups=7, seed=2))


def test_make_events_skews_the_groups(events):
    counts = events["group"].value_counts()
    assert counts[0] > counts[6]


@pytest.mark.parametrize(("kwargs", "match"), [({"n_rows": 0}, "n_rows"), ({"n_rows": 10, "n_groups": 0}, "n_groups"),
                                               ({"n_rows": 2.5}, "n_rows")])
def test_make_events_rejects_bad_sizes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dataproc.make_events(**kwargs)


# ---- map and reduce -------------------------------------------------------------------------------------


def test_partial_aggregate_and_combine():
    first = dataproc.partial_aggregate(np.array([1, 2, 1], dtype=np.int32), np.array([10, 20, 30], dtype=np.int32))
    second = dataproc.partial_aggregate([2, 3], [5, 7])
    assert first["total"].dtype == np.int64
    merged = dataproc.combine([first, second])
    assert merged.to_dict("index") == {1: {"count": 2, "total": 40, "mean": 20.0},
                                       2: {"count": 2, "total": 25, "mean": 12.5},
                                       3: {"count": 1, "total": 7, "mean": 7.0}}


def test_partial_aggregate_keeps_float_values():
    part = dataproc.partial_aggregate([0, 0], [0.5, 0.25])
    assert part.loc[0, "total"] == 0.75


@pytest.mark.parametrize(("keys", "values"), [([1, 2], [1]), ([[1, 2]], [[1, 2]])])
def test_partial_aggregate_rejects_mismatched_inputs(keys, values):
    with pytest.raises(ValueError, match="1-D and of equal length"):
        dataproc.partial_aggregate(keys, values)


def test_combine_needs_at_least_one_part():
    with pytest.raises(ValueError, match="at least one"):
        dataproc.combine([])


# ---- the four readers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"chunksize": 500}, {"only_needed": True}, {"chunksize": 999, "only_needed": True}])
def test_aggregate_csv_matches_pandas(files, expected, options):
    assert_same_aggregate(dataproc.aggregate_csv(files["csv"], "group", "amount", **options), expected)


@pytest.mark.parametrize("remap", [True, False])
def test_aggregate_memmap_matches_pandas(files, expected, remap):
    result = dataproc.aggregate_memmap(files["key"], files["value"], block_rows=640, remap_each_block=remap)
    assert_same_aggregate(result, expected)


@pytest.mark.parametrize("batch_rows", [None, 256])
def test_aggregate_parquet_matches_pandas(files, expected, batch_rows):
    assert_same_aggregate(dataproc.aggregate_parquet(files["parquet"], "group", "amount", batch_rows=batch_rows),
                          expected)


@pytest.mark.parametrize("name", ["csv", "parquet"])
def test_aggregate_dask_matches_pandas(files, expected, name):
    assert_same_aggregate(dataproc.aggregate_dask(files[name], "group", "amount", blocksize=20_000), expected)


def test_aggregate_dask_rejects_other_formats(tmp_path):
    with pytest.raises(ValueError, match=r"\.parquet or \.csv"):
        dataproc.aggregate_dask(tmp_path / "events.json", "group", "amount")


def test_readers_reject_bad_arguments(files):
    with pytest.raises(TypeError, match="path"):
        dataproc.aggregate_csv(3, "group", "amount")
    with pytest.raises(ValueError, match="chunksize"):
        dataproc.aggregate_csv(files["csv"], "group", "amount", chunksize=0)
    with pytest.raises(ValueError, match="block_rows"):
        dataproc.aggregate_memmap(files["key"], files["value"], block_rows=-1)
    with pytest.raises(ValueError, match="batch_rows"):
        dataproc.aggregate_parquet(files["parquet"], "group", "amount", batch_rows=0)
    with pytest.raises(TypeError, match="key_path"):
        dataproc.aggregate_memmap(None, files["value"], block_rows=10)


def test_aggregate_memmap_checks_the_files(tmp_path, files):
    short = tmp_path / "short.npy"
    np.save(short, np.arange(5))
    with pytest.raises(ValueError, match="differ in length"):
        dataproc.aggregate_memmap(files["key"], short, block_rows=10)
    square = tmp_path / "square.npy"
    np.save(square, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="1-D"):
        dataproc.aggregate_memmap(square, square, block_rows=10)


# ---- word count ------------------------------------------------------------------------------------------


def test_split_text_cuts_only_at_whitespace():
    text = "alpha beta\ngamma  delta epsilon zeta eta theta"
    chunks = dataproc.split_text(text, 4)
    assert "".join(chunks) == text
    assert 1 < len(chunks) <= 5
    assert dataproc.merge_counts(dataproc.count_words(c) for c in chunks) == Counter(text.split())


def test_split_text_edge_cases():
    assert dataproc.split_text("", 3) == []
    assert dataproc.split_text("nowhitespace", 4) == ["nowhitespace"]
    assert dataproc.split_text("a b", 1) == ["a b"]


def test_split_text_rejects_bad_input():
    with pytest.raises(TypeError, match="text"):
        dataproc.split_text(b"bytes", 2)
    with pytest.raises(ValueError, match="n_chunks"):
        dataproc.split_text("a b", 0)


def test_count_and_merge_words():
    assert dataproc.count_words("a b a\nc") == Counter({"a": 2, "b": 1, "c": 1})
    assert dataproc.merge_counts([Counter(a=1), Counter(a=2, b=1)]) == Counter(a=3, b=1)
    assert dataproc.merge_counts([]) == Counter()
    with pytest.raises(TypeError, match="text"):
        dataproc.count_words(["a", "b"])
    with pytest.raises(TypeError, match="Counter"):
        dataproc.merge_counts([{"a": 1}])


# ---- transforms ------------------------------------------------------------------------------------------


def test_python_and_numpy_transforms_agree():
    values = np.random.default_rng(0).normal(size=1_000)
    expected = np.sqrt(values**2 + 1).sum()
    assert dataproc.python_transform(values) == pytest.approx(expected, rel=1e-12)
    assert dataproc.python_transform(values.tolist()) == dataproc.python_transform(values)
    assert dataproc.numpy_transform(values) == pytest.approx(expected, rel=1e-12)


def test_transforms_with_few_steps_are_cruder():
    values = np.array([3.0])
    assert dataproc.python_transform(values, steps=0) == dataproc.numpy_transform(values, steps=0) == 10.0


@pytest.mark.parametrize("steps", [-1, 1.5, True])
def test_transforms_reject_bad_steps(steps):
    with pytest.raises(ValueError, match="steps"):
        dataproc.python_transform([1.0], steps=steps)
    with pytest.raises(ValueError, match="steps"):
        dataproc.numpy_transform(np.ones(2), steps=steps)


# ---- SlowDataset -----------------------------------------------------------------------------------------


def test_slow_dataset_items_are_deterministic():
    dataset = dataproc.SlowDataset(20, n_features=5, seed=3)
    features, label = dataset[7]
    assert len(dataset) == 20
    assert features.shape == (5,) and features.dtype == np.float32
    assert label == 7 and isinstance(label, np.int64)
    np.testing.assert_array_equal(dataset[np.int64(7)][0], features)
    np.testing.assert_array_equal(dataset[-13][0], features)
    assert not np.array_equal(dataproc.SlowDataset(20, n_features=5, seed=4)[7][0], features)


def test_slow_dataset_pays_setup_once_per_process_and_delay_per_item():
    dataset = dataproc.SlowDataset(4, item_delay_s=0.01, setup_delay_s=0.05, item_work=100)
    start = time.perf_counter()
    dataset[0]
    first = time.perf_counter() - start
    start = time.perf_counter()
    dataset[1]
    second = time.perf_counter() - start
    assert first >= 0.06
    assert 0.01 <= second < 0.05


def test_slow_dataset_works_with_a_dataloader():
    from torch.utils.data import DataLoader

    batches = list(DataLoader(dataproc.SlowDataset(10, n_features=3), batch_size=4))
    assert [len(labels) for _, labels in batches] == [4, 4, 2]
    assert batches[0][0].shape == (4, 3)


def test_slow_dataset_rejects_bad_indices_and_arguments():
    dataset = dataproc.SlowDataset(3)
    with pytest.raises(IndexError, match="out of range"):
        dataset[3]
    with pytest.raises(TypeError, match="index"):
        dataset[1.0]
    with pytest.raises(ValueError, match="n_items"):
        dataproc.SlowDataset(0)
    with pytest.raises(ValueError, match="n_features"):
        dataproc.SlowDataset(3, n_features=0)
    with pytest.raises(ValueError, match="item_delay_s"):
        dataproc.SlowDataset(3, item_delay_s=-1)
    with pytest.raises(ValueError, match="setup_delay_s"):
        dataproc.SlowDataset(3, setup_delay_s=float("nan"))
    with pytest.raises(ValueError, match="item_work"):
        dataproc.SlowDataset(3, item_work=1.5)
