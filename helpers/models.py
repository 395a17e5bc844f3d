"""Small PyTorch models the notebooks share."""

from __future__ import annotations

import gzip
import io
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
