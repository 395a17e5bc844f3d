"""LoRA written by hand (Hu et al. 2021) and the memory arithmetic of fine-tuning: full, LoRA, QLoRA.

A frozen ``nn.Linear`` W gets a trainable low-rank update: y = W x + (alpha / r) · B A x, with A
(r × in) initialised like peft's default (Kaiming-uniform, a = √5) and B (out × r) at zero, so the
wrapped model starts exactly where the base model is. ``copy_from_peft`` moves peft's adapter weights
into ours, which lets the tests check parameter counts and outputs against ``peft`` itself. peft is
not imported here. The memory estimates build on ``helpers.memory``'s bytes per parameter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from helpers.memory import bytes_per_param, dtype_bytes
from helpers.validation import check_int

FINETUNE_METHODS = ("full", "lora", "qlora")
# QLoRA (Dettmers et al. 2023): 4-bit NF4 codes, one absmax per block of 64 weights; with double
# quantization the absmax values are stored in 8 bits, with one fp32 constant per block of 256 of them.
NF4_BLOCK = 64
NF4_SECOND_BLOCK = 256
GB = 1e9


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable rank-``r`` update scaled by ``alpha / r``."""

    def __init__(self, base: nn.Linear, *, r: int, alpha: float, dropout: float = 0.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise ValueError(f"base must be an nn.Linear, got {type(base).__name__}")
        check_int("r", r)
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.base = base.requires_grad_(False)
        factory = {"dtype": base.weight.dtype, "device": base.weight.device}
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5), generator=generator)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.r = r
        self.scaling = alpha / r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling

    def delta_weight(self) -> torch.Tensor:
        """The update the adapter adds to the base weight: scaling · B A (out × in)."""
        return self.scaling * self.lora_B @ self.lora_A

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """A plain ``nn.Linear`` with weight W + scaling · B A: the same outputs, no extra latency."""
        merged = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None,
                           dtype=self.base.weight.dtype, device=self.base.weight.device)
        merged.weight.copy_(self.base.weight + self.delta_weight())
        if self.base.bias is not None:
            merged.bias.copy_(self.base.bias)
        return merged


def apply_lora(model: nn.Module, target_modules: Iterable[str], *, r: int, alpha: float, dropout: float = 0.0,
               seed: int = 0) -> nn.Module:
    """Wrap, in place, every ``nn.Linear`` whose name ends in one of ``target_modules`` (``"query"``
    matches ``encoder.layer.0.attention.self.query``) in a ``LoRALinear``, and freeze every parameter
    except the adapters'. The adapters' A matrices are drawn from a generator seeded with ``seed``.
    Returns the model."""
    if isinstance(target_modules, str):
        raise ValueError(f"target_modules must be a collection of names, not the string {target_modules!r}")
    targets = set(target_modules)
    matches = [name for name, module in model.named_modules()
               if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets]
    if not matches:
        raise ValueError(f"no nn.Linear module of the model is named any of {sorted(targets)}")
    model.requires_grad_(False)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    for name in matches:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(getattr(parent, child), r=r, alpha=alpha, dropout=dropout,
                                          generator=generator))
    return model


def lora_parameter_count(shapes: Iterable[tuple[int, int]], r: int) -> int:
    """Trainable parameters LoRA adds to Linear layers of the given (out, in) shapes: Σ r · (in + out)."""
    check_int("r", r)
    total = 0
    for shape in shapes:
        if len(shape) != 2:
            raise ValueError(f"each shape must be (out_features, in_features), got {shape!r}")
        for size in shape:
            check_int("a layer dimension", size)
        total += r * (shape[0] + shape[1])
    return total


