from types import SimpleNamespace

import matplotlib
import matplotlib.pyplot as plt
import pytest

from helpers import plot
from helpers.train import History


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def lines_data(ax):
    return [(list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()]


def legend_labels(ax):
    return [text.get_text() for text in ax.get_legend().get_texts()]


def test_style_is_applied_on_import_and_can_be_reapplied():
    with matplotlib.rc_context():
        plt.style.use("default")
        assert matplotlib.rcParams["axes.spines.top"]
        plot.use_style()
        assert not matplotlib.rcParams["axes.spines.top"]
        assert matplotlib.rcParams["savefig.bbox"] == "tight"


def test_subplots_sizes_the_figure_per_panel():
    fig, axes = plot.subplots(2, 3, width=2.0, height=1.5)
    assert tuple(fig.get_size_inches()) == (4.0, 4.5)
    assert axes.shape == (3, 2)


def test_subplots_passes_keyword_arguments():
    _, axes = plot.subplots(squeeze=False)
    assert axes.shape == (1, 1)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("ncols", {"ncols": 0}), ("ncols", {"ncols": 1.5}), ("ncols", {"ncols": True}), ("nrows", {"nrows": 0})],
)
def test_subplots_rejects_bad_grid(name, kwargs):
    with pytest.raises(ValueError, match=name):
        plot.subplots(**kwargs)


def test_learning_curves_from_a_helpers_history():
    history = History(train_loss=[1.0, 0.5, 0.4], val_loss=[1.1, 0.6, 0.7], seconds=2.0)
    ax = plot.learning_curves(history)
    assert lines_data(ax) == [([1, 2, 3], [1.0, 0.5, 0.4]), ([1, 2, 3], [1.1, 0.6, 0.7]), ([2], [0.6])]
    assert legend_labels(ax) == ["train", "validation"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("epoch", "loss", "Learning curves (loss)")


def test_learning_curves_marks_the_highest_accuracy():
    history = {"train_acc": [0.5, 0.8, 0.9], "val_acc": [0.6, 0.9, 0.85]}
    assert lines_data(plot.learning_curves(history, "acc"))[-1] == ([2], [0.9])


def test_learning_curves_from_a_keras_like_history():
    keras_history = SimpleNamespace(
        history={"loss": [0.9, 0.3], "val_loss": [1.0, 0.8], "mae": [0.5, 0.2], "val_mae": [0.4, 0.6]}
    )
    assert lines_data(plot.learning_curves(keras_history))[-1] == ([2], [0.8])
    assert lines_data(plot.learning_curves(keras_history, "mae"))[-1] == ([1], [0.4])


def test_learning_curves_without_validation_draws_one_line():
    ax = plot.learning_curves({"train_loss": [3.0, 2.0]})
    assert lines_data(ax) == [([1, 2], [3.0, 2.0])]
    assert legend_labels(ax) == ["train"]


def test_learning_curves_on_given_axes_with_label_and_title():
    _, ax = plt.subplots()
    returned = plot.learning_curves(
        {"train_loss": [1.0], "val_loss": [2.0]}, ax=ax, label="lr=0.1", title="Mine"
    )
    assert returned is ax
    assert legend_labels(ax) == ["lr=0.1 train", "lr=0.1 validation"]
    assert ax.get_title() == "Mine"


def test_learning_curves_rejects_missing_metric():
    with pytest.raises(ValueError, match="train_acc"):
        plot.learning_curves({"train_loss": [1.0]}, "acc")


@pytest.mark.parametrize("history", [[1.0, 0.5], None, SimpleNamespace(history=[1.0])])
def test_learning_curves_rejects_wrong_type(history):
    with pytest.raises(TypeError, match="history"):
        plot.learning_curves(history)


def test_show_closes_the_figure_under_agg():
    fig, _ = plt.subplots()
    plot.show(fig)
    assert not plt.fignum_exists(fig.number)


def test_show_defaults_to_the_current_figure():
    plt.figure()
    plot.show()
    assert plt.get_fignums() == []


def test_show_saves_before_closing(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    target = tmp_path / "figures" / "curve.png"
    plot.show(fig, save_as=target)
    assert target.read_bytes().startswith(b"\x89PNG")
    assert not plt.fignum_exists(fig.number)


def test_show_displays_under_an_interactive_backend(monkeypatch):
    shown = []
    monkeypatch.setattr(matplotlib, "get_backend", lambda: "module://matplotlib_inline.backend_inline")
    monkeypatch.setattr(plt, "show", lambda: shown.append(True))
    fig, _ = plt.subplots()
    plot.show(fig)
    assert shown == [True]
    assert plt.fignum_exists(fig.number)
