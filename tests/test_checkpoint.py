import random

import numpy as np
import pytest
import torch
from torch import nn

from helpers.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from helpers.models import mlp


def make_state(seed):
    torch.manual_seed(seed)
    model = mlp(4, [8], 3, dropout=0.3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    return model, optimizer, scheduler, torch.Generator().manual_seed(seed)


X = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
Y = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(2))


def epochs(model, optimizer, scheduler, generator, n):
    losses = []
    for _ in range(n):
        for idx in torch.randperm(64, generator=generator).split(16):
            loss = nn.functional.cross_entropy(model(X[idx]), Y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
    return losses


def test_rng_state_round_trip():
    state = rng_state()
    draws = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == draws


def test_set_rng_state_rejects_incomplete_state():
    with pytest.raises(ValueError, match="numpy"):
        set_rng_state({"python": random.getstate(), "torch": torch.get_rng_state()})


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    straight = epochs(*make_state(0), 4)
    model, optimizer, scheduler, generator = make_state(0)
    first = epochs(model, optimizer, scheduler, generator, 2)
    path = save_checkpoint(tmp_path / "c.pt", model=model, optimizer=optimizer, scheduler=scheduler, epoch=2,
                           data_generator=generator)
    assert path.exists() and not (tmp_path / "c.pt.partial").exists()
    model, optimizer, scheduler, generator = make_state(99)
    done = load_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler, data_generator=generator)
    assert done == 2
    assert first + epochs(model, optimizer, scheduler, generator, 2) == straight


def test_load_without_optional_parts_and_missing_parts(tmp_path):
    model, optimizer, _, _ = make_state(0)
    path = save_checkpoint(tmp_path / "c.pt", model=model, optimizer=optimizer, epoch=0)
    other, other_optimizer, scheduler, generator = make_state(1)
    assert load_checkpoint(path, model=other) == 0
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True))
    with pytest.raises(ValueError, match="scheduler"):
        load_checkpoint(path, model=other, optimizer=other_optimizer, scheduler=scheduler)
    with pytest.raises(ValueError, match="data-order"):
        load_checkpoint(path, model=other, data_generator=generator)


@pytest.mark.parametrize("epoch", [-1, 1.5, True])
def test_save_rejects_bad_epoch(tmp_path, epoch):
    model, optimizer, _, _ = make_state(0)
    with pytest.raises(ValueError, match="epoch"):
        save_checkpoint(tmp_path / "c.pt", model=model, optimizer=optimizer, epoch=epoch)
