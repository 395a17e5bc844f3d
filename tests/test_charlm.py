import math

import pytest
import torch
import torch.nn.functional as F

from helpers import charlm as lm
from helpers.memory import kv_cache_bytes
from helpers.quant import compute_qparams, fake_quantize

VOCAB = 11


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(n_layer=2, n_embd=16, n_head=2, block_size=48, seed=0):
    torch.manual_seed(seed)
    model = lm.CharLM(lm.CharLMConfig(VOCAB, block_size=block_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd))
    for p in model.parameters():  # larger weights than the init: sharper, more varied predictions
        p.data.normal_(0, 0.3, generator=torch.Generator().manual_seed(seed + p.numel()))
    return model.eval()


def tokens(batch, length, seed=0):
    return torch.randint(VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- tokenizer and text


def test_tokenizer_round_trip_and_unknown_characters():
    tok = lm.CharTokenizer("hello world")
    assert tok.vocab_size == 8 and tok.chars == sorted(set("hello world"))
    ids = tok.encode("low hello")
    assert tok.decode(ids) == "low hello" and tok.decode(torch.tensor(ids)) == "low hello"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.encode("hex")
    with pytest.raises(ValueError, match="ids"):
        tok.decode([8])
    with pytest.raises(ValueError, match="non-empty"):
        lm.CharTokenizer("")


def test_bundled_text_loads_and_is_ascii():
    text = lm.load_text()
    assert text.count("\n") == 1533 and text.startswith("In the beginning God created")
    assert lm.CharTokenizer(text).vocab_size == 60 and text.isascii()


# --------------------------------------------------------------------------- model and cache


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        lm.CharLMConfig(VOCAB, n_embd=10, n_head=3)
    with pytest.raises(ValueError, match="n_layer"):
        lm.CharLMConfig(VOCAB, n_layer=0)
    with pytest.raises(TypeError, match="CharLMConfig"):
        lm.CharLM({"vocab_size": VOCAB})
    assert lm.CharLMConfig(VOCAB, n_embd=64, n_head=4).head_dim == 16


def test_forward_is_causal():
    model, x = tiny(), tokens(2, 20)
    changed = x.clone()
    changed[:, 12:] = (changed[:, 12:] + 1) % VOCAB
    a, b = model(x), model(changed)
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-6)
    assert not torch.allclose(a[:, 12:], b[:, 12:], atol=1e-3)


def test_attention_matches_a_hand_written_causal_attention():
    attn = tiny(n_layer=1).blocks[0].attn
    h = torch.randn(2, 9, 16, generator=torch.Generator().manual_seed(0))
    q, k, v = (t.view(2, 9, 2, 8).transpose(1, 2) for t in attn.qkv(h).split(16, dim=2))
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(8)
    scores = scores.masked_fill(torch.ones(9, 9, dtype=torch.bool).triu(1), -math.inf)
    manual = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 9, 16))
    assert torch.allclose(attn(h), manual, atol=1e-5)


def test_causal_mask_offsets_the_diagonal_by_the_cached_positions():
    assert lm.causal_mask(2, 3).int().tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    assert torch.equal(lm.causal_mask(0, 4), torch.ones(4, 4, dtype=torch.bool).tril())


@pytest.mark.parametrize("chunks", [[1] * 20, [7, 1, 1, 5, 6], [20], [3, 17]])
def test_incremental_decoding_with_the_cache_equals_the_full_forward(chunks):
    model, x = tiny(), tokens(3, 20, seed=1)
    full = model(x)
    cache = model.new_cache(3)
    pieces, start = [], 0
    for size in chunks:
        pieces.append(model(x[:, start:start + size], cache))
        start += size
    assert cache.length == 20
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5)


