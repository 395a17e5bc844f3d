import pytest
import torch
from torch import nn

from helpers import memory
from helpers.models import mlp

KIB = 1024


# ---------------------------------------------------------------- dtypes and optimizer state


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [("fp32", 4), ("bf16", 2), ("float16", 2), ("half", 2), ("bfloat16", 2), ("fp64", 8), ("int4", 0.5),
     ("fp8", 1), (torch.float32, 4), (torch.bfloat16, 2), (torch.float64, 8), (torch.int8, 1)],
)
def test_dtype_bytes(dtype, expected):
    assert memory.dtype_bytes(dtype) == expected


def test_dtype_bytes_rejects_unknown_names_and_types():
    with pytest.raises(ValueError, match="dtype"):
        memory.dtype_bytes("fp12")
    with pytest.raises(ValueError, match="dtype"):
        memory.dtype_bytes(torch.complex64)
    with pytest.raises(TypeError, match="dtype"):
        memory.dtype_bytes(4)


@pytest.mark.parametrize(
    ("optimizer", "expected"),
    [("sgd", 0), ("sgd_momentum", 4), ("rmsprop", 4), ("adagrad", 4), ("lion", 4), ("adam", 8), ("AdamW", 8)],
)
def test_optimizer_state_in_fp32(optimizer, expected):
    assert memory.optimizer_state_bytes_per_param(optimizer) == expected


def test_optimizer_state_in_bf16_halves():
    assert memory.optimizer_state_bytes_per_param("adamw", state_dtype="bf16") == 4


def test_eight_bit_adam_is_two_bytes_plus_block_scales():
    # two 8-bit buffers + one fp32 absmax per 256 values each: 2 * (1 + 4/256) = 2.03125
    assert memory.optimizer_state_bytes_per_param("adamw_8bit") == pytest.approx(2.03125)
    assert memory.optimizer_state_bytes_per_param("adam_8bit", block_size=2048) == pytest.approx(2 + 8 / 2048)
    assert memory.optimizer_state_bytes_per_param("sgd_momentum_8bit") == pytest.approx(1 + 4 / 256)


def test_optimizer_state_rejects_bad_inputs():
    with pytest.raises(ValueError, match="optimizer"):
        memory.optimizer_state_bytes_per_param("adafactorx")
    with pytest.raises(TypeError, match="optimizer"):
        memory.optimizer_state_bytes_per_param(None)
    with pytest.raises(ValueError, match="block_size"):
        memory.optimizer_state_bytes_per_param("adam_8bit", block_size=0)
    with pytest.raises(TypeError, match="block_size"):
        memory.optimizer_state_bytes_per_param("adam_8bit", block_size=2.5)


# ---------------------------------------------------------------- the 16 / 18 / 20 accounts


@pytest.mark.parametrize(
    ("precision", "total"),
    [("fp32", 16), ("bf16_mixed", 16), ("amp", 18), ("bf16_fp32_grads", 18), ("fp16_mixed", 20), ("bf16_pure", 12)],
)
def test_adam_bytes_per_param_accounts(precision, total):
    assert memory.bytes_per_param("adamw", precision)["total"] == total


def test_bytes_per_param_breakdown_of_the_zero_account():
    parts = memory.bytes_per_param("adam", "bf16_mixed")
    assert parts == {"weights": 2, "weight_copy": 0, "gradients": 2, "gradient_copy": 0, "master_weights": 4,
                     "optimizer": 8, "total": 16}


def test_sgd_in_fp32_needs_eight_bytes_and_a_custom_recipe_is_accepted():
    assert memory.bytes_per_param("sgd", "fp32")["total"] == 8
    recipe = memory.Precision("fp8_weights", weights=1, gradients=2, master_weights=4)
    assert memory.bytes_per_param("adamw", recipe)["total"] == 15


def test_bytes_per_param_rejects_bad_precision():
    with pytest.raises(ValueError, match="precision"):
        memory.bytes_per_param("adam", "fp4_magic")
    with pytest.raises(TypeError, match="precision"):
        memory.bytes_per_param("adam", 16)


