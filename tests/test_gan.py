import numpy as np
import pytest
import torch
from torch import nn

from helpers import gan
from helpers.models import mlp


def _pair(seed: int = 0, z_dim: int = 2, data_dim: int = 2) -> tuple[nn.Sequential, nn.Sequential]:
    torch.manual_seed(seed)
    return mlp(z_dim, [16], data_dim), mlp(data_dim, [16], 1)


def _adam(net: nn.Module) -> torch.optim.Adam:
    return torch.optim.Adam(net.parameters(), lr=1e-2, betas=(0.5, 0.999))


def test_ring_centers_and_samples():
    ring = gan.Ring(n_modes=8, radius=2.0, std=0.05)
    assert ring.centers.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(ring.centers, axis=1), 2.0, rtol=1e-6)
    samples = ring.sample((3, 500), torch.Generator().manual_seed(0))
    assert samples.shape == (3, 500, 2)
    assert abs(samples.norm(dim=-1).mean().item() - 2.0) < 0.01


@pytest.mark.parametrize("kwargs", [{"n_modes": 1}, {"radius": 0}, {"std": -1.0}])
def test_ring_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        gan.Ring(**kwargs)


def test_mode_coverage_of_real_data_and_of_a_collapsed_sample():
    ring = gan.Ring()
    real = gan.mode_coverage(ring.sample((4000,), torch.Generator().manual_seed(1)), ring)
    assert real.modes == 8
    assert real.quality == pytest.approx(1 - np.exp(-4.5), abs=0.01)  # 3 sigma in 2-D
    one_mode = np.repeat(ring.centers[:1], 1000, axis=0)
    collapsed = gan.mode_coverage(one_mode, ring)
    assert (collapsed.modes, collapsed.quality) == (1, 1.0)
    assert collapsed.counts.tolist() == [1000] + [0] * 7
    far = gan.mode_coverage(np.zeros((100, 2)), ring)
    assert (far.modes, far.quality) == (0, 0.0)


def test_mode_coverage_ignores_a_few_stray_points():
    ring = gan.Ring()
    samples = np.concatenate([np.repeat(ring.centers[:1], 990, axis=0),
                              np.repeat(ring.centers[1:2], 10, axis=0)])
    assert gan.mode_coverage(samples, ring).modes == 1  # 10 of 1000 is under a fifth of the fair share (25)


@pytest.mark.parametrize("samples", [np.zeros((5, 3)), np.zeros(5), np.zeros((0, 2))])
def test_mode_coverage_rejects_bad_shapes(samples):
    with pytest.raises(ValueError, match="samples"):
        gan.mode_coverage(samples, gan.Ring())


def test_stacked_members_compute_what_each_member_computes():
    members = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        members.append(mlp(3, [8, 8], 2))
    stacked = gan.stack_members(members)
    x = torch.randn(3, 5, 3)
    out = stacked(x)
    assert out.shape == (3, 5, 2)
    for k, member in enumerate(members):
        torch.testing.assert_close(out[k], member(x[k]))
        torch.testing.assert_close(gan.unstack_member(stacked, k)(x[k]), member(x[k]))


def test_stacked_members_learn_what_each_member_learns_alone():
    """K GANs trained side by side with one Adam each for G and D = K GANs trained one at a time."""
    seeds, steps, batch = (0, 1), 5, 32
    ring = gan.Ring()
    data = ring.sample((steps, len(seeds), batch), torch.Generator().manual_seed(0))
    noise = torch.randn(steps, len(seeds), batch, 2, generator=torch.Generator().manual_seed(1))
    G = gan.seeded_members(lambda: mlp(2, [16], 2), seeds)
    D = gan.seeded_members(lambda: mlp(2, [16], 1), [s + 10 for s in seeds])
    opt_g, opt_d = _adam(G), _adam(D)
    for t in range(steps):
        gan.gan_step(G, D, opt_g, opt_d, data[t], noise[t])
    for k, seed in enumerate(seeds):
        torch.manual_seed(seed)
        g_alone = mlp(2, [16], 2)
        torch.manual_seed(seed + 10)
        d_alone = mlp(2, [16], 1)
        opt_g1, opt_d1 = _adam(g_alone), _adam(d_alone)
        for t in range(steps):
            gan.gan_step(g_alone, d_alone, opt_g1, opt_d1, data[t, k], noise[t, k])
        # the stacked loss is a mean over K members: each member's gradient is 1/K of its own,
        # which Adam normalizes away
        for trained, alone in zip(gan.unstack_member(G, k).parameters(), g_alone.parameters(), strict=True):
            torch.testing.assert_close(trained, alone, atol=1e-5, rtol=1e-4)