def test_cache_size_matches_the_memory_formula_and_truncates():
    model = tiny(n_layer=3, n_embd=24, n_head=3)
    cache = model.new_cache(5, max_len=40)
    assert cache.nbytes() == kv_cache_bytes(batch=5, seq_len=40, n_layers=3, n_kv_heads=3, head_dim=8, dtype="fp32")
    model(tokens(5, 10), cache)
    cache.truncate(4)
    assert cache.length == 4
    with pytest.raises(ValueError, match="length"):
        cache.truncate(5)


def test_cache_and_position_limits():
    model = tiny(block_size=16)
    with pytest.raises(ValueError, match="block_size"):
        model(tokens(1, 17))
    cache = model.new_cache(1, max_len=8)
    model(tokens(1, 6), cache)
    with pytest.raises(ValueError, match="room"):
        model(tokens(1, 3), cache)
    with pytest.raises(ValueError, match="sequences"):
        model(tokens(2, 1), model.new_cache(1))
    with pytest.raises(ValueError, match="max_len"):
        model.new_cache(1, max_len=17)
    with pytest.raises(ValueError, match="2-D"):
        model(torch.zeros(4, dtype=torch.long))


def test_generate_with_and_without_cache_gives_the_same_tokens_and_logits():
    model, prompt = tiny(), tokens(2, 5, seed=2)
    with_cache, logits_cache = lm.generate(model, prompt, 30, return_logits=True)
    without, logits_full = lm.generate(model, prompt, 30, use_cache=False, return_logits=True)
    assert torch.equal(with_cache, without) and with_cache.shape == (2, 35)
    assert torch.equal(with_cache[:, :5], prompt)
    assert torch.allclose(logits_cache, logits_full, atol=1e-5)
    assert torch.equal(logits_cache.argmax(-1), with_cache[:, 5:])
    with pytest.raises(ValueError, match="block_size"):
        lm.generate(model, prompt, 45)