def test_training_state_of_a_7b_model_does_not_fit_80_gb():
    state = memory.training_state_bytes(7e9, "adamw", "bf16_mixed")
    assert state["total"] == pytest.approx(112e9)
    assert state["master_weights"] == pytest.approx(28e9)


@pytest.mark.parametrize("bad", [0, -1, float("nan")])
def test_training_state_rejects_bad_counts(bad):
    with pytest.raises((ValueError, TypeError), match="n_params"):
        memory.training_state_bytes(bad)


def test_training_state_rejects_non_numbers():
    with pytest.raises(TypeError, match="n_params"):
        memory.training_state_bytes("7e9")
    with pytest.raises(TypeError, match="n_params"):
        memory.training_state_bytes(True)


# ---------------------------------------------------------------- activations


def test_mlp_activations_by_hand():
    # batch 8, hidden 16 and 32, fp32: 8 * (16 + 32) * 4
    assert memory.mlp_activation_bytes(8, [10, 16, 32, 3]) == 1536
    assert memory.mlp_activation_bytes(8, [10, 16, 32, 3], activation="gelu") == 3072
    assert memory.mlp_activation_bytes(8, [10, 16, 32, 3], dtype="bf16") == 768
    assert memory.mlp_activation_bytes(8, [10, 3]) == 0


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu", "silu"])
def test_mlp_activations_match_what_autograd_saves(activation):
    torch.manual_seed(0)
    module = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "silu": nn.SiLU}[activation]
    model = mlp(12, [20, 24], 5, activation=module)
    x = torch.randn(7, 12)
    _, saved = memory.saved_tensor_bytes(lambda: model(x), exclude=[*model.parameters(), x])
    assert saved == memory.mlp_activation_bytes(7, [12, 20, 24, 5], activation=activation)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "name"),
    [
        ((0, [4, 4]), {}, ValueError, "batch"),
        ((2.0, [4, 4]), {}, TypeError, "batch"),
        ((2, [4]), {}, ValueError, "widths"),
        ((2, "44"), {}, TypeError, "widths"),
        ((2, 44), {}, TypeError, "widths"),
        ((2, [4, 0]), {}, ValueError, "widths"),
        ((2, [4, 4]), {"activation": "swish"}, ValueError, "activation"),
    ],
)
def test_mlp_activations_reject_bad_inputs(args, kwargs, error, name):
    with pytest.raises(error, match=name):
        memory.mlp_activation_bytes(*args, **kwargs)


def test_transformer_layer_reproduces_korthikanti_formula():
    s, b, h, a = 2048, 4, 4096, 32
    ours = memory.transformer_layer_activation_bytes(b, s, h, a, dtype="fp16", dropout=True, layernorm_stats=False)
    assert ours == s * b * h * (34 + 5 * a * s / h)


def test_transformer_layer_variants_by_hand():
    s, b, h, a = 8, 2, 16, 4
    sbh = s * b * h
    eager = memory.transformer_layer_activation_bytes(b, s, h, a, dtype="fp32", layernorm_stats=False)
    assert eager == 16 * sbh * 4 + a * s * s * b * 4
    flash = memory.transformer_layer_activation_bytes(b, s, h, a, dtype="fp32", attention="flash",
                                                      layernorm_stats=False)
    assert flash == 16 * sbh * 4 + a * s * b * 4
    flash_dropout = memory.transformer_layer_activation_bytes(b, s, h, a, dtype="fp32", attention="flash",
                                                              dropout=True, layernorm_stats=False)
    assert flash_dropout == flash + 2 * sbh
    with_stats = memory.transformer_layer_activation_bytes(b, s, h, a, dtype="fp32")
    assert with_stats == eager + 16 * s * b
    wide = memory.transformer_layer_activation_bytes(b, s, h, a, dtype="fp32", ffn_mult=8, layernorm_stats=False)
    assert wide - eager == 8 * sbh * 4


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"hidden": 10, "n_heads": 4}, ValueError, "divisible"),
        ({"attention": "linear"}, ValueError, "attention"),
        ({"seq_len": 0}, ValueError, "seq_len"),
        ({"n_heads": 1.5}, TypeError, "n_heads"),
        ({"ffn_mult": 0}, ValueError, "ffn_mult"),
    ],
)
def test_transformer_layer_rejects_bad_inputs(kwargs, error, name):
    args = {"batch": 1, "seq_len": 8, "hidden": 16, "n_heads": 4, **kwargs}
    with pytest.raises(error, match=name):
        memory.transformer_layer_activation_bytes(args.pop("batch"), args.pop("seq_len"), args.pop("hidden"),
                                                  args.pop("n_heads"), **args)