def copy_from_peft(ours: nn.Module, peft_model: nn.Module, *, adapter: str = "default") -> None:
    """Copy the ``adapter`` weights of every peft LoRA layer into the ``LoRALinear`` of the same name.

    ``ours`` and ``peft_model`` must wrap copies of the same base model with the same targets, rank and
    alpha; a peft layer without a counterpart, a differing scaling or nothing to copy raises ValueError.
    """
    base = peft_model.get_base_model() if hasattr(peft_model, "get_base_model") else peft_model
    copied = 0
    for name, module in base.named_modules():
        if not isinstance(getattr(module, "lora_A", None), nn.ModuleDict):
            continue
        try:
            target = ours.get_submodule(name)
        except AttributeError:
            target = None
        if not isinstance(target, LoRALinear):
            raise ValueError(f"peft adapts {name!r} but ours has no LoRALinear there")
        if not math.isclose(target.scaling, module.scaling[adapter]):
            raise ValueError(f"{name!r}: our scaling {target.scaling} != peft's {module.scaling[adapter]}")
        with torch.no_grad():
            target.lora_A.copy_(module.lora_A[adapter].weight)
            target.lora_B.copy_(module.lora_B[adapter].weight)
        copied += 1
    if not copied:
        raise ValueError("peft_model holds no LoRA layer to copy from")


def nf4_bytes_per_param(*, double_quant: bool = True) -> float:
    """Bytes per weight stored in NF4: 4-bit codes plus the per-block absmax constants.

    Without double quantization one fp32 absmax per 64 weights (0.5 bit per weight); with it, an 8-bit
    absmax per 64 weights and an fp32 constant per 256 blocks (0.127 bit per weight), as in QLoRA.
    """
    constants = (dtype_bytes("int8") + dtype_bytes("fp32") / NF4_SECOND_BLOCK if double_quant
                 else dtype_bytes("fp32"))
    return dtype_bytes("int4") + constants / NF4_BLOCK


def finetune_memory_gb(
    n_params: float,
    method: str,
    *,
    lora_fraction: float = 0.005,
    optimizer: str = "adamw",
    precision: str = "bf16_mixed",
    double_quant: bool = True,
) -> dict[str, float]:
    """GB (1e9 bytes) of weights, gradients, optimizer state and their total for fine-tuning a model.

    - ``"full"``: every parameter trains with the training state of ``helpers.memory.bytes_per_param``
      (AdamW in bf16 mixed precision: 2 weights + 2 gradients + 4 fp32 master + 8 moments = 16 bytes);
    - ``"lora"``: the base weights are frozen (``precision``'s weight bytes, 2 for bf16), and the
      adapters, ``lora_fraction`` × ``n_params`` parameters, carry that full training state;
    - ``"qlora"``: the frozen weights are stored in NF4 (``nf4_bytes_per_param``), adapters as in LoRA.

    ``optimizer_state`` counts master weights with the moments (ZeRO's K = 12 for Adam). Activations,
    which depend on batch and sequence length and often dominate with LoRA, are not included.
    """
    if isinstance(n_params, bool) or not isinstance(n_params, (int, float)) or not n_params > 0:
        raise ValueError(f"n_params must be a number > 0, got {n_params!r}")
    if method not in FINETUNE_METHODS:
        raise ValueError(f"method must be one of {FINETUNE_METHODS}, got {method!r}")
    if not 0 < lora_fraction <= 1:
        raise ValueError(f"lora_fraction must be in (0, 1], got {lora_fraction!r}")
    state = bytes_per_param(optimizer, precision)
    per_param = {
        "weights": state["weights"] + state["weight_copy"],
        "gradients": state["gradients"] + state["gradient_copy"],
        "optimizer_state": state["master_weights"] + state["optimizer"],
    }
    trained = n_params if method == "full" else lora_fraction * n_params
    parts = {part: trained * value / GB for part, value in per_param.items()}
    if method != "full":
        frozen = state["weights"] if method == "lora" else nf4_bytes_per_param(double_quant=double_quant)
        parts["weights"] += n_params * frozen / GB
    parts["total"] = sum(parts.values())
    return parts
