import pytest
import torch

from helpers.augment import Augmenter, mixup


@pytest.fixture
def images():
    generator = torch.Generator().manual_seed(0)
    return torch.rand(16, 8, 8, generator=generator)


def test_default_augmenter_is_the_identity(images):
    assert torch.allclose(Augmenter()(images), images, atol=1e-6)


def test_flat_inputs_come_back_flat(images):
    flat = images.reshape(16, 64)
    out = Augmenter(max_shift=1.0)(flat, torch.Generator().manual_seed(1))
    assert out.shape == (16, 64)


def test_random_but_reproducible(images):
    augment = Augmenter(max_rotation=15, max_shift=1, zoom=(0.9, 1.1), brightness=(0.8, 1.2))
    a = augment(images, torch.Generator().manual_seed(3))
    b = augment(images, torch.Generator().manual_seed(3))
    c = augment(images, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_a_whole_pixel_shift_moves_the_image():
    image = torch.zeros(1, 8, 8)
    image[0, 3, 3] = 1.0
    shifted = Augmenter(max_shift=1.0)(image.repeat(200, 1, 1), torch.Generator().manual_seed(0))
    centres = [(s == s.max()).nonzero()[0].tolist() for s in shifted]
    assert all(abs(r - 3) <= 1 and abs(c - 3) <= 1 for r, c in centres)


def test_flip_mirrors_left_right():
    image = torch.zeros(1, 8, 8)
    image[0, 2, 1] = 1.0
    flipped = Augmenter(flip_probability=1.0)(image)
    assert torch.allclose(flipped[0], image[0].flip(-1), atol=1e-6)


def test_brightness_scales_pixel_values(images):
    out = Augmenter(brightness=(0.5, 0.5))(images)
    assert torch.allclose(out, images * 0.5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"max_rotation": -1}, {"zoom": (0.0, 1.0)}, {"brightness": (1.2, 1.1)},
                                    {"flip_probability": 1.5}])
def test_augmenter_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        Augmenter(**kwargs)


@pytest.mark.parametrize(("batch", "error"), [(torch.zeros(2, 10), ValueError), (torch.zeros(2, 2, 2, 2), ValueError),
                                              (torch.zeros(2, 4, dtype=torch.long), TypeError)])
def test_augmenter_rejects_bad_batches(batch, error):
    with pytest.raises(error):
        Augmenter()(batch)


def test_mixup_mixes_inputs_and_labels_with_the_same_weights(images):
    X, y = images.reshape(16, 64), torch.arange(16) % 4
    mixed, soft = mixup(X, y, 4, alpha=0.4, generator=torch.Generator().manual_seed(0))
    assert mixed.shape == X.shape and soft.shape == (16, 4)
    assert torch.allclose(soft.sum(dim=1), torch.ones(16))
    again = mixup(X, y, 4, alpha=0.4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[0], mixed)
    # each mixed input lies between its two sources: its weight on the own label is at least
    # the weight the inputs share, and the pixel mean is a convex combination
    assert ((mixed.mean(dim=1) >= X.mean(dim=1).min() - 1e-6) & (mixed.mean(dim=1) <= X.mean(dim=1).max() + 1e-6)).all()


@pytest.mark.parametrize(("kwargs", "message"), [({"alpha": 0.0}, "alpha")])
def test_mixup_rejects_bad_alpha(images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        mixup(images.reshape(16, 64), torch.zeros(16, dtype=torch.long), 2, **kwargs)


def test_mixup_rejects_mismatched_lengths(images):
    with pytest.raises(ValueError, match="same length"):
        mixup(images.reshape(16, 64), torch.zeros(3, dtype=torch.long), 2)
