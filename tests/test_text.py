from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

from helpers import text as tx


def _meaning(clause: list[str]) -> int:
    """The polarity of a generated clause: the adjective's, flipped by "not"."""
    adjective_positive = clause[-1] in tx.POSITIVE
    return int(adjective_positive != ("not" in clause))


def test_reviews_follow_their_rules():
    corpus = tx.make_reviews(400, seed=3)
    assert len(corpus.texts) == len(corpus.labels) == len(corpus.kinds) == 400
    assert Counter(corpus.kinds) == {"plain": 200, "negated": 100, "contrast": 100}
    for text, label, kind in zip(corpus.texts, corpus.labels, corpus.kinds, strict=True):
        words = text.split()
        if kind == "contrast":
            cut = words.index("but")
            first, second = words[:cut], words[cut + 1:]
            assert _meaning(second) == label and _meaning(first) == 1 - label
        else:
            assert ("not" in words) == (kind == "negated")
            assert _meaning(words) == label
    for kind in tx.KINDS:
        assert corpus.labels[corpus.kinds == kind].mean() == pytest.approx(0.5)


def test_contrast_sentences_share_their_bag_of_words_with_the_swapped_sentence():
    corpus = tx.make_reviews(200, seed=0)
    text = next(t for t, k in zip(corpus.texts, corpus.kinds, strict=True) if k == "contrast")
    first, second = text.split(" but ")
    assert Counter(text.split()) == Counter(f"{second} but {first}".split())


def test_reviews_are_reproducible_and_validated():
    assert tx.make_reviews(40, seed=5).texts == tx.make_reviews(40, seed=5).texts
    assert tx.make_reviews(40, seed=5).texts != tx.make_reviews(40, seed=6).texts
    plain = [t for t in tx.make_reviews(40, max_adverbs=0).texts if " not " not in t and " but " not in t]
    assert plain and all(len(t.split()) == 4 for t in plain)
    with pytest.raises(ValueError, match="n must"):
        tx.make_reviews(2)


def test_keyword_task_has_one_keyword_of_the_label_class():
    sequences, labels, positions = tx.make_keyword_task(300, n_classes=3, min_length=5, max_length=12, seed=1)
    for words, label, position in zip(sequences, labels, positions, strict=True):
        assert 5 <= len(words) <= 12
        keywords = [w for w in words if w.startswith("key")]
        assert keywords == [words[position]] and keywords[0].startswith(f"key{label}_")
    assert set(labels) == {0, 1, 2}
    with pytest.raises(ValueError, match="max_length"):
        tx.make_keyword_task(10, min_length=8, max_length=4)


def test_tokenize_vocab_and_padding_round_trip():
    tokens = [tx.tokenize(t) for t in ["Not bad!", "not good, not bad"]]
    assert tokens[0] == ["not", "bad", "!"]
    vocab = tx.Vocab(tokens)
    assert vocab.itos[:3] == [tx.PAD, tx.UNK, "not"]  # specials first, then by frequency
    ids = [vocab.encode(t) for t in tokens]
    batch = tx.pad_batch(ids)
    assert batch.shape == (2, 5) and batch.dtype == torch.long
    assert vocab.decode(batch[0].tolist()) == tokens[0]
    assert tx.padding_mask(batch).sum().item() == 2
    assert vocab.encode(["excellent"]) == [vocab.unk_id]
    with pytest.raises(TypeError):
        tx.tokenize(3)


def test_vocab_min_freq_and_pad_batch_validation():
    vocab = tx.Vocab([["a", "a", "b"]], min_freq=2)
    assert vocab.itos == [tx.PAD, tx.UNK, "a"]
    with pytest.raises(ValueError, match="shorter"):
        tx.pad_batch([[1, 2, 3]], length=2)
    with pytest.raises(ValueError, match="non-empty"):
        tx.pad_batch([[1], []])


def test_attention_matches_pytorch_with_and_without_a_padding_mask():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 5, 8, generator=g) for _ in range(3))
    pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2, [False] + [True] * 4])
    for mask in (None, pad):
        ours, weights = tx.scaled_dot_product_attention(q, k, v, pad_mask=mask)
        attn_mask = None if mask is None else ~mask[:, None, None, :]  # PyTorch: True = may attend
        theirs = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2, 5))
    assert weights[2, :, :, 1:].abs().max() == 0


def test_attention_scale_and_bad_input():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 4, 16, generator=g) for _ in range(3))
    theirs = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=1.0)
    ours, _ = tx.scaled_dot_product_attention(q, k, v, scale=1.0)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="at least one key"):
        tx.scaled_dot_product_attention(q, k, v, pad_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="shapes"):
        tx.scaled_dot_product_attention(q, k[..., :8], v)


def test_masked_mean_ignores_padding_whatever_its_length():
    x = torch.randn(2, 3, 4)
    pad = torch.tensor([[False, False, True], [False, True, True]])
    torch.testing.assert_close(tx.masked_mean(x, pad), torch.stack([x[0, :2].mean(0), x[1, 0]]))
    longer = torch.cat([x, torch.randn(2, 5, 4)], dim=1)
    longer_pad = torch.cat([pad, torch.ones(2, 5, dtype=torch.bool)], 1)
    torch.testing.assert_close(tx.masked_mean(longer, longer_pad), tx.masked_mean(x, pad))


def test_attention_pooling_weights_skip_padding():
    torch.manual_seed(0)
    pool = tx.AttentionPooling(6)
    x, pad = torch.randn(2, 4, 6), torch.tensor([[False, False, False, True], [False, True, True, True]])
    pooled, weights = pool(x, pad)
    assert pooled.shape == (2, 6) and weights.shape == (2, 4)
    assert weights[pad].abs().max() == 0
    torch.testing.assert_close(pooled[1], x[1, 0])  # one real token: all the weight


def test_sinusoidal_positions_match_the_formula():
    table = tx.sinusoidal_positions(50, 16)
    assert table.shape == (50, 16)
    pos, i = 7, 3
    assert table[pos, 2 * i].item() == pytest.approx(np.sin(pos / 10000 ** (2 * i / 16)), abs=1e-6)
    assert table[pos, 2 * i + 1].item() == pytest.approx(np.cos(pos / 10000 ** (2 * i / 16)), abs=1e-6)
    with pytest.raises(ValueError, match="even"):
        tx.sinusoidal_positions(4, 5)


def test_a_transformer_layer_without_positions_is_permutation_equivariant():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True).eval()
    x = torch.randn(1, 6, 8)
    order = torch.randperm(6)
    with torch.no_grad():
        torch.testing.assert_close(layer(x)[:, order], layer(x[:, order]), atol=1e-5, rtol=1e-5)
        positions = tx.sinusoidal_positions(6, 8)
        shuffled = layer(x[:, order] + positions)
        assert not torch.allclose(layer(x + positions)[:, order], shuffled, atol=1e-3)