def test_sampled_generation_is_reproducible_with_a_generator():
    model, prompt = tiny(), tokens(1, 4)
    runs = [lm.generate(model, prompt, 20, temperature=1.0, generator=torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


# --------------------------------------------------------------------------- training


def test_training_lowers_the_loss_on_a_repeating_pattern():
    data = torch.tensor([0, 1, 2, 3, 4, 5] * 200)
    torch.manual_seed(0)
    model = lm.CharLM(lm.CharLMConfig(VOCAB, block_size=16, n_layer=1, n_head=2, n_embd=16))
    losses = lm.train(model, data, steps=40, batch_size=8, lr=2e-2, seed=0)
    assert len(losses) == 40 and losses[-1] < 0.2 * losses[0]
    assert lm.evaluate_loss(model, data, seq_len=16) < 0.5
    prompt = torch.tensor([[2, 3]])
    assert lm.generate(model, prompt, 6)[0].tolist() == [2, 3, 4, 5, 0, 1, 2, 3]


def test_batches_and_windows():
    data = torch.arange(100)
    x, y = lm.get_batch(data, 4, 10, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 10) and torch.equal(y, x + 1)
    wx, wy = lm.windows(data, 10, max_windows=3)
    assert wx.shape == (3, 10) and torch.equal(wx[1], torch.arange(10, 20)) and torch.equal(wy, wx + 1)
    with pytest.raises(ValueError, match="longer"):
        lm.get_batch(data[:5], 2, 10)
    with pytest.raises(ValueError, match="too short"):
        lm.windows(data[:5], 10)


def test_agreement_of_a_model_with_itself_is_one():
    model, data = tiny(), tokens(1, 200)[0]
    assert lm.next_token_agreement(model, model, data, seq_len=20) == 1.0
    assert lm.acceptance_probability(model, model, data, seq_len=20, temperature=1.0) == pytest.approx(1.0)
    assert lm.acceptance_probability(model, tiny(seed=5), data, seq_len=20, temperature=1.0) < 0.95


# --------------------------------------------------------------------------- sampling


def test_sampling_probabilities_sum_to_one_and_filter():
    logits = torch.randn(6, 30, generator=torch.Generator().manual_seed(0)) * 2
    for kwargs in ({}, {"temperature": 0.5}, {"top_k": 5}, {"top_p": 0.8}, {"top_k": 7, "top_p": 0.5}):
        probs = lm.sampling_probs(logits, **kwargs)
        assert torch.allclose(probs.sum(-1), torch.ones(6)) and (probs >= 0).all()
    assert ((lm.sampling_probs(logits, top_k=5) > 0).sum(-1) == 5).all()
    nucleus = lm.sampling_probs(logits, top_p=0.8)
    full = logits.softmax(-1)
    for row in range(6):  # the kept set is the smallest prefix of the sorted tokens reaching 0.8
        kept = nucleus[row] > 0
        mass = full[row][kept].sum()
        assert mass >= 0.8 and mass - full[row][kept].min() < 0.8


def test_temperature_to_zero_gives_greedy():
    logits = torch.randn(4, 30, generator=torch.Generator().manual_seed(1))
    greedy = F.one_hot(logits.argmax(-1), 30).float()
    assert torch.equal(lm.sampling_probs(logits, temperature=0), greedy)
    assert torch.allclose(lm.sampling_probs(logits, temperature=1e-3), greedy, atol=1e-6)
    assert torch.equal(lm.sample_next(logits), logits.argmax(-1))


def test_sampling_filters_match_transformers_logits_processors():
    processors = pytest.importorskip("transformers.generation.logits_process")
    logits = torch.randn(8, 50, generator=torch.Generator().manual_seed(2)) * 3
    ids = torch.zeros(8, 1, dtype=torch.long)
    for temperature, top_k, top_p in [(0.7, 10, None), (1.3, None, 0.9), (1.0, 20, 0.6)]:
        scores = processors.TemperatureLogitsWarper(temperature)(ids, logits.clone())
        if top_k:
            scores = processors.TopKLogitsWarper(top_k)(ids, scores)
        if top_p:
            scores = processors.TopPLogitsWarper(top_p)(ids, scores)
        expected = scores.softmax(-1)
        assert torch.allclose(lm.sampling_probs(logits, temperature=temperature, top_k=top_k, top_p=top_p),
                              expected, atol=1e-6)


def test_empirical_draws_follow_the_probabilities():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    draws = torch.stack([lm.sample_next(logits, temperature=1.0, generator=torch.Generator().manual_seed(s))
                         for s in range(4000)]).flatten()
    freq = torch.bincount(draws, minlength=4).float() / 4000
    assert torch.allclose(freq, logits.softmax(-1)[0], atol=0.03)


@pytest.mark.parametrize("kwargs", [{"temperature": -1}, {"top_k": 0}, {"top_p": 0}, {"top_p": 1.5}])
def test_sampling_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        lm.sampling_probs(torch.zeros(1, 5), **kwargs)


# --------------------------------------------------------------------------- speculative decoding


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_greedy_speculative_decoding_reproduces_the_target_exactly(k):
    target, draft = tiny(n_layer=2, seed=0), tiny(n_layer=1, n_embd=8, seed=3)
    prompt = tokens(1, 4, seed=k)
    result = lm.speculative_generate(target, draft, prompt, 30, k=k)
    assert torch.equal(result.tokens, lm.generate(target, prompt, 30))
    assert 0 <= result.accepted <= result.proposed and result.proposed == k * (result.target_calls - 1)
    assert result.draft_calls >= result.target_calls - 1


def test_a_perfect_draft_is_always_accepted():
    target = tiny()
    result = lm.speculative_generate(target, target, tokens(1, 3), 24, k=4)
    assert result.acceptance_rate == 1.0
    assert result.target_calls - 1 == 5  # 24 new tokens, 5 per target pass (4 accepted + 1 bonus)


@torch.no_grad()
def test_speculative_sampling_preserves_the_target_distribution():
    target, draft = tiny(n_layer=1, seed=0), tiny(n_layer=1, seed=7)
    prompt, n = tokens(1, 3, seed=4), 1500
    p1 = target(prompt)[0, -1].softmax(-1)  # exact distributions of the first two new tokens under the target
    after = torch.cat([prompt.repeat(VOCAB, 1), torch.arange(VOCAB)[:, None]], dim=1)
    p2 = p1 @ target(after)[:, -1].softmax(-1)
    q1 = draft(prompt)[0, -1].softmax(-1)
    assert 0.5 * (p1 - q1).abs().sum() > 0.2  # the draft is far from the target: the test has power
    drawn = torch.stack([lm.speculative_generate(target, draft, prompt, 2, k=1, temperature=1.0,
                                                 generator=torch.Generator().manual_seed(s)).tokens[0, 3:]
                         for s in range(n)])
    for position, exact in enumerate((p1, p2)):
        freq = torch.bincount(drawn[:, position], minlength=VOCAB).float() / n
        assert 0.5 * (freq - exact).abs().sum() < 0.06  # total variation: sampling noise is about 0.03


def test_speculative_decoding_rejects_bad_input():
    target = tiny()
    with pytest.raises(ValueError, match="one sequence"):
        lm.speculative_generate(target, target, tokens(2, 3), 5, k=2)
    with pytest.raises(ValueError, match="vocabulary"):
        other = lm.CharLM(lm.CharLMConfig(VOCAB + 1, block_size=48, n_embd=16, n_head=2))
        lm.speculative_generate(target, other, tokens(1, 3), 5, k=2)
    with pytest.raises(ValueError, match="block_size"):
        lm.speculative_generate(target, target, tokens(1, 3), 44, k=2)


def test_expected_speedup_formula():
    assert lm.expected_tokens_per_step(0.0, 4) == 1.0 and lm.expected_tokens_per_step(1.0, 4) == 5.0
    assert lm.expected_tokens_per_step(0.5, 2) == pytest.approx(1.75)  # 1 + 0.5 + 0.25
    assert lm.expected_acceptance_rate(0.8, 1) == pytest.approx(0.8)
    assert lm.expected_speedup(0.8, 4, 0.0) == pytest.approx((1 - 0.8**5) / 0.2)
    assert lm.expected_speedup(0.8, 3, 0.1) == pytest.approx((1 - 0.8**4) / (0.2 * 1.3))
    assert lm.expected_speedup(0.0, 3, 0.1) < 1
    with pytest.raises(ValueError, match="alpha"):
        lm.expected_speedup(1.2, 3, 0.1)
    with pytest.raises(ValueError, match="cost_ratio"):
        lm.expected_speedup(0.5, 3, -1)


# --------------------------------------------------------------------------- int8 weights


def test_int8_weights_match_per_channel_fake_quantization_and_save_memory():
    model = tiny()
    quantized = lm.quantize_int8(model)
    linear, q_linear = model.blocks[0].mlp[0], quantized.blocks[0].mlp[0]
    assert isinstance(q_linear, lm.Int8Linear) and q_linear.codes.dtype == torch.int8
    qp = compute_qparams(linear.weight.detach(), bits=8, symmetric=True, axis=0)
    assert torch.equal(q_linear.dequantized_weight(), fake_quantize(linear.weight.detach(), qp))
    assert not any(isinstance(m, torch.nn.Linear) for m in quantized.modules())
    assert isinstance(model.blocks[0].mlp[0], torch.nn.Linear)  # the original is untouched
    linear_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    linear_rows = sum(m.weight.shape[0] for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert lm.model_bytes(model) - lm.model_bytes(quantized) == 3 * linear_weights - 4 * linear_rows
    x = tokens(2, 16)
    assert (model(x).argmax(-1) == quantized(x).argmax(-1)).float().mean() > 0.9
    with pytest.raises(TypeError, match="nn.Linear"):
        lm.Int8Linear(torch.nn.Conv1d(2, 2, 1))
