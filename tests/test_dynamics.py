import math

import pytest
import torch
from torch import nn

from helpers import dynamics as dyn
from helpers.models import mlp


def fresh_model(seed=0):
    torch.manual_seed(seed)
    return mlp(2, [8], 2)


def sgd(model, lr=0.1):
    return torch.optim.SGD(model.parameters(), lr=lr)


# --- divergence, spikes, first_reaching -------------------------------------------------------

def test_is_diverged_on_nan_inf_and_growth():
    assert not dyn.is_diverged([2.3, 1.0, 0.5])
    assert dyn.is_diverged([2.3, math.nan])
    assert dyn.is_diverged([2.3, math.inf])
    assert dyn.is_diverged([2.0, 9.0], factor=4)
    assert not dyn.is_diverged([2.0, 7.9], factor=4)
    assert not dyn.is_diverged([])


def test_count_spikes_counts_jumps_over_the_running_median():
    losses = [1.0] * 30 + [5.0] + [1.0] * 10 + [math.nan]
    assert dyn.count_spikes(losses, factor=2, window=20) == 2
    assert dyn.count_spikes([1.0] * 50, window=20) == 0
    assert dyn.count_spikes([9.0] + [1.0] * 5, window=20) == 0  # too short to have a history


def test_first_reaching_both_directions():
    assert dyn.first_reaching([0.1, 0.5, 0.9], 0.5) == 1
    assert dyn.first_reaching([0.1, 0.2], 0.5) is None
    assert dyn.first_reaching([3.0, 2.0, 1.0], 2.0, higher_is_better=False) == 1


@pytest.mark.parametrize("kwargs", [{"factor": 1.0}, {"factor": "2"}, {"factor": True}])
def test_spike_and_divergence_factors_are_validated(kwargs):
    with pytest.raises(ValueError, match="factor"):
        dyn.count_spikes([1.0], **kwargs)
    with pytest.raises(ValueError, match="factor"):
        dyn.is_diverged([1.0], **kwargs)


def test_count_spikes_validates_window():
    with pytest.raises(ValueError, match="window"):
        dyn.count_spikes([1.0], window=0)


# --- train_steps ------------------------------------------------------------------------------

def test_train_steps_learns_and_logs_every_step(blobs):
    X, y = blobs
    model = fresh_model()
    log = dyn.train_steps(model, X, y, optimizer=sgd(model), steps=60, batch_size=20, X_val=X, y_val=y,
                          eval_every=20, progress=False)
    assert len(log.loss) == len(log.seconds) == len(log.lr) == len(log.grad_norm) == 60
    assert log.val_step == [20, 40, 60]
    assert log.loss[-1] < log.loss[0] / 2 and log.val_acc[-1] > 0.95
    assert log.seconds == sorted(log.seconds) and not log.diverged
    assert log.steps_to(0.95) in (20, 40, 60)
    assert log.seconds_to(0.95) == log.seconds[log.steps_to(0.95) - 1]
    assert log.steps_to(1.01) is None and log.seconds_to(1.01) is None


def test_train_steps_is_reproducible_from_its_seed(blobs):
    X, y = blobs
    runs = []
    for _ in range(2):
        model = fresh_model()
        runs.append(dyn.train_steps(model, X, y, optimizer=sgd(model), steps=20, batch_size=16, seed=3).loss)
    assert runs[0] == runs[1]
    model = fresh_model()
    assert dyn.train_steps(model, X, y, optimizer=sgd(model), steps=20, batch_size=16, seed=4).loss != runs[0]


def test_train_steps_stops_at_divergence(blobs):
    X, y = blobs
    model = fresh_model()
    log = dyn.train_steps(model, X * 100, y, optimizer=sgd(model, lr=100.0), steps=50, batch_size=50)
    assert log.diverged and log.diverged_at == len(log.loss) < 50


def test_train_steps_divergence_reference_for_a_trained_model(blobs):
    X, y = blobs
    model = fresh_model()
    dyn.train_steps(model, X, y, optimizer=sgd(model, 0.5), steps=100, batch_size=50)
    # a trained model's first loss is tiny: judged against it, ordinary noise would look like divergence
    log = dyn.train_steps(model, X, y, optimizer=sgd(model, 0.5), steps=30, batch_size=10,
                          divergence_reference=math.log(2))
    assert not log.diverged


def test_train_steps_steps_the_scheduler_every_step(blobs):
    X, y = blobs
    model = fresh_model()
    optimizer = sgd(model, lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1 / (i + 1))
    log = dyn.train_steps(model, X, y, optimizer=optimizer, scheduler=scheduler, steps=3, batch_size=20)
    assert log.lr == pytest.approx([1.0, 0.5, 1 / 3])


def test_train_steps_clips_the_step_but_logs_the_raw_norm(blobs):
    X, y = blobs
    model = fresh_model()
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    log = dyn.train_steps(model, X * 10, y, optimizer=sgd(model, lr=1.0), steps=1, clip_norm=0.01)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert log.grad_norm[0] > 0.01
    assert (after - before).norm().item() == pytest.approx(0.01, rel=1e-3)


def test_train_steps_stops_once_the_target_is_reached(blobs):
    X, y = blobs
    model = fresh_model()
    log = dyn.train_steps(model, X, y, optimizer=sgd(model, lr=0.5), steps=200, batch_size=20, X_val=X, y_val=y,
                          eval_every=1, stop_at=0.9)
    assert log.val_acc[-1] >= 0.9 and len(log.loss) < 200 and log.steps_to(0.9) == len(log.loss)


