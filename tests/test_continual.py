import numpy as np
import pytest
import torch
from torch import nn

from helpers import continual as cl

torch.set_num_threads(1)


def _task(centers: list[list[float]], seed: int, n: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    """Two Gaussian blobs (standard deviation 1): class k around centers[k], classes alternating."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    return torch.randn(n, 2, generator=generator) + torch.tensor(centers)[y], y


# Task A: the class is the sign of x0. Task B, higher up: the opposite sign. A small MLP can solve
# both, but plain training on B reuses A's features with the sign flipped and forgets A.
TASK_A = _task([[-2.0, 0.0], [2.0, 0.0]], seed=1)
TASK_B = _task([[2.0, 5.0], [-2.0, 5.0]], seed=2)


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))


def _accuracy(model: nn.Module, task: tuple[torch.Tensor, torch.Tensor]) -> float:
    with torch.no_grad():
        return (model(task[0]).argmax(dim=1) == task[1]).float().mean().item()


def _after_a_then_b(*, strength: float | None = None, replay_capacity: int | None = None) -> tuple:
    """Accuracies on A and on B after training on A, then on B with the given remedy."""
    model = _mlp()
    cl.train_on(model, *TASK_A, epochs=10, lr=0.01)
    penalty, replay = None, None
    if strength is not None:
        penalty = cl.EWC(model, cl.fisher_diagonal(model, *TASK_A), strength=strength).penalty
    if replay_capacity is not None:
        replay = cl.ReplayBuffer(replay_capacity)
        replay.add(*TASK_A)
    cl.train_on(model, *TASK_B, epochs=20, lr=0.01, penalty=penalty, replay=replay)
    return _accuracy(model, TASK_A), _accuracy(model, TASK_B)


# --- replay buffer ---


def test_replay_buffer_respects_its_capacity_and_keeps_what_it_was_given():
    buffer = cl.ReplayBuffer(50, seed=0)
    buffer.add(np.arange(30.0)[:, None], np.arange(30))
    assert len(buffer) == 30 and buffer.seen == 30
    X, y = buffer.data()
    assert torch.equal(X[:, 0], y.double())  # rows stay paired with their labels
    buffer.add(torch.arange(30.0, 130.0)[:, None].double(), torch.arange(30, 130))
    X, y = buffer.data()
    assert len(buffer) == 50 and X.shape == (50, 1) and buffer.seen == 130
    assert torch.equal(X[:, 0], y.double()) and len(set(y.tolist())) == 50


def test_reservoir_keeps_every_batch_of_the_stream_equally():
    counts = np.zeros(10)
    for seed in range(20):
        buffer = cl.ReplayBuffer(200, seed=seed)
        for batch in range(10):
            buffer.add(torch.randn(100, 3), torch.full((100,), batch))
        counts += np.bincount(buffer.data()[1].numpy(), minlength=10)
    shares = counts / counts.sum()
    assert np.allclose(shares, 0.1, atol=0.025)  # uniform over the stream, not biased to recent batches


def test_replay_buffer_sample_draws_distinct_stored_examples():
    buffer = cl.ReplayBuffer(20, seed=0)
    buffer.add(torch.arange(100.0)[:, None], torch.arange(100))
    X, y = buffer.sample(20)
    assert sorted(y.tolist()) == sorted(buffer.data()[1].tolist())
    assert torch.equal(X[:, 0], y.float())
    assert not torch.equal(buffer.sample(10)[1], buffer.sample(10)[1])


@pytest.mark.parametrize(("call", "message"), [
    (lambda b: cl.ReplayBuffer(0), "capacity"),
    (lambda b: b.add(torch.zeros(3, 2), torch.zeros(2)), "equal length"),
    (lambda b: b.add(torch.zeros(3, 4), torch.zeros(3)), "shape"),
    (lambda b: b.sample(6), "cannot sample"),
    (lambda b: cl.ReplayBuffer(3).data(), "empty"),
])
def test_replay_buffer_rejects_bad_use(call, message):
    buffer = cl.ReplayBuffer(10)
    buffer.add(torch.zeros(5, 2), torch.zeros(5))
    with pytest.raises(ValueError, match=message):
        call(buffer)


# --- Fisher and EWC ---


def test_fisher_diagonal_matches_a_loop_over_single_examples():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3))
    X, y = torch.randn(17, 3, generator=torch.Generator().manual_seed(0)), torch.arange(17) % 3
    fisher = cl.fisher_diagonal(model, X, y, chunk_size=5)
    expected = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for x, target in zip(X, y, strict=True):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[None]), target[None]).backward()
        for name, p in model.named_parameters():
            expected[name] += p.grad**2 / len(X)
    assert fisher.keys() == expected.keys()
    for name in fisher:
        assert (fisher[name] >= 0).all()
        assert torch.allclose(fisher[name], expected[name], atol=1e-6)


def test_fisher_diagonal_restores_the_mode_and_skips_frozen_parameters():
    model = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5), nn.Linear(3, 2))
    model[0].weight.requires_grad_(False)
    fisher = cl.fisher_diagonal(model, *TASK_A)
    assert model.training and "0.weight" not in fisher and set(fisher) == {"0.bias", "2.weight", "2.bias"}


def test_ewc_penalty_is_zero_at_the_anchor_and_its_gradient_is_the_formula():
    model = _mlp()
    fisher = {name: torch.rand_like(p) for name, p in model.named_parameters()}
    ewc = cl.EWC(model, fisher, strength=3.0)
    assert ewc.penalty().item() == 0
    anchor = {name: p.detach().clone() for name, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    model.zero_grad()
    ewc.penalty().backward()
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, 3.0 * fisher[name] * (p.detach() - anchor[name]), atol=1e-6)


@pytest.mark.parametrize(("fisher", "strength", "message"), [
    ({"0.weight": torch.ones(2, 2)}, 1.0, "0.weight"),
    ({"nope": torch.ones(1)}, 1.0, "nope"),
    ({}, 1.0, "at least one"),
    ({"0.bias": torch.ones(32)}, -1.0, "strength"),
])
def test_ewc_rejects_bad_input(fisher, strength, message):
    with pytest.raises(ValueError, match=message):
        cl.EWC(_mlp(), fisher, strength=strength)


def test_ewc_keeps_the_first_task_that_plain_training_forgets():
    plain_a, plain_b = _after_a_then_b()
    ewc_a, ewc_b = _after_a_then_b(strength=1000.0)
    assert plain_a < 0.2 and plain_b > 0.95  # B learned, A overwritten: its decisions are reversed
    assert ewc_a > plain_a + 0.4 and ewc_b > 0.9


# --- training and metrics ---


def test_train_on_lowers_the_loss_and_is_reproducible():
    losses = cl.train_on(_mlp(), *TASK_A, epochs=5, lr=0.01)
    assert len(losses) == 5 and losses[-1] < 0.5 * losses[0]
    assert cl.train_on(_mlp(), *TASK_A, epochs=5, lr=0.01) == losses
    assert cl.train_on(_mlp(), *TASK_A, epochs=5, lr=0.01, seed=1) != losses


def test_replay_keeps_the_first_task():
    plain_a, _ = _after_a_then_b()
    replay_a, replay_b = _after_a_then_b(replay_capacity=100)
    assert replay_a > 0.9 and replay_b > 0.9 and replay_a > plain_a + 0.5


def test_train_on_mixes_the_requested_share_of_replayed_examples():
    buffer = cl.ReplayBuffer(100)
    buffer.add(torch.zeros(100, 2), torch.zeros(100, dtype=torch.long))
    batch_sizes = []
    model = _mlp()
    model.register_forward_hook(lambda module, inputs, output: batch_sizes.append(len(inputs[0])))
    cl.train_on(model, *TASK_A, epochs=1, lr=0.01, batch_size=40, replay=buffer, replay_fraction=0.2)
    assert batch_sizes == [50] * 10  # 40 new + 10 replayed: 10 / 50 = 0.2 of every batch


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"epochs": 0}, "epochs"), ({"lr": 0.0}, "lr"), ({"replay_fraction": 1.0}, "replay_fraction"),
    ({"batch_size": 0}, "batch_size"),
])
def test_train_on_rejects_bad_arguments(kwargs, message):
    arguments = {"epochs": 1, "lr": 0.01} | kwargs
    with pytest.raises(ValueError, match=message):
        cl.train_on(_mlp(), *TASK_A, **arguments)


def test_forgetting_and_backward_transfer_on_hand_made_matrices():
    R = np.array([
        [0.9, 0.1, 0.0],
        [0.6, 0.8, 0.2],
        [0.5, 0.7, 0.9],
    ])
    # task 0: best 0.9, final 0.5 -> 0.4; task 1: best 0.8, final 0.7 -> 0.1
    assert cl.forgetting(R) == pytest.approx(0.25)
    assert cl.backward_transfer(R) == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)
    improving = np.array([[0.6, 0.0], [0.8, 0.9]])
    assert cl.forgetting(improving) == pytest.approx(-0.2)
    assert cl.backward_transfer(improving) == pytest.approx(0.2)
    peak_later = np.array([[0.5, 0.0, 0.0], [0.9, 0.7, 0.0], [0.6, 0.7, 0.8]])
    assert cl.forgetting(peak_later) == pytest.approx(((0.9 - 0.6) + 0.0) / 2)  # the best, not the first
    assert cl.backward_transfer(peak_later) == pytest.approx(((0.6 - 0.5) + 0.0) / 2)


@pytest.mark.parametrize("matrix", [np.ones((2, 3)), np.ones(3), np.ones((1, 1))])
def test_metrics_reject_non_square_matrices(matrix):
    for metric in (cl.forgetting, cl.backward_transfer):
        with pytest.raises(ValueError, match="square"):
            metric(matrix)
