"""Text classification from the ground up: a generated review corpus where word order matters for
part of the sentences, a keyword task for attention pooling, a tokenizer and vocabulary, padding
and masks, scaled dot-product attention, masked pooling and sinusoidal positions.

Written by hand because these pieces are the lesson; the tests check the attention against
``torch.nn.functional.scaled_dot_product_attention`` and the corpus against its own rules.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from helpers.validation import check_int

PAD, UNK = "<pad>", "<unk>"

NOUNS = ("food", "service", "staff", "pasta", "coffee", "room", "music", "dessert", "view", "wine",
         "bread", "menu", "soup", "pizza", "waiter", "terrace", "salad", "tea", "steak", "bar")
POSITIVE = ("good", "great", "tasty", "friendly", "excellent", "lovely", "fresh", "superb", "pleasant",
            "delicious", "charming", "perfect")
NEGATIVE = ("bad", "awful", "bland", "rude", "terrible", "stale", "poor", "dreadful", "greasy", "dull",
            "noisy", "horrible")
ADVERBS = ("really", "truly", "very", "so", "quite", "rather")  # in a pair, the first is "really" or "truly"
KINDS = ("plain", "negated", "contrast")


# --- corpora -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """Sentences with binary labels (1 = positive) and the kind of each sentence."""

    texts: list[str]
    labels: np.ndarray
    kinds: np.ndarray


def _clause(rng: np.random.Generator, positive: bool, negated: bool, max_adverbs: int) -> list[str]:
    """``the NOUN was [not] [ADVERB...] ADJECTIVE`` whose meaning is ``positive``."""
    adjective_is_positive = positive != negated  # a negated clause uses the opposite adjective
    adjective = rng.choice(POSITIVE if adjective_is_positive else NEGATIVE)
    n_adverbs = int(rng.integers(0, max_adverbs + 1))
    # "really very good", not "very really good": every adverb but the last is "really" or "truly"
    adverbs = [str(rng.choice(ADVERBS[:2])) for _ in range(n_adverbs - 1)]
    adverbs += [str(rng.choice(ADVERBS))] * (n_adverbs > 0)
    return ["the", str(rng.choice(NOUNS)), "was", *(["not"] if negated else []), *adverbs, str(adjective)]


def make_reviews(n: int, *, seed: int = 0, max_adverbs: int = 2) -> Corpus:
    """A review corpus: half plain sentences, a quarter negated, a quarter contrasts; balanced labels.

    - ``plain``: "the food was very good" (the adjective decides);
    - ``negated``: "the food was not really good" ("not" flips the adjective, with 0 to
      ``max_adverbs`` words in between);
    - ``contrast``: "the food was good but the service was not great": two clauses of opposite
      meaning, and the one after "but" decides. Its bag of words is the same as that of the
      sentence with the clauses swapped, which has the opposite label: only word order tells them
      apart.
    """
    check_int("n", n, 8)
    check_int("max_adverbs", max_adverbs, 0)
    rng = np.random.default_rng(seed)
    texts, labels, kinds = [], [], []
    for i in range(n):
        kind, label = ("plain", "plain", "negated", "contrast")[i % 4], bool((i // 4) % 2)
        if kind == "contrast":
            first = _clause(rng, not label, bool(rng.integers(2)), max_adverbs)
            words = [*first, "but", *_clause(rng, label, bool(rng.integers(2)), max_adverbs)]
        else:
            words = _clause(rng, label, kind == "negated", max_adverbs)
        texts.append(" ".join(words))
        labels.append(int(label))
        kinds.append(kind)
    order = rng.permutation(n)
    return Corpus([texts[i] for i in order], np.array(labels)[order], np.array(kinds)[order])


def make_keyword_task(n: int, *, n_classes: int = 4, keywords_per_class: int = 3, n_distractors: int = 300,
                      min_length: int = 8, max_length: int = 40,
                      seed: int = 0) -> tuple[list[list[str]], np.ndarray, np.ndarray]:
    """Token sequences of random distractor words with one class keyword at a random position.

    Returns (sequences, labels, keyword positions). The label is the class of the keyword; the
    distractors ("w0", "w1", ...) carry no information.
    """
    checks = (("n", n, 1), ("n_classes", n_classes, 2), ("keywords_per_class", keywords_per_class, 1),
              ("n_distractors", n_distractors, 1), ("min_length", min_length, 1))
    for name, value, low in checks:
        check_int(name, value, low)
    check_int("max_length", max_length, min_length)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    lengths = rng.integers(min_length, max_length + 1, n)
    sequences, positions = [], []
    for label, length in zip(labels, lengths, strict=True):
        words = [f"w{j}" for j in rng.integers(0, n_distractors, length)]
        position = int(rng.integers(0, length))
        words[position] = f"key{label}_{rng.integers(keywords_per_class)}"
        sequences.append(words)
        positions.append(position)
    return sequences, labels, np.array(positions)


# --- tokens, vocabulary, padding -----------------------------------------------------------------


def tokenize(text: str) -> list[str]:
    """Lower-case words and single punctuation marks: "Not bad!" -> ["not", "bad", "!"]."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return re.findall(r"[a-z0-9']+|[^\sa-z0-9']", text.lower())