def test_train_steps_full_batch_by_default(blobs):
    X, y = blobs
    model = fresh_model()
    log = dyn.train_steps(model, X, y, optimizer=sgd(model), steps=3)
    assert len(log.loss) == 3


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"steps": 0}, "steps"),
    ({"eval_every": 0}, "eval_every"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 1000}, "batch_size"),
    ({"clip_norm": 0.0}, "clip_norm"),
    ({"divergence_reference": -1.0}, "divergence_reference"),
    ({"divergence_factor": 1.0}, "divergence_factor"),
    ({"stop_at": 0.9}, "stop_at"),
    ({"X_val": torch.zeros(3, 2)}, "X_val"),
])
def test_train_steps_rejects_bad_arguments(blobs, kwargs, message):
    X, y = blobs
    model = fresh_model()
    arguments = {"optimizer": sgd(model), "steps": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        dyn.train_steps(model, X, y, **arguments)


def test_train_steps_rejects_mismatched_data(blobs):
    X, y = blobs
    model = fresh_model()
    with pytest.raises(ValueError, match="equal length"):
        dyn.train_steps(model, X, y[:-1], optimizer=sgd(model), steps=2)


# --- lr_range_test ------------------------------------------------------------------------------

def test_lr_range_test_rises_exponentially_and_stops_on_explosion(blobs):
    X, y = blobs
    torch.manual_seed(0)
    linear = mlp(2, [], 2)  # no ReLU to die: a too-large rate shows as an exploding loss
    noisy_labels = torch.randint(0, 2, y.shape, generator=torch.Generator().manual_seed(1))  # cannot be fitted
    result = dyn.lr_range_test(linear, X, noisy_labels, make_optimizer=lambda p, lr: torch.optim.SGD(p, lr=lr),
                               lr_min=1e-4, lr_max=1e4, steps=100, batch_size=32)
    ratios = [b / a for a, b in zip(result.lrs, result.lrs[1:], strict=False)]
    assert ratios == pytest.approx([ratios[0]] * len(ratios))
    assert result.lrs[0] == pytest.approx(1e-4)
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) < 100  # stopped once the loss blew up
    assert result.suggestion == pytest.approx(result.lr_at_min / 10)
    assert 1e-4 < result.lr_at_min < 1e4


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lr_min": 1.0, "lr_max": 0.1}, "lr_min"),
    ({"smoothing": 1.0}, "smoothing"),
    ({"steps": 1}, "steps"),
    ({"stop_factor": 0.5}, "stop_factor"),
])
def test_lr_range_test_rejects_bad_arguments(blobs, kwargs, message):
    X, y = blobs
    with pytest.raises(ValueError, match=message):
        dyn.lr_range_test(fresh_model(), X, y, make_optimizer=lambda p, lr: torch.optim.SGD(p, lr=lr), **kwargs)


# --- gradient and activation probes ---------------------------------------------------------------

def test_layer_grad_norms_match_the_gradients(blobs):
    X, y = blobs
    model = fresh_model()
    nn.functional.cross_entropy(model(X), y).backward()
    norms = dyn.layer_grad_norms(model)
    assert list(norms) == ["0.weight", "2.weight"]
    assert norms["0.weight"] == pytest.approx(model[0].weight.grad.norm().item())


def test_layer_grad_norms_needs_a_backward_pass():
    with pytest.raises(ValueError, match="backward"):
        dyn.layer_grad_norms(fresh_model())


def test_layer_output_stds_records_each_layer_and_removes_its_hooks(blobs):
    X, _ = blobs
    model = fresh_model()
    stds = dyn.layer_output_stds(model, X)
    assert stds[0] == pytest.approx(model[0](X).std().item(), rel=1e-5)
    assert len(stds) == 2 and not model[0]._forward_hooks
    with pytest.raises(ValueError, match="Conv2d"):
        dyn.layer_output_stds(model, X, nn.Conv2d)


def test_per_example_gradients_match_a_loop(blobs):
    X, y = blobs
    model = fresh_model()
    fast = dyn.per_example_gradients(model, X[:5], y[:5])
    for i in range(5):
        model.zero_grad()
        nn.functional.cross_entropy(model(X[i : i + 1]), y[i : i + 1]).backward()
        slow = torch.cat([p.grad.flatten() for p in model.parameters()])
        assert torch.allclose(fast[i], slow, atol=1e-6)


def test_gradient_noise_scale_matches_its_definition(blobs):
    X, y = blobs
    model = fresh_model()
    g = dyn.per_example_gradients(model, X, y).double()
    n = len(g)
    trace = g.var(dim=0).sum().item()
    expected = trace / (g.mean(dim=0).pow(2).sum().item() - trace / n)
    assert dyn.gradient_noise_scale(model, X, y) == pytest.approx(expected)
    # identical examples: no gradient noise at all
    assert dyn.gradient_noise_scale(model, X[:1].repeat(8, 1), y[:1].repeat(8)) == pytest.approx(0.0, abs=1e-9)


def test_gradient_noise_scale_is_infinite_when_the_mean_gradient_is_noise():
    model = fresh_model()
    with torch.no_grad():  # equal logits: the gradients of labels 0 and 1 on the same input cancel exactly
        model[2].weight.zero_()
        model[2].bias.zero_()
    X = torch.ones(2, 2)
    y = torch.tensor([0, 1])
    assert dyn.gradient_noise_scale(model, X, y) == math.inf


def test_gradient_noise_scale_needs_two_examples(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="at least 2"):
        dyn.gradient_noise_scale(fresh_model(), X[:1], y[:1])
