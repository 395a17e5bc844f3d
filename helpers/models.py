"""Small PyTorch models the notebooks share."""

from __future__ import annotations

import gzip
import io
import math
from collections.abc import Sequence

import torch
from torch import nn


def mlp(
    in_features: int,
    hidden: Sequence[int],
    out_features: int,
    *,
    activation: type[nn.Module] = nn.ReLU,
    dropout: float = 0.0,
) -> nn.Sequential:
    """A multi-layer perceptron: Linear → activation (→ Dropout) per hidden layer, then Linear.

    The output layer has no activation: losses such as ``CrossEntropyLoss`` expect raw logits.
    """
    for name, value in (("in_features", in_features), ("out_features", out_features)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
        raise ValueError(f"hidden must be a sequence of ints >= 1, got {hidden!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), activation()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def flatten_size(features: nn.Module, input_shape: Sequence[int]) -> int:
    """Number of values ``features`` outputs per example, read from one dummy forward pass.

    ``input_shape`` excludes the batch dimension, e.g. ``(1, 8, 8)``. Computing the size by hand
    breaks whenever a padding, stride or pooling changes; the dummy pass never does.
    """
    if len(input_shape) == 0 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in input_shape):
        raise ValueError(f"input_shape must be a non-empty sequence of ints >= 1, got {input_shape!r}")
    with torch.no_grad():
        return int(features(torch.zeros(1, *input_shape)).numel())


def conv_block(in_channels: int, out_channels: int, *, separable: bool = False) -> nn.Sequential:
    """A 3x3 convolution (padding 1), ReLU and a 2x2 max-pool that halves height and width.

    ``separable`` splits the convolution into a depthwise 3x3 (one filter per input channel) and a
    pointwise 1x1 that mixes the channels.
    """
    if separable:
        conv = [nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels),
                nn.Conv2d(in_channels, out_channels, 1)]
    else:
        conv = [nn.Conv2d(in_channels, out_channels, 3, padding=1)]
    return nn.Sequential(*conv, nn.ReLU(), nn.MaxPool2d(2))


def small_cnn(
    channels: Sequence[int] = (16, 32),
    *,
    image_shape: Sequence[int] = (1, 8, 8),
    n_classes: int = 10,
    separable: bool = False,
) -> nn.Sequential:
    """Conv blocks (each halving the image), then a linear classifier, for flat inputs of ``image_shape``.

    The input arrives flattened (as the course's tabular digits do) and is unflattened first. The
    first block is always a standard convolution: a depthwise filter over one channel saves nothing.
    """
    if len(channels) == 0 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels):
        raise ValueError(f"channels must be a non-empty sequence of ints >= 1, got {channels!r}")
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be (channels, height, width), got {image_shape!r}")
    blocks: list[nn.Module] = [nn.Unflatten(1, tuple(image_shape))]
    width = image_shape[0]
    for i, out in enumerate(channels):
        blocks.append(conv_block(width, out, separable=separable and i > 0))
        width = out
    blocks.append(nn.Flatten())
    features = nn.Sequential(*blocks)
    n_flat = flatten_size(features, (int(math.prod(image_shape)),))
    return nn.Sequential(*features, nn.Linear(n_flat, n_classes))


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (elements, not bytes)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def weight_tensors(model: nn.Module) -> list[torch.Tensor]:
    """The weight matrices of the Linear/conv layers (biases excluded), as regularizers use them."""
    return [p for name, p in model.named_parameters() if name.endswith("weight") and p.dim() > 1]


def saved_bytes(model: nn.Module, *, compress: bool = False) -> int:
    """Bytes ``torch.save(model.state_dict())`` writes; gzip-compressed size when ``compress`` is true."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    raw = buffer.getvalue()
    return len(gzip.compress(raw)) if compress else len(raw)
