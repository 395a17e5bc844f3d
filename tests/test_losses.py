import pytest
import torch
import torch.nn.functional as F

from helpers.losses import binary_focal_loss


def _batch(seed: int = 0, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, generator=generator, dtype=torch.float64)
    targets = (torch.rand(n, generator=generator) < 0.3).to(torch.float64)
    return logits, targets


def _direct_formula(logits, targets, gamma, alpha):
    p = torch.sigmoid(logits)
    p_t = torch.where(targets == 1, p, 1 - p)
    alpha_t = torch.ones_like(p) if alpha is None else torch.where(targets == 1, alpha, 1 - alpha)
    return -alpha_t * (1 - p_t) ** gamma * torch.log(p_t)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, 0.25, 0.9])
def test_matches_the_direct_formula(gamma, alpha):
    logits, targets = _batch()
    expected = _direct_formula(logits, targets, gamma, alpha)
    per_example = binary_focal_loss(logits, targets, gamma=gamma, alpha=alpha, reduction="none")
    torch.testing.assert_close(per_example, expected)
    torch.testing.assert_close(binary_focal_loss(logits, targets, gamma=gamma, alpha=alpha), expected.mean())
    torch.testing.assert_close(
        binary_focal_loss(logits, targets, gamma=gamma, alpha=alpha, reduction="sum"), expected.sum()
    )


def test_gamma_zero_is_binary_cross_entropy():
    logits, targets = _batch(1)
    torch.testing.assert_close(
        binary_focal_loss(logits, targets, gamma=0), F.binary_cross_entropy_with_logits(logits, targets)
    )


def test_gamma_zero_with_alpha_is_class_weighted_cross_entropy():
    logits, targets = _batch(2)
    alpha = 0.8
    weights = torch.where(targets == 1, alpha, 1 - alpha)
    expected = F.binary_cross_entropy_with_logits(logits, targets, weight=weights, reduction="sum")
    torch.testing.assert_close(binary_focal_loss(logits, targets, gamma=0, alpha=alpha, reduction="sum"), expected)


def test_integer_and_bool_targets_are_accepted():
    logits, targets = _batch(3)
    reference = binary_focal_loss(logits, targets)
    torch.testing.assert_close(binary_focal_loss(logits, targets.long()), reference)
    torch.testing.assert_close(binary_focal_loss(logits, targets.bool()), reference)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_for_extreme_logits(dtype):
    logits = torch.tensor([-100.0, -100.0, 100.0, 100.0, 0.0], dtype=dtype, requires_grad=True)
    targets = torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0], dtype=dtype)
    losses = binary_focal_loss(logits, targets, gamma=2.0, alpha=0.25, reduction="none")
    assert torch.isfinite(losses).all()
    # Confidently right costs ~0; confidently wrong costs about |logit| (times α_t).
    assert losses[0] < 1e-30 and losses[3] < 1e-30
    torch.testing.assert_close(losses[1], torch.tensor(0.25 * 100.0, dtype=dtype))
    torch.testing.assert_close(losses[2], torch.tensor(0.75 * 100.0, dtype=dtype))
    losses.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_gradients_flow_to_every_logit():
    logits, targets = _batch(4)
    logits.requires_grad_(True)
    binary_focal_loss(logits, targets).backward()
    assert logits.grad is not None
    assert (logits.grad != 0).all()
    # The gradient pushes positives up and negatives down.
    assert (logits.grad[targets == 1] < 0).all() and (logits.grad[targets == 0] > 0).all()


def test_gradient_matches_autograd_of_the_direct_formula():
    logits, targets = _batch(5)
    mine = logits.clone().requires_grad_(True)
    direct = logits.clone().requires_grad_(True)
    binary_focal_loss(mine, targets, gamma=2.0, alpha=0.3, reduction="sum").backward()
    _direct_formula(direct, targets, 2.0, 0.3).sum().backward()
    torch.testing.assert_close(mine.grad, direct.grad)


def test_easy_examples_are_down_weighted_more_than_hard_ones():
    logits = torch.tensor([4.0, -1.0], dtype=torch.float64)  # an easy and a hard positive
    targets = torch.ones(2, dtype=torch.float64)
    focal = binary_focal_loss(logits, targets, gamma=2.0, reduction="none")
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    ratio = focal / bce  # = (1 - p_t)^γ
    assert (ratio < 1).all()
    assert ratio[0] < 1e-3 and ratio[1] > 0.5
    assert ratio[0] < ratio[1] / 100


def test_larger_gamma_never_increases_the_loss():
    logits, targets = _batch(6)
    previous = binary_focal_loss(logits, targets, gamma=0, reduction="none")
    for gamma in (0.5, 1, 2, 5):
        current = binary_focal_loss(logits, targets, gamma=gamma, reduction="none")
        assert (current <= previous + 1e-12).all()
        previous = current


def test_works_on_multidimensional_inputs():
    logits = torch.randn(4, 3, 2)
    targets = (torch.rand(4, 3, 2) < 0.5).float()
    assert binary_focal_loss(logits, targets, reduction="none").shape == (4, 3, 2)
    assert binary_focal_loss(logits, targets).shape == ()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"gamma": -0.5}, ValueError, "gamma"),
        ({"gamma": float("nan")}, ValueError, "gamma"),
        ({"gamma": "2"}, ValueError, "gamma"),
        ({"gamma": True}, ValueError, "gamma"),
        ({"alpha": -0.1}, ValueError, "alpha"),
        ({"alpha": 1.5}, ValueError, "alpha"),
        ({"alpha": "0.5"}, ValueError, "alpha"),
        ({"alpha": False}, ValueError, "alpha"),
        ({"reduction": "avg"}, ValueError, "reduction"),
        ({"reduction": None}, ValueError, "reduction"),
    ],
)
def test_bad_options_raise(kwargs, error, match):
    logits, targets = _batch()
    with pytest.raises(error, match=match):
        binary_focal_loss(logits, targets, **kwargs)


def test_alpha_bounds_are_allowed():
    logits, targets = _batch()
    assert binary_focal_loss(logits, targets, alpha=0.0) >= 0
    assert binary_focal_loss(logits, targets, alpha=1) >= 0


def test_bad_tensors_raise():
    logits, targets = _batch()
    with pytest.raises(TypeError, match="logits must be a torch.Tensor"):
        binary_focal_loss(logits.numpy(), targets)
    with pytest.raises(TypeError, match="targets must be a torch.Tensor"):
        binary_focal_loss(logits, targets.tolist())
    with pytest.raises(TypeError, match="floating-point"):
        binary_focal_loss(logits.long(), targets)
    with pytest.raises(ValueError, match="same shape"):
        binary_focal_loss(logits.unsqueeze(1), targets)
    with pytest.raises(ValueError, match="only 0 and 1"):
        binary_focal_loss(logits, targets * 2)
    with pytest.raises(ValueError, match="only 0 and 1"):
        binary_focal_loss(logits, torch.full_like(targets, 0.5))


def test_focal_loss_is_finite_at_infinite_logits():
    logits = torch.tensor([float("inf"), float("-inf"), float("-inf")])
    targets = torch.tensor([1.0, 0.0, 1.0])
    loss = binary_focal_loss(logits, targets, reduction="none")
    assert torch.isfinite(loss).all()
    assert loss[0] == 0 and loss[1] == 0 and loss[2] > 50  # right and sure: nothing; wrong and sure: large