def test_stack_members_rejects_mismatched_or_parametrized_layers():
    with pytest.raises(ValueError, match="same number of layers"):
        gan.stack_members([mlp(2, [4], 1), mlp(2, [4, 4], 1)])
    with pytest.raises(ValueError, match="parameters"):
        gan.stack_members([nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))] * 2)
    with pytest.raises(ValueError, match="same shape"):
        gan.StackedLinear([nn.Linear(2, 3), nn.Linear(3, 3)])
    with pytest.raises(ValueError, match="input must have shape"):
        gan.stack_members([mlp(2, [4], 1)] * 2)(torch.zeros(3, 5, 2))


def test_discriminator_step_leaves_the_generator_untouched():
    G, D = _pair()
    opt_g, opt_d = _adam(G), _adam(D)
    real, z = torch.randn(32, 2), torch.randn(32, 2)
    g_before = [p.detach().clone() for p in G.parameters()]
    d_before = [p.detach().clone() for p in D.parameters()]
    loss, fake = gan.discriminator_step(G, D, opt_d, real, z)
    assert fake.shape == real.shape  # the generator's output has the data's shape
    assert np.isfinite(loss)
    assert all(torch.equal(p, b) for p, b in zip(G.parameters(), g_before, strict=True))
    assert all(p.grad is None for p in G.parameters())
    assert any(not torch.equal(p, b) for p, b in zip(D.parameters(), d_before, strict=True))
    d_after = [p.detach().clone() for p in D.parameters()]
    gan.generator_step(D, opt_g, fake)
    assert all(torch.equal(p, b) for p, b in zip(D.parameters(), d_after, strict=True))
    assert any(not torch.equal(p, b) for p, b in zip(G.parameters(), g_before, strict=True))


def test_discriminator_loss_matches_the_formula_with_logits():
    G, D = _pair(seed=3)
    real, z = torch.randn(16, 2), torch.randn(16, 2)
    with torch.no_grad():
        p_real, p_fake = torch.sigmoid(D(real)), torch.sigmoid(D(G(z)))
        expected = -(torch.log(p_real).mean() + torch.log(1 - p_fake).mean()).item()
    loss, _ = gan.discriminator_step(G, D, torch.optim.SGD(D.parameters(), lr=0.0), real, z)
    assert loss == pytest.approx(expected, rel=1e-5)


def test_generator_output_shape_equals_the_data_shape_for_digits():
    G, _ = _pair(z_dim=16, data_dim=64)
    assert G(torch.randn(7, 16)).shape == (7, 64)


def test_minibatch_std_appends_the_batch_spread():
    x = torch.tensor([[0.0, 0.0], [2.0, 4.0]])
    out = gan.MinibatchStd()(x)
    expected = (torch.tensor([2.0, 4.0]) / np.sqrt(2)).mean()  # unbiased std of two points: |a - b| / sqrt(2)
    torch.testing.assert_close(out[:, 2], expected.expand(2))
    torch.testing.assert_close(out[:, :2], x)
    collapsed = gan.MinibatchStd()(torch.ones(3, 8, 2))  # stacked input: one spread per member
    assert collapsed.shape == (3, 8, 3) and collapsed[..., 2].abs().max() == 0
    with pytest.raises(ValueError, match="batch >= 2"):
        gan.MinibatchStd()(torch.zeros(1, 2))


def test_sliced_wasserstein_is_zero_for_equal_samples_and_measures_a_shift():
    a = np.random.default_rng(0).standard_normal((500, 2))
    assert gan.sliced_wasserstein(a, a) == 0
    shifted = gan.sliced_wasserstein(a, a + np.array([1.0, 0.0]), n_projections=2000)
    assert shifted == pytest.approx(2 / np.pi, rel=0.05)  # E|cos(theta)| over random directions in 2-D
    with pytest.raises(ValueError, match="one shape"):
        gan.sliced_wasserstein(a, a[:10])
