import copy

import pytest
import torch
from torch import nn

from helpers import lora

torch.set_num_threads(1)

R, ALPHA = 4, 8.0
HIDDEN, LAYERS = 32, 2


@pytest.fixture(scope="module")
def bert():
    """A tiny BERT with random weights (nn.Linear projections, unlike GPT-2's Conv1D) and a batch."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32)
    model = BertModel(config).eval()
    input_ids = torch.randint(0, 100, (3, 10), generator=torch.Generator().manual_seed(1))
    return model, input_ids


def hidden_states(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=input_ids).last_hidden_state


def trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def test_wrapped_bert_starts_at_the_base_model_and_trains_only_the_adapters(bert):
    base, input_ids = bert
    ours = lora.apply_lora(copy.deepcopy(base), ["query", "value"], r=R, alpha=ALPHA)
    assert torch.equal(hidden_states(ours, input_ids), hidden_states(base, input_ids))  # B = 0 at init
    names = set(trainable(ours))
    assert names and all(name.endswith(("lora_A", "lora_B")) for name in names)
    assert len(names) == 2 * 2 * LAYERS
    assert sum(p.numel() for p in trainable(ours).values()) == lora.lora_parameter_count(
        [(HIDDEN, HIDDEN)] * 2 * LAYERS, R)


def test_lora_matches_peft_in_parameter_count_and_outputs(bert):
    from peft import LoraConfig, get_peft_model

    base, input_ids = bert
    config = LoraConfig(r=R, lora_alpha=ALPHA, target_modules=["query", "value"], lora_dropout=0.0)
    theirs = get_peft_model(copy.deepcopy(base), config).eval()
    ours = lora.apply_lora(copy.deepcopy(base), ["query", "value"], r=R, alpha=ALPHA).eval()
    n_theirs, _ = theirs.get_nb_trainable_parameters()
    assert sum(p.numel() for p in trainable(ours).values()) == n_theirs == 2 * LAYERS * R * (HIDDEN + HIDDEN)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():  # B != 0 so that the adapters change the output
        for module in theirs.modules():
            if isinstance(getattr(module, "lora_B", None), nn.ModuleDict):
                module.lora_B["default"].weight.normal_(generator=generator)
    lora.copy_from_peft(ours, theirs)
    expected = hidden_states(theirs, input_ids)
    assert (expected - hidden_states(base, input_ids)).abs().max() > 0.1
    assert torch.allclose(hidden_states(ours, input_ids), expected, atol=1e-6)


def test_copy_from_peft_rejects_mismatched_models(bert):
    from peft import LoraConfig, get_peft_model

    base, _ = bert
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=R, lora_alpha=ALPHA, target_modules=["query"]))
    with pytest.raises(ValueError, match="scaling"):
        lora.copy_from_peft(lora.apply_lora(copy.deepcopy(base), ["query"], r=R, alpha=2 * ALPHA), theirs)
    with pytest.raises(ValueError, match="no LoRALinear"):
        lora.copy_from_peft(lora.apply_lora(copy.deepcopy(base), ["value"], r=R, alpha=ALPHA), theirs)


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def test_merge_gives_the_same_outputs_and_a_plain_linear():
    layer = lora.LoRALinear(nn.Linear(6, 5), r=2, alpha=4.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    merged = layer.merge()
    assert type(merged) is nn.Linear and layer.scaling == 2.0
    x = torch.randn(7, 6)
    with torch.no_grad():
        assert not torch.allclose(layer(x), layer.base(x), atol=1e-3)
        assert torch.allclose(merged(x), layer(x), atol=1e-6)


def test_lora_a_is_initialised_like_peft_and_deterministically():
    a = lora.apply_lora(small_model(), ["0"], r=4, alpha=4.0, seed=3)[0]
    b = lora.apply_lora(small_model(), ["0"], r=4, alpha=4.0, seed=3)[0]
    assert torch.equal(a.lora_A, b.lora_A) and not a.lora_B.any()
    bound = 1 / 6**0.5  # kaiming-uniform with a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in))
    assert a.lora_A.abs().max() <= bound and a.lora_A.abs().max() > 0.8 * bound


def test_optimizer_steps_change_only_the_adapters():
    model = lora.apply_lora(small_model(), ["0", "2"], r=2, alpha=2.0)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x, y = torch.randn(16, 6), torch.randn(16, 3)
    for _ in range(3):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    for name, p in model.named_parameters():
        changed = not torch.equal(p, before[name])
        assert changed == ("lora_" in name), name


def test_dropout_acts_in_training_only():
    layer = lora.LoRALinear(nn.Linear(6, 5), r=2, alpha=2.0, dropout=0.5)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(64, 6)
    layer.eval()
    with torch.no_grad():
        expected = layer.base(x) + x @ layer.delta_weight().T
        assert torch.allclose(layer(x), expected, atol=1e-6)
        layer.train()
        assert not torch.allclose(layer(x), expected, atol=1e-3)


@pytest.mark.parametrize(("targets", "message"), [(["missing"], "no nn.Linear"), ("0", "collection")])
def test_apply_lora_rejects_targets_that_match_nothing(targets, message):
    with pytest.raises(ValueError, match=message):
        lora.apply_lora(small_model(), targets, r=2, alpha=2.0)


@pytest.mark.parametrize("kwargs", [{"r": 0, "alpha": 1.0}, {"r": 2, "alpha": 0.0},
                                    {"r": 2, "alpha": 1.0, "dropout": 1.0}])
def test_lora_linear_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        lora.LoRALinear(nn.Linear(3, 3), **kwargs)


def test_lora_parameter_count():
    assert lora.lora_parameter_count([(4096, 4096)] * 2, 8) == 2 * 8 * 8192
    with pytest.raises(ValueError):
        lora.lora_parameter_count([(4, 0)], 2)


def test_finetune_memory_of_a_7b_model_from_first_principles():
    n, gb = 7e9, 1e9
    full = lora.finetune_memory_gb(n, "full")
    assert full == pytest.approx({"weights": 14, "gradients": 14, "optimizer_state": 84, "total": 112})
    adapters = 0.005 * n * (2 + 2 + 4 + 8) / gb  # bf16 weights and grads, fp32 master, Adam m and v
    lora_total = lora.finetune_memory_gb(n, "lora")["total"]
    assert full["total"] - lora_total == pytest.approx(n * (16 - 2) / gb - adapters)
    nf4 = 0.5 + (1 + 4 / 256) / 64  # 4-bit codes, 8-bit absmax per 64 weights, fp32 per 256 absmax
    qlora = lora.finetune_memory_gb(n, "qlora")
    assert qlora["weights"] == pytest.approx(n * nf4 / gb + 0.005 * n * 2 / gb)
    assert lora_total - qlora["total"] == pytest.approx(n * (2 - nf4) / gb)
    single = lora.finetune_memory_gb(n, "qlora", double_quant=False)["total"]
    assert single - qlora["total"] == pytest.approx(n * (4 / 64 - (1 + 4 / 256) / 64) / gb)


@pytest.mark.parametrize(("args", "kwargs"), [((7e9, "prefix"), {}), ((0, "full"), {}),
                                              ((7e9, "lora"), {"lora_fraction": 0.0})])
def test_finetune_memory_rejects_bad_input(args, kwargs):
    with pytest.raises(ValueError):
        lora.finetune_memory_gb(*args, **kwargs)
