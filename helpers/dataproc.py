"""Data processing with limited compute: the functions that notebook 10b runs in worker processes.

They live in a module, not in the notebook, because a process started with the ``spawn`` method
(the default on macOS and Windows, and what :mod:`helpers.procmem` always uses) imports the function
it runs by module and name, and a function defined in a notebook cell cannot be imported there.

- chunked group aggregates (count, total and mean of a value per key) over CSV with pandas, a NumPy
  memmap, Parquet row groups with pyarrow, and Dask, all reduced by :func:`combine`;
- map-reduce word counting (:func:`split_text`, :func:`count_words`, :func:`merge_counts`);
- a pure-Python and a NumPy transform to measure the GIL;
- :class:`SlowDataset`, a map-style dataset for PyTorch ``DataLoader`` experiments (torch is not
  imported here: ``DataLoader`` accepts any object with ``__len__`` and ``__getitem__``).

pandas, pyarrow and dask are imported inside the functions that need them.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from helpers.validation import check_int

COUNTRIES = ("CN", "DE", "FR", "GB", "IN", "JP", "US", "BR")


def _check_path(name: str, value: Any) -> Path:
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(value).__name__}")
    return Path(value)


def make_events(n_rows: int, *, n_groups: int = 100, seed: int = 0):
    """A synthetic event log as a pandas DataFrame, one row per event.

    Columns: ``user_id`` (int64), ``group`` (int64 in ``[0, n_groups)``, skewed: low ids are more
    frequent), ``amount`` (int64, cents), ``score`` (float64) and ``country`` (a two-letter code).
    Integer amounts make every sum exact, so chunked and full aggregates can be compared with ``==``.
    """
    import pandas as pd
    import pyarrow as pa

    check_int("n_rows", n_rows)
    check_int("n_groups", n_groups)
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_groups + 1) ** 0.8
    group = rng.choice(n_groups, size=n_rows, p=weights / weights.sum())
    country = pa.array(COUNTRIES).take(pa.array(rng.integers(0, len(COUNTRIES), n_rows)))  # fast str column
    return pd.DataFrame({
        "user_id": rng.integers(0, 10_000_000, n_rows),
        "group": group.astype(np.int64),
        "amount": (rng.lognormal(7.0, 1.0, n_rows) + 10 * group).astype(np.int64),
        "score": rng.normal(0.0, 1.0, n_rows),
        "country": pd.Series(country, dtype="str"),
    })


# ---- group aggregates: map (per chunk) + reduce (combine) -----------------------------------------


def partial_aggregate(keys: Any, values: Any):
    """Count and total of ``values`` per key in one chunk (the map step); a DataFrame indexed by key."""
    import pandas as pd

    keys, values = np.asarray(keys), np.asarray(values)
    if keys.shape != values.shape or keys.ndim != 1:
        raise ValueError(f"keys and values must be 1-D and of equal length, got {keys.shape} and {values.shape}")
    if values.dtype.kind in "iub":
        values = values.astype(np.int64, copy=False)  # exact totals, no int32 overflow
    frame = pd.DataFrame({"key": keys, "value": values})
    return frame.groupby("key", sort=True)["value"].agg(count="count", total="sum")


def combine(partials: Iterable[Any]):
    """Reduce step: add the counts and totals of every chunk, then divide once for the mean.

    Averaging per-chunk means instead would weight every chunk equally, whatever its size.
    """
    import pandas as pd

    parts = list(partials)
    if not parts:
        raise ValueError("partials must hold at least one partial aggregate")
    merged = pd.concat(parts).groupby(level=0, sort=True).sum()
    merged["mean"] = merged["total"] / merged["count"]
    merged.index.name = "key"
    return merged


def aggregate_csv(
    path: str | os.PathLike,
    key: str,
    value: str,
    *,
    chunksize: int | None = None,
    only_needed: bool = False,
):
    """Per-key count, total and mean of ``value`` from a CSV file with pandas.

    ``chunksize=None`` loads the whole file at once; an int streams it ``chunksize`` rows at a time.
    ``only_needed=True`` parses only the two columns, as 32-bit integers.
    """
    import pandas as pd

    path = _check_path("path", path)
    if chunksize is not None:
        check_int("chunksize", chunksize)
    options: dict[str, Any] = {}
    if only_needed:
        options = {"usecols": [key, value], "dtype": {key: "int32", value: "int32"}}
    if chunksize is None:
        frame = pd.read_csv(path, **options)
        return combine([partial_aggregate(frame[key], frame[value])])
    with pd.read_csv(path, chunksize=chunksize, **options) as reader:
        return combine(partial_aggregate(chunk[key], chunk[value]) for chunk in reader)


def _npy_layout(path: Path) -> tuple[np.dtype, int, int]:
    """dtype, number of rows and byte offset of the data of a 1-D ``.npy`` file (nothing is read)."""
    array = np.load(path, mmap_mode="r")
    if array.ndim != 1:
        raise ValueError(f"{path} must hold a 1-D array, got shape {array.shape}")
    layout = (array.dtype, len(array), int(array.offset))
    del array
    return layout


def aggregate_memmap(
    key_path: str | os.PathLike,
    value_path: str | os.PathLike,
    *,
    block_rows: int,
    remap_each_block: bool = True,
):
    """Per-key count, total and mean from two 1-D ``.npy`` files, ``block_rows`` rows at a time.

    ``remap_each_block=True`` maps only the current block and unmaps it afterwards, so the pages
    read stay out of the process's RSS. With ``False`` one map covers the whole file: the pages
    touched stay mapped, and RSS grows to the size of the data read (clean page-cache pages that
    the OS may reclaim, but counted in RSS).
    """
    key_path, value_path = _check_path("key_path", key_path), _check_path("value_path", value_path)
    check_int("block_rows", block_rows)
    key_dtype, n_rows, key_offset = _npy_layout(key_path)
    value_dtype, n_values, value_offset = _npy_layout(value_path)
    if n_rows != n_values:
        raise ValueError(f"key and value files differ in length: {n_rows} and {n_values} rows")
    if not remap_each_block:
        keys, values = np.load(key_path, mmap_mode="r"), np.load(value_path, mmap_mode="r")
        return combine(partial_aggregate(keys[start:start + block_rows], values[start:start + block_rows])
                       for start in range(0, n_rows, block_rows))
    partials = []
    for start in range(0, n_rows, block_rows):
        rows = min(block_rows, n_rows - start)
        keys = np.memmap(key_path, key_dtype, "r", offset=key_offset + start * key_dtype.itemsize, shape=(rows,))
        values = np.memmap(value_path, value_dtype, "r", offset=value_offset + start * value_dtype.itemsize,
                           shape=(rows,))
        partials.append(partial_aggregate(keys, values))
        del keys, values  # unmap this block before mapping the next
    return combine(partials)


def aggregate_parquet(path: str | os.PathLike, key: str, value: str, *, batch_rows: int | None = None):
    """Per-key count, total and mean from a Parquet file, reading only the two columns.

    ``batch_rows=None`` reads one row group at a time (``ParquetFile.read_row_group``); an int
    streams batches of that many rows (``ParquetFile.iter_batches``). One thread, like the pandas
    readers it is compared with.
    """
    import pyarrow.parquet as pq

    path = _check_path("path", path)
    if batch_rows is not None:
        check_int("batch_rows", batch_rows)
    columns = [key, value]
    parquet = pq.ParquetFile(path)
    if batch_rows is None:
        tables = (parquet.read_row_group(i, columns=columns, use_threads=False) for i in range(parquet.num_row_groups))
    else:
        tables = parquet.iter_batches(batch_size=batch_rows, columns=columns, use_threads=False)
    return combine(partial_aggregate(t.column(key).to_numpy(), t.column(value).to_numpy()) for t in tables)


def aggregate_dask(path: str | os.PathLike, key: str, value: str, *, blocksize: str | int = "16MB"):
    """Per-key count, total and mean with ``dask.dataframe`` from a ``.parquet`` or ``.csv`` path.

    Dask splits the file into partitions (CSV: ``blocksize`` bytes each; Parquet: one per row
    group, ``split_row_groups=True``, where Dask's default may merge a whole file into one
    partition), aggregates each, combines the partial results, and runs the task graph on a pool of two
    threads.
    """
    import dask.dataframe as dd

    path = _check_path("path", path)
    if path.suffix == ".parquet":
        frame = dd.read_parquet(str(path), columns=[key, value], split_row_groups=True)
    elif path.suffix == ".csv":
        frame = dd.read_csv(str(path), usecols=[key, value], blocksize=blocksize)
    else:
        raise ValueError(f"path must end in .parquet or .csv, got {path.name!r}")
    with warnings.catch_warnings():  # dask's own use of a pandas API that pandas 3.1 deprecates
        warnings.filterwarnings("ignore", message="The inplace keyword in DataFrame.reset_index is deprecated")
        # two worker threads: the peak memory then does not grow with the machine's core count
        result = frame.groupby(key)[value].agg(["count", "sum"]).compute(scheduler="threads", num_workers=2)
        result = result.sort_index()
    result = result.rename(columns={"sum": "total"}).astype("int64")
    result["mean"] = result["total"] / result["count"]
    result.index.name = "key"
    return result


# ---- map-reduce word count --------------------------------------------------------------------------


def split_text(text: str, n_chunks: int) -> list[str]:
    """Cut ``text`` into about ``n_chunks`` pieces of similar length, only at whitespace.

    Cutting at fixed character offsets would split words in two and count the halves.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    check_int("n_chunks", n_chunks)
    step = max(1, math.ceil(len(text) / n_chunks))
    chunks, start = [], 0
    while start < len(text):
        end = min(start + step, len(text))
        while end < len(text) and not text[end].isspace():
            end += 1  # move the cut forward to the next whitespace
        chunks.append(text[start:end])
        start = end
    return chunks


