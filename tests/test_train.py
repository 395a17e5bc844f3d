import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers.models import mlp, weight_tensors
from helpers.train import EarlyStopping, History, evaluate, fit


@pytest.fixture
def model():
    torch.manual_seed(0)
    return mlp(2, [8], 2)


def adam(model):
    return torch.optim.Adam(model.parameters(), lr=0.05)


def test_fit_learns_a_separable_problem(model, blobs):
    X, y = blobs
    history = fit(model, X, y, epochs=40, optimizer=adam(model), X_val=X, y_val=y)
    assert history.train_acc[-1] >= 0.95
    assert evaluate(model, X, y, nn.CrossEntropyLoss())[1] == 1.0
    assert history.val_loss[-1] < history.val_loss[0] / 2


def test_fit_history_has_one_entry_per_epoch(model, blobs):
    X, y = blobs
    history = fit(model, X, y, epochs=7, X_val=X[:10], y_val=y[:10])
    assert history.epochs_run == 7
    assert [len(history.train_loss), len(history.train_acc), len(history.val_loss), len(history.val_acc)] == [
        7
    ] * 4
    assert history.best_epoch == min(range(7), key=history.val_loss.__getitem__)
    assert history.seconds > 0


def test_fit_records_cross_entropy_of_the_final_model(model, blobs):
    X, y = blobs
    history = fit(model, X, y, epochs=5, X_val=X, y_val=y)
    with torch.no_grad():
        assert history.val_loss[-1] == pytest.approx(F.cross_entropy(model(X), y).item(), abs=1e-6)


def test_fit_without_validation_data(model, blobs):
    history = fit(model, *blobs, epochs=3)
    assert (history.val_loss, history.val_acc, history.best_epoch) == ([], [], None)


def test_fit_regression_uses_mse_and_no_accuracy():
    torch.manual_seed(0)
    X = torch.linspace(-1, 1, 32)[:, None]
    y = 3 * X + 1
    model = mlp(1, [16], 1)
    history = fit(model, X, y, epochs=60, optimizer=adam(model), X_val=X, y_val=y)
    assert (history.train_acc, history.val_acc) == ([], [])
    with torch.no_grad():
        assert history.val_loss[-1] == pytest.approx(F.mse_loss(model(X), y).item(), abs=1e-6)
    assert history.val_loss[-1] < 0.01
    assert evaluate(model, X, y, nn.MSELoss())[1] is None


def test_fit_uses_the_given_optimizer(model, blobs):
    before = copy.deepcopy(model.state_dict())
    fit(model, *blobs, epochs=3, optimizer=torch.optim.SGD(model.parameters(), lr=0.0))
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())


def test_fit_augments_every_mini_batch(model, blobs):
    batch_sizes = []

    def augment(xb):
        batch_sizes.append(len(xb))
        return xb

    fit(model, *blobs, epochs=3, batch_size=24, augment=augment)
    assert batch_sizes == [24, 24, 16] * 3


def test_fit_trains_on_the_augmented_batch(model, blobs):
    history = fit(model, *blobs, epochs=20, optimizer=adam(model), augment=torch.zeros_like)
    assert history.train_acc[-1] == 0.5


def test_fit_adds_the_penalty_to_the_loss(model, blobs):
    X, y = blobs
    free, penalised = model, copy.deepcopy(model)
    fit(free, X, y, epochs=60, optimizer=adam(free))
    fit(
        penalised,
        X,
        y,
        epochs=60,
        optimizer=adam(penalised),
        penalty=lambda m: 10.0 * sum(w.abs().sum() for w in weight_tensors(m)),
    )

    def l1(m):
        return sum(w.abs().sum().item() for w in weight_tensors(m))

    assert l1(penalised) < 0.2 * l1(free)


def test_fit_records_data_loss_without_the_penalty(model, blobs):
    X, y = blobs
    twin = copy.deepcopy(model)
    torch.manual_seed(1)
    plain = fit(model, X, y, epochs=5, batch_size=16)
    torch.manual_seed(1)
    offset = fit(twin, X, y, epochs=5, batch_size=16, penalty=lambda m: torch.tensor(100.0))
    assert offset.train_loss == plain.train_loss


def test_early_stopping_stops_and_restores_best_weights(model, blobs):
    X, y = blobs
    stopper = EarlyStopping(patience=3)
    history = fit(
        model, X, y, epochs=100, optimizer=adam(model), X_val=X, y_val=1 - y, early_stopping=stopper
    )
    assert history.epochs_run < 100
    assert history.best_epoch == stopper.best_epoch == history.epochs_run - 4
    best = min(history.val_loss)
    assert history.val_loss[-1] > best
    assert evaluate(model, X, 1 - y, nn.CrossEntropyLoss())[0] == pytest.approx(best, abs=1e-6)


