import numpy as np
import pytest
import torch
from torch import nn

from helpers import adversarial as adv

torch.set_num_threads(1)


def _trained(seed=0):
    """A small MLP fitted to a two-class problem on inputs in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    X = torch.rand(300, 16, generator=generator)
    y = (X[:, :8].sum(1) > X[:, 8:].sum(1)).long()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        optimizer.step()
    model.zero_grad(set_to_none=True)
    return model, X, y


def _loss(model, X, y):
    with torch.no_grad():
        return nn.functional.cross_entropy(model(X), y).item()


def test_fgsm_raises_the_loss_and_respects_the_budget_and_range():
    model, X, y = _trained()
    attacked = adv.fgsm(model, X, y, 0.05)
    assert _loss(model, attacked, y) > _loss(model, X, y) + 0.05
    assert (attacked - X).abs().max() <= 0.05 + 1e-6
    assert attacked.min() >= 0 and attacked.max() <= 1
    assert all(p.grad is None for p in model.parameters())  # the attack leaves the weights' gradients alone


def test_pgd_stays_in_the_ball_and_is_at_least_as_strong_as_fgsm():
    model, X, y = _trained()
    attacked = adv.pgd(model, X, y, 0.05, steps=20, generator=torch.Generator().manual_seed(0))
    assert (attacked - X).abs().max() <= 0.05 + 1e-6
    assert attacked.min() >= 0 and attacked.max() <= 1
    assert _loss(model, attacked, y) >= _loss(model, adv.fgsm(model, X, y, 0.05), y) - 1e-3


def test_pgd_on_a_linear_model_finds_the_corner_fgsm_finds():
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    X, y = torch.full((4, 6), 0.5), torch.tensor([0, 1, 0, 1])
    fgsm = adv.fgsm(model, X, y, 0.1)
    pgd = adv.pgd(model, X, y, 0.1, steps=5, random_start=False)
    assert torch.allclose(fgsm, pgd, atol=1e-6)  # for a linear loss the sign step is already optimal


def test_zero_budget_changes_nothing():
    model, X, y = _trained()
    assert torch.equal(adv.fgsm(model, X, y, 0.0), X)
    assert torch.equal(adv.pgd(model, X, y, 0.0), X)


@pytest.mark.parametrize(("kwargs", "message"), [({"epsilon": -0.1}, "epsilon"), ({"steps": 0}, "steps"),
                                                 ({"clip": (1.0, 0.0)}, "clip")])
def test_attacks_reject_bad_input(kwargs, message):
    model, X, y = _trained()
    arguments = {"epsilon": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        adv.pgd(model, X, y, **arguments)
    if "steps" not in kwargs:
        with pytest.raises(ValueError, match=message):
            adv.fgsm(model, X, y, **arguments)


def test_add_trigger_stamps_only_the_corner_square():
    x = torch.zeros(3, 64)
    stamped = adv.add_trigger(x, size=2)
    images = stamped.reshape(3, 8, 8)
    assert images[:, 6:, 6:].eq(1).all() and images.sum() == 3 * 4
    assert x.sum() == 0  # the input is not modified
    with pytest.raises(ValueError, match="size"):
        adv.add_trigger(x, size=9)
    with pytest.raises(ValueError, match="flat images"):
        adv.add_trigger(torch.zeros(3, 10))


def test_spectral_signature_ranks_planted_examples_first():
    rng = np.random.default_rng(0)
    clean = rng.normal(size=(200, 20))
    planted = rng.normal(size=(15, 20)) + 6 * np.eye(20)[0]  # a shared shift along one direction
    scores = adv.spectral_signature_scores(np.vstack([clean, planted]))
    assert set(np.argsort(scores)[-15:]) == set(range(200, 215))
    with pytest.raises(ValueError, match="2-D"):
        adv.spectral_signature_scores(np.zeros(5))