def count_words(text: str) -> Counter:
    """Map step: the words of one chunk (split on whitespace) and how often each occurs."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return Counter(text.split())


def merge_counts(counts: Iterable[Counter]) -> Counter:
    """Reduce step: add the per-chunk counters into one."""
    total: Counter = Counter()
    for part in counts:
        if not isinstance(part, Counter):
            raise TypeError(f"every part must be a collections.Counter, got {type(part).__name__}")
        total.update(part)
    return total


# ---- CPU-bound transforms for the GIL experiment ---------------------------------------------------


NEWTON_STEPS = 20


def python_transform(chunk: Sequence[float] | np.ndarray, steps: int = NEWTON_STEPS) -> float:
    """Sum of sqrt(x² + 1), each root by ``steps`` Newton iterations in a pure-Python loop.

    CPU-bound, and the interpreter holds the GIL throughout: the stand-in for hand-written per-row
    preprocessing (parsing, cleaning, feature code) in Python.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    values = chunk.tolist() if isinstance(chunk, np.ndarray) else chunk
    total = 0.0
    for x in values:
        square = x * x + 1.0
        root = square
        for _ in range(steps):
            root = 0.5 * (root + square / root)
        total += root
    return total


def numpy_transform(chunk: np.ndarray, steps: int = NEWTON_STEPS) -> float:
    """The same computation as :func:`python_transform` on whole arrays: compiled loops that release the GIL."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    square = np.asarray(chunk, dtype=np.float64) ** 2 + 1.0
    root = square.copy()
    for _ in range(steps):
        root += square / root
        root *= 0.5
    return float(root.sum())


# ---- a dataset whose items are slow to produce ------------------------------------------------------


class SlowDataset:
    """Map-style dataset whose items take time to load, a stand-in for reading and decoding files.

    - ``item_delay_s``: sleep per item (waiting for storage or the network);
    - ``item_work``: iterations of a pure-Python loop per item (CPU-bound decoding or augmentation);
    - ``setup_delay_s``: paid once per process on its first item, like opening a large file or
      building an index lazily in each ``DataLoader`` worker.

    Items are ``(features, label)``: a float32 vector of ``n_features`` and an int64 label, the same
    for the same index whatever process produces it.
    """

    def __init__(
        self,
        n_items: int,
        n_features: int = 32,
        *,
        item_delay_s: float = 0.0,
        item_work: int = 0,
        setup_delay_s: float = 0.0,
        seed: int = 0,
    ) -> None:
        check_int("n_items", n_items)
        check_int("n_features", n_features)
        for name, delay in (("item_delay_s", item_delay_s), ("setup_delay_s", setup_delay_s)):
            if isinstance(delay, bool) or not isinstance(delay, int | float) or not delay >= 0:
                raise ValueError(f"{name} must be a number >= 0 (seconds), got {delay!r}")
        if isinstance(item_work, bool) or not isinstance(item_work, int) or item_work < 0:
            raise ValueError(f"item_work must be an int >= 0, got {item_work!r}")
        self.n_items, self.n_features = int(n_items), int(n_features)
        self.item_delay_s, self.item_work, self.setup_delay_s = float(item_delay_s), item_work, float(setup_delay_s)
        self.seed = seed
        self._opened_in: int | None = None  # pid of the process that paid the set-up

    def __len__(self) -> int:
        return self.n_items

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.int64]:
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        if not -self.n_items <= index < self.n_items:
            raise IndexError(f"index {index} out of range for {self.n_items} items")
        index = int(index) % self.n_items
        if self._opened_in != os.getpid():
            time.sleep(self.setup_delay_s)
            self._opened_in = os.getpid()
        if self.item_delay_s:
            time.sleep(self.item_delay_s)
        if self.item_work:
            python_transform(range(self.item_work), steps=1)
        rng = np.random.default_rng((self.seed, index))
        features = rng.normal(size=self.n_features).astype(np.float32)
        return features, np.int64(index % 10)