def test_early_stopping_can_keep_the_last_weights(model, blobs):
    X, y = blobs
    stopper = EarlyStopping(patience=2, restore_best_weights=False)
    history = fit(
        model, X, y, epochs=100, optimizer=adam(model), X_val=X, y_val=1 - y, early_stopping=stopper
    )
    assert stopper.best_state is None
    assert evaluate(model, X, 1 - y, nn.CrossEntropyLoss())[0] == pytest.approx(
        history.val_loss[-1], abs=1e-6
    )


def test_early_stopping_counts_epochs_without_enough_improvement():
    stopper = EarlyStopping(patience=2, min_delta=0.1)
    model = nn.Linear(1, 1)
    decisions = [stopper.update(epoch, loss, model) for epoch, loss in enumerate([1.0, 0.95, 0.5, 0.45, 0.6])]
    assert decisions == [False, False, False, False, True]
    assert (stopper.best_epoch, stopper.best_loss) == (2, 0.5)


def test_early_stopping_restore_loads_the_saved_state():
    model = nn.Linear(1, 1)
    stopper = EarlyStopping()
    stopper.update(0, 1.0, model)
    saved = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(5.0)
    stopper.restore(model)
    assert torch.equal(model.weight, saved)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("patience", {"patience": 0}), ("patience", {"patience": True}), ("min_delta", {"min_delta": -0.1})],
)
def test_early_stopping_rejects_bad_arguments(name, kwargs):
    with pytest.raises(ValueError, match=name):
        EarlyStopping(**kwargs)


@pytest.mark.parametrize("epochs", [0, -1, 2.0, True])
def test_fit_rejects_bad_epochs(model, blobs, epochs):
    with pytest.raises(ValueError, match="epochs"):
        fit(model, *blobs, epochs=epochs)


def test_fit_early_stopping_needs_validation_data(model, blobs):
    with pytest.raises(ValueError, match="early_stopping"):
        fit(model, *blobs, epochs=3, early_stopping=EarlyStopping())


@pytest.mark.parametrize("given", ["X_val", "y_val"])
def test_fit_needs_both_validation_tensors(model, blobs, given):
    X, y = blobs
    with pytest.raises(ValueError, match="X_val and y_val"):
        fit(model, X, y, epochs=3, **{given: X if given == "X_val" else y})


def test_fit_rejects_mismatched_training_lengths(model, blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="X_train and y_train"):
        fit(model, X, y[:-1], epochs=3)


def test_fit_rejects_mismatched_validation_lengths(model, blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="X_val and y_val"):
        fit(model, X, y, epochs=3, X_val=X[:5], y_val=y[:4])


def test_fit_rejects_empty_training_set(model, blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="X_train"):
        fit(model, X[:0], y[:0], epochs=3)


def test_fit_rejects_non_tensors(model, blobs):
    X, y = blobs
    with pytest.raises(TypeError, match="X_train"):
        fit(model, X.numpy(), y, epochs=3)


@pytest.mark.parametrize("batch_size", [0, 1.5, True])
def test_fit_rejects_bad_batch_size(model, blobs, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        fit(model, *blobs, epochs=3, batch_size=batch_size)


def test_fit_draws_a_progress_bar_when_asked(model, blobs, capsys):
    fit(model, *blobs, epochs=2, progress=True, desc="tiny run")
    assert "tiny run" in capsys.readouterr().err


def test_fit_is_quiet_when_progress_is_off(model, blobs, capsys):
    fit(model, *blobs, epochs=2, desc="tiny run")
    assert "tiny run" not in capsys.readouterr().err


@pytest.mark.parametrize("training", [True, False])
def test_evaluate_restores_the_mode_it_found(blobs, training):
    model = mlp(2, [8], 2, dropout=0.5).train(training)
    evaluate(model, *blobs, nn.CrossEntropyLoss())
    assert model.training is training


def test_evaluate_runs_in_eval_mode(blobs):
    X, y = blobs
    model = mlp(2, [8], 2, dropout=0.9).train()
    loss, accuracy = evaluate(model, X, y, nn.CrossEntropyLoss())
    model.eval()
    with torch.no_grad():
        output = model(X)
    assert loss == pytest.approx(F.cross_entropy(output, y).item())
    assert accuracy == pytest.approx((output.argmax(dim=1) == y).float().mean().item())


def test_history_as_dict():
    history = History(train_loss=[1.0, 0.5], val_loss=[1.2, 0.7], best_epoch=1)
    assert history.as_dict() == {
        "train_loss": [1.0, 0.5],
        "val_loss": [1.2, 0.7],
        "train_acc": [],
        "val_acc": [],
        "best_epoch": 1,
        "seconds": 0.0,
        "epoch_end_seconds": [],
    }
    assert history.epochs_run == 2


def test_fit_steps_the_scheduler_once_per_epoch_and_times_each_epoch(model, blobs):
    X, y = blobs
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    history = fit(model, X, y, epochs=3, optimizer=optimizer, scheduler=scheduler, batch_size=8)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.125)
    assert len(history.epoch_end_seconds) == 3 and history.epoch_end_seconds == sorted(history.epoch_end_seconds)
    assert history.epoch_end_seconds[-1] <= history.seconds