def test_transformer_stack_with_and_without_checkpointing():
    b, s, h, a, n_layers = 1, 4096, 4096, 32, 32
    layer = memory.transformer_layer_activation_bytes(b, s, h, a)
    assert memory.transformer_activation_bytes(b, s, h, a, n_layers) == n_layers * layer
    checkpointed = memory.transformer_activation_bytes(b, s, h, a, n_layers, checkpoint=True)
    assert checkpointed == n_layers * s * b * h * 2 + layer
    assert checkpointed < n_layers * layer / 10
    with pytest.raises(ValueError, match="n_layers"):
        memory.transformer_activation_bytes(b, s, h, a, 0)


def test_logits_of_a_llama_batch():
    assert memory.logits_bytes(4096, 32000) == 4096 * 32000 * 4
    assert memory.logits_bytes(4096, 32000, dtype="bf16") == 4096 * 32000 * 2
    with pytest.raises(ValueError, match="vocab_size"):
        memory.logits_bytes(10, 0)


# ---------------------------------------------------------------- KV cache


LLAMA2_7B = {"n_layers": 32, "head_dim": 128}


def test_kv_cache_of_llama2_7b_is_512_kib_per_token_in_fp16():
    per_token = memory.kv_cache_bytes(batch=1, seq_len=1, n_kv_heads=32, **LLAMA2_7B)
    assert per_token == 2 * 32 * 4096 * 2 == 512 * KIB
    assert memory.kv_cache_bytes(batch=1, seq_len=4096, n_kv_heads=32, **LLAMA2_7B) == 2 * 2**30


def test_gqa_with_8_of_32_kv_heads_is_4x_smaller_and_mqa_32x():
    mha = memory.kv_cache_bytes(batch=4, seq_len=2048, n_kv_heads=32, **LLAMA2_7B)
    gqa = memory.kv_cache_bytes(batch=4, seq_len=2048, n_kv_heads=8, **LLAMA2_7B)
    mqa = memory.kv_cache_bytes(batch=4, seq_len=2048, n_kv_heads=1, **LLAMA2_7B)
    assert mha == 4 * gqa == 32 * mqa


def test_kv_cache_in_int8_halves_and_rejects_bad_inputs():
    fp16 = memory.kv_cache_bytes(batch=1, seq_len=10, n_kv_heads=8, **LLAMA2_7B)
    assert memory.kv_cache_bytes(batch=1, seq_len=10, n_kv_heads=8, dtype="int8", **LLAMA2_7B) == fp16 / 2
    with pytest.raises(ValueError, match="n_kv_heads"):
        memory.kv_cache_bytes(batch=1, seq_len=10, n_kv_heads=0, **LLAMA2_7B)
    with pytest.raises(TypeError, match="seq_len"):
        memory.kv_cache_bytes(batch=1, seq_len=None, n_kv_heads=8, **LLAMA2_7B)


# ---------------------------------------------------------------- totals and peaks


def test_estimate_training_memory_adds_activations_and_logits():
    parts = memory.estimate_training_memory(1e6, optimizer="adam", precision="fp32", activations=5e6, logits=1e6)
    assert parts["weights"] == 4e6 and parts["optimizer"] == 8e6
    assert parts["total"] == 16e6 + 6e6
    with pytest.raises(ValueError, match="activations"):
        memory.estimate_training_memory(1e6, activations=-1)
    with pytest.raises(TypeError, match="logits"):
        memory.estimate_training_memory(1e6, logits="big")


