import pytest
import torch
from torch import nn

from helpers import models
from helpers.models import count_parameters, mlp, weight_tensors


def test_mlp_layer_structure():
    model = mlp(4, [8, 6], 3)
    assert [type(layer) for layer in model] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert [(layer.in_features, layer.out_features) for layer in model if isinstance(layer, nn.Linear)] == [
        (4, 8),
        (8, 6),
        (6, 3),
    ]


def test_mlp_outputs_raw_logits_of_the_right_shape():
    model = mlp(4, [8], 3)
    assert isinstance(model[-1], nn.Linear)
    assert model(torch.zeros(5, 4)).shape == (5, 3)


def test_mlp_adds_dropout_after_each_activation():
    model = mlp(4, [8, 6], 3, activation=nn.Tanh, dropout=0.25)
    assert [type(layer) for layer in model] == [
        nn.Linear,
        nn.Tanh,
        nn.Dropout,
        nn.Linear,
        nn.Tanh,
        nn.Dropout,
        nn.Linear,
    ]
    assert all(layer.p == 0.25 for layer in model if isinstance(layer, nn.Dropout))


def test_mlp_without_hidden_layers_is_linear():
    model = mlp(4, [], 2)
    assert len(model) == 1
    assert isinstance(model[0], nn.Linear)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("in_features", {"in_features": 0}),
        ("in_features", {"in_features": True}),
        ("in_features", {"in_features": 4.0}),
        ("out_features", {"out_features": -1}),
        ("hidden", {"hidden": [8, 0]}),
        ("hidden", {"hidden": [True]}),
        ("dropout", {"dropout": 1.0}),
        ("dropout", {"dropout": -0.1}),
    ],
)
def test_mlp_rejects_bad_arguments(name, kwargs):
    args = {"in_features": 4, "hidden": [8], "out_features": 2, **kwargs}
    with pytest.raises(ValueError, match=name):
        mlp(args.pop("in_features"), args.pop("hidden"), args.pop("out_features"), **args)


def test_count_parameters_by_hand():
    assert count_parameters(mlp(4, [8, 6], 3)) == (4 * 8 + 8) + (8 * 6 + 6) + (6 * 3 + 3)


def test_count_parameters_trainable_only_skips_frozen():
    model = mlp(4, [8, 6], 3)
    model[0].requires_grad_(False)
    assert count_parameters(model) == 115
    assert count_parameters(model, trainable_only=True) == 115 - (4 * 8 + 8)


def test_weight_tensors_excludes_biases():
    shapes = [tuple(w.shape) for w in weight_tensors(mlp(4, [8, 6], 3))]
    assert shapes == [(8, 4), (6, 8), (3, 6)]


def test_weight_tensors_keeps_conv_kernels_and_skips_norm_scales():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 1))
    assert [tuple(w.shape) for w in weight_tensors(model)] == [(2, 1, 3, 3), (1, 8)]


def test_saved_bytes_counts_the_serialized_state_dict():
    model = models.mlp(10, [20], 3)
    n_floats = models.count_parameters(model)
    size = models.saved_bytes(model)
    assert 4 * n_floats < size < 4 * n_floats + 4_000  # the float32 payload plus a small zip header
    zeros = models.mlp(10, [200], 3)
    with torch.no_grad():
        for p in zeros.parameters():
            p.zero_()
    assert models.saved_bytes(zeros, compress=True) < 0.2 * models.saved_bytes(zeros)


def test_saved_bytes_rejects_non_modules():
    with pytest.raises(TypeError, match="model"):
        models.saved_bytes({"weight": torch.zeros(2)})


def test_flatten_size_reads_a_dummy_pass():
    features = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 4, 3), nn.Flatten())
    assert models.flatten_size(features, (64,)) == 4 * 6 * 6


@pytest.mark.parametrize("shape", [(), (0, 8), (1.5,), (True,)])
def test_flatten_size_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="input_shape"):
        models.flatten_size(nn.Flatten(), shape)


def test_conv_block_parameters_follow_the_formula():
    standard = models.conv_block(8, 16)
    separable = models.conv_block(8, 16, separable=True)
    assert count_parameters(standard) == (3 * 3 * 8 + 1) * 16
    assert count_parameters(separable) == (3 * 3 + 1) * 8 + (8 + 1) * 16
    x = torch.randn(2, 8, 6, 6)
    assert standard(x).shape == separable(x).shape == (2, 16, 3, 3)


def test_small_cnn_classifies_flat_images():
    model = models.small_cnn((4, 8))
    assert model(torch.randn(5, 64)).shape == (5, 10)
    assert isinstance(model[-1], nn.Linear) and model[-1].in_features == 8 * 2 * 2
    separable = models.small_cnn((4, 8), separable=True)
    assert count_parameters(separable) < count_parameters(model)
    assert not any(m.groups > 1 for m in separable[1].modules() if isinstance(m, nn.Conv2d))  # first block standard


@pytest.mark.parametrize(("kwargs", "message"), [({"channels": ()}, "channels"), ({"channels": (0,)}, "channels"),
                                                 ({"image_shape": (8, 8)}, "image_shape")])
def test_small_cnn_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.small_cnn(**kwargs)
