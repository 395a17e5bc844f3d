"""One figure style for the course, learning-curve plots, and a ``show`` that behaves the same in
JupyterLab, in papermill runs and in headless tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt

STYLE = {
    "figure.figsize": (7.0, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "savefig.bbox": "tight",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "legend.frameon": False,
}

# Metric names (or parts of them) whose best epoch is the minimum, as in Keras' "mae" or "val_mse".
LOWER_IS_BETTER = ("loss", "error", "mae", "mse", "mape", "msle", "crossentropy")


def use_style() -> None:
    """Apply the course's figure style (called on import; call again after ``plt.style.use``)."""
    matplotlib.rcParams.update(STYLE)


use_style()


def subplots(ncols: int = 1, nrows: int = 1, *, width: float = 7.0, height: float = 4.0, **kwargs: Any):
    """``plt.subplots`` sized per panel: ``width``/``height`` are inches per column/row."""
    for name, value in (("ncols", ncols), ("nrows", nrows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), **kwargs)


def _as_series_dict(history: Any) -> dict[str, Sequence[float]]:
    """Accept a helpers ``History``, a Keras ``History`` or a plain mapping of metric -> values."""
    if hasattr(history, "as_dict"):
        history = history.as_dict()
    elif hasattr(history, "history") and isinstance(history.history, Mapping):
        history = {
            (key if key.startswith("val_") else f"train_{key}"): values
            for key, values in history.history.items()
        }
    if not isinstance(history, Mapping):
        raise TypeError(
            "history must be a helpers.train.History, a Keras History or a mapping of "
            f"metric name -> values, got {type(history).__name__}"
        )
    return {key: list(values) for key, values in history.items() if isinstance(values, Sequence)}


def learning_curves(
    history: Any,
    metric: str = "loss",
    *,
    ax: Any = None,
    title: str | None = None,
    label: str = "",
) -> Any:
    """Plot ``train_<metric>`` and ``val_<metric>`` against the epoch; return the axes.

    The best validation epoch is marked, which is where early stopping would have stopped.
    """
    series = _as_series_dict(history)
    train_key, val_key = f"train_{metric}", f"val_{metric}"
    if train_key not in series:
        raise ValueError(f"history has no {train_key!r}; it has {sorted(series)}")
    if ax is None:
        _, ax = plt.subplots()
    prefix = f"{label} " if label else ""
    epochs = range(1, len(series[train_key]) + 1)
    (line,) = ax.plot(epochs, series[train_key], label=f"{prefix}train")
    if series.get(val_key):
        values = series[val_key]
        ax.plot(epochs, values, linestyle="--", color=line.get_color(), label=f"{prefix}validation")
        lower_is_better = any(word in metric for word in LOWER_IS_BETTER)
        best = (min if lower_is_better else max)(range(len(values)), key=values.__getitem__)
        ax.plot(best + 1, values[best], marker="o", color=line.get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(title or f"Learning curves ({metric})")
    ax.legend()
    return ax


def show(fig: Any = None, save_as: str | Path | None = None) -> None:
    """Display ``fig`` (default: the current figure), optionally saving it first.

    Under a non-interactive backend (tests, scripts) the figure is closed instead of shown, so no
    warning is printed and no memory piles up.
    """
    fig = plt.gcf() if fig is None else fig
    if save_as is not None:
        path = Path(save_as)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    if matplotlib.get_backend().lower() == "agg":
        plt.close(fig)
    else:
        plt.show()