def test_optimizer_step_temporaries():
    kwargs = {"param_bytes": 100.0, "largest_param_bytes": 40.0}
    assert memory.optimizer_step_temporary_bytes("adam", **kwargs) == 80
    assert memory.optimizer_step_temporary_bytes("adamw", implementation="foreach", **kwargs) == 100
    assert memory.optimizer_step_temporary_bytes("adam", implementation="fused", **kwargs) == 0
    assert memory.optimizer_step_temporary_bytes("sgd_momentum", **kwargs) == 0


@pytest.mark.parametrize(
    ("optimizer", "kwargs", "error", "name"),
    [
        ("adam", {"implementation": "vectorised"}, ValueError, "implementation"),
        ("adamx", {}, ValueError, "optimizer"),
        (3, {}, TypeError, "optimizer"),
        ("adam", {"param_bytes": -1.0}, ValueError, "param_bytes"),
        ("adam", {"largest_param_bytes": 500.0}, ValueError, "largest_param_bytes"),
    ],
)
def test_optimizer_step_temporaries_reject_bad_inputs(optimizer, kwargs, error, name):
    args = {"param_bytes": 100.0, "largest_param_bytes": 40.0, **kwargs}
    with pytest.raises(error, match=name):
        memory.optimizer_step_temporary_bytes(optimizer, **args)


def test_mlp_training_peak_by_hand():
    # widths [4, 3, 2], batch 5, fp32, SGD: hidden activation 60 B, weight grads 60 B and 32 B, logits 40 B.
    # forward: 60 + 2*40 = 140; backward peaks at the ReLU: 60 + 32 + 2*60 = 212; step: 92.
    peak = memory.mlp_training_peak(5, [4, 3, 2], optimizer="sgd")
    assert peak == {"resident": 92, "forward": 140, "backward": 212, "step": 92, "transient": 212, "peak": 304}
    adam = memory.mlp_training_peak(5, [4, 3, 2], optimizer="adam")
    assert adam["resident"] == 92 * 3 and adam["step"] == 92 + 2 * 60
    eight_bit = memory.mlp_training_peak(5, [4, 3, 2], optimizer="adam_8bit")
    assert eight_bit["step"] == adam["step"]
    with pytest.raises(TypeError, match="optimizer"):
        memory.mlp_training_peak(5, [4, 3, 2], optimizer=None)


def _measured_step_peak(batch, widths, make_optimizer):
    torch.manual_seed(0)
    model = mlp(widths[0], widths[1:-1], widths[-1])
    optimizer = make_optimizer(model.parameters())
    x, y = torch.randn(batch, widths[0]), torch.randint(0, widths[-1], (batch,))

    def step():
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    resident = memory.tensor_bytes([*model.parameters(), *(t for s in optimizer.state.values()
                                                            for t in s.values() if torch.is_tensor(t))])
    return resident + memory.cpu_peak_bytes(step).peak


@pytest.mark.parametrize(("batch", "widths"), [(256, [32, 64, 64, 10]), (4, [64, 128, 10])])
@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_mlp_training_peak_matches_the_profiler(batch, widths, name):
    make = {"adam": lambda p: torch.optim.Adam(p, foreach=False), "sgd": lambda p: torch.optim.SGD(p, lr=0.1)}[name]
    measured = _measured_step_peak(batch, widths, make)
    assert memory.mlp_training_peak(batch, widths, optimizer=name)["peak"] == pytest.approx(measured, rel=0.01)


# ---------------------------------------------------------------- measuring


def test_tensor_bytes_counts_shared_storage_once():
    base = torch.zeros(100)
    assert memory.tensor_bytes([base, base[:10], base.view(10, 10)]) == 400
    assert memory.tensor_bytes([base, torch.zeros(5, dtype=torch.float16)]) == 410
    with pytest.raises(TypeError, match="tensors"):
        memory.tensor_bytes([1.0])


def test_saved_tensor_bytes_sees_what_backward_needs():
    w = torch.randn(8, 8, requires_grad=True)
    x = torch.randn(4, 8)
    result, saved = memory.saved_tensor_bytes(lambda: torch.relu(x @ w), exclude=[w, x])
    assert saved == 4 * 8 * 4  # relu saves its output; matmul saves x (for w's gradient), excluded
    assert result.shape == (4, 8)
    _, with_inputs = memory.saved_tensor_bytes(lambda: torch.relu(x @ w))
    assert with_inputs == saved + x.nbytes  # w is not saved: x needs no gradient, so w is not needed