class Vocab:
    """Token <-> id. Id 0 is padding, id 1 the unknown token; the rest by decreasing frequency."""

    def __init__(self, token_lists: Iterable[Sequence[str]], *, min_freq: int = 1):
        check_int("min_freq", min_freq, 1)
        counts = Counter(token for tokens in token_lists for token in tokens)
        kept = sorted((t for t, c in counts.items() if c >= min_freq and t not in (PAD, UNK)),
                      key=lambda t: (-counts[t], t))
        self.itos: list[str] = [PAD, UNK, *kept]
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids of ``tokens``; unseen tokens map to the unknown id."""
        return [self.stoi.get(token, self.unk_id) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids``, padding dropped."""
        return [self.itos[i] for i in ids if i != self.pad_id]


def pad_batch(sequences: Sequence[Sequence[int]], *, length: int | None = None,
              pad_id: int = 0) -> torch.Tensor:
    """Right-pad id sequences into a (batch, length) int64 tensor.

    ``length`` defaults to the longest sequence; a shorter ``length`` raises instead of cutting.
    """
    if len(sequences) == 0 or any(len(s) == 0 for s in sequences):
        raise ValueError("sequences must be a non-empty list of non-empty sequences")
    longest = max(len(s) for s in sequences)
    length = longest if length is None else check_int("length", length, 1)
    if length < longest:
        raise ValueError(f"length {length} is shorter than the longest sequence ({longest})")
    out = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        out[row, : len(sequence)] = torch.as_tensor(sequence, dtype=torch.long)
    return out


def padding_mask(ids: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """True where ``ids`` is padding: PyTorch's ``key_padding_mask`` / ``src_key_padding_mask`` convention."""
    return ids == pad_id


# --- attention and pooling -----------------------------------------------------------------------


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
                                 pad_mask: torch.Tensor | None = None, scale: float | None = None
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ · scale) v, written out; returns (output, attention weights).

    Shapes: q (..., Lq, d), k (..., Lk, d), v (..., Lk, dv). ``pad_mask`` (batch, Lk) is True at
    padded keys, which get weight exactly 0; every row needs at least one key that is not padding.
    ``scale`` defaults to 1/√d.
    """
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"shapes do not fit: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale
    if pad_mask is not None:
        expected = (k.shape[0], k.shape[-2])
        if pad_mask.shape != expected:
            raise ValueError(f"pad_mask must have shape {expected}, got {tuple(pad_mask.shape)}")
        if pad_mask.all(dim=-1).any():
            raise ValueError("every sequence needs at least one key that is not padding")
        expand = pad_mask.view(pad_mask.shape[0], *([1] * (scores.dim() - 2)), pad_mask.shape[1])
        scores = scores.masked_fill(expand, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def masked_mean(x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
    """Mean of x (batch, L, d) over the positions that are not padding: (batch, d)."""
    keep = (~pad_mask).unsqueeze(-1).to(x.dtype)
    return (x * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


class AttentionPooling(nn.Module):
    """One learned query attends over the tokens: weights = softmax(q·k_i / √d) over non-padding.

    ``forward`` returns (pooled (batch, d), weights (batch, L)), so the weights can be inspected.
    """

    def __init__(self, dim: int):
        super().__init__()
        check_int("dim", dim, 1)
        self.query = nn.Parameter(torch.randn(dim) / math.sqrt(dim))
        self.key = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.query.expand(x.shape[0], 1, -1)
        pooled, weights = scaled_dot_product_attention(q, self.key(x), x, pad_mask=pad_mask)
        return pooled.squeeze(1), weights.squeeze(1)


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """The fixed positional encodings of Vaswani et al. (2017): (length, dim), sin on even and cos
    on odd features, wavelengths from 2π to 10000·2π."""
    check_int("length", length, 1)
    check_int("dim", dim, 2)
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table