def test_cpu_peak_bytes_sees_a_temporary_and_what_is_kept():
    def work():
        temporary = torch.ones(1000)  # 4000 bytes, freed on return
        kept = torch.ones(250)  # 1000 bytes, returned
        return kept + temporary[:250]

    measured = memory.cpu_peak_bytes(work)
    assert measured.peak >= 4000 + 1000
    assert measured.retained == 1000
    assert measured.before is None
    assert measured.result.shape == (250,)


def test_cpu_peak_bytes_keeps_the_profiler_banners_out_of_stderr(capfd):
    memory.cpu_peak_bytes(lambda: torch.ones(10))
    assert "profiler_start" not in capfd.readouterr().err


def test_cpu_memory_timeline_follows_the_phases():
    box = {}

    def grow():
        box["a"] = torch.ones(1000)  # 4000 bytes, kept into the next phase

    def spike():
        temporary = torch.ones(5000)  # 20 000 bytes for a moment
        box["b"] = temporary[:10].clone()  # 40 bytes kept

    def release():
        box.clear()

    timeline = memory.cpu_memory_timeline([("grow", grow), ("spike", spike), ("release", release)])
    assert [name for name, _, _ in timeline.phases] == ["grow", "spike", "release"]
    starts_and_ends = [t for _, start, end in timeline.phases for t in (start, end)]
    assert starts_and_ends == sorted(starts_and_ends) and starts_and_ends[0] == 0.0
    assert timeline.peak >= 4000 + 20_000 and timeline.peak_phase == "spike"
    assert timeline.level_at_end("grow") == 4000
    assert timeline.level_at_end("spike") == 4040
    assert timeline.level_at_end("release") == 0
    assert timeline.peak == memory.cpu_peak_bytes(lambda: [grow(), spike(), release()]).peak
    step_ms = timeline.phases[-1][2]
    assert 0 <= timeline.time_above(1.0) <= timeline.time_above(0.1) <= step_ms


def test_cpu_memory_timeline_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        memory.cpu_memory_timeline([])
    with pytest.raises(ValueError, match="unique"):
        memory.cpu_memory_timeline([("a", lambda: None), ("a", lambda: None)])
    with pytest.raises(TypeError, match="phase 'a'"):
        memory.cpu_memory_timeline([("a", 42)])
    timeline = memory.cpu_memory_timeline([("nothing", lambda: None)])
    assert timeline.peak == 0 and timeline.peak_phase == "nothing"
    with pytest.raises(ValueError, match="fraction"):
        timeline.time_above(0)


def test_quiet_native_stderr_without_descriptor_2(monkeypatch):
    def no_descriptor(fd):
        raise OSError("bad file descriptor")

    monkeypatch.setattr(memory.os, "dup", no_descriptor)
    with memory._quiet_native_stderr():
        pass  # nothing to redirect, nothing raised


@pytest.mark.parametrize("fn", [memory.saved_tensor_bytes, memory.cpu_peak_bytes, memory.cuda_peak_bytes])
def test_measuring_functions_need_a_callable(fn):
    with pytest.raises(TypeError, match="fn"):
        fn(42)


def test_cuda_peak_bytes_without_a_gpu_says_so(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA"):
        memory.cuda_peak_bytes(lambda: None)


def test_cuda_peak_bytes_reads_the_allocator_statistics(monkeypatch):
    state = {"allocated": 1000, "peak": 1000, "calls": []}

    def work():
        state["peak"], state["allocated"] = 5000, 1500
        return "done"

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: state["calls"].append("sync"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: state["calls"].append("reset"))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: state["allocated"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: state["peak"])
    measured = memory.cuda_peak_bytes(work)
    assert measured == memory.PeakMemory("done", 4000, 500, 1000)
    assert state["calls"] == ["sync", "reset", "sync"]
