"""A tiny character-level decoder-only transformer for the LLM-inference lessons (notebook 11d).

Written from scratch in the spirit of nanoGPT, because the mechanics are the lesson: a character
tokenizer; a model with token and position embeddings, pre-norm blocks (causal self-attention through
``F.scaled_dot_product_attention`` and an MLP) and a LM head, whose ``forward(tokens, kv_cache=None)``
decodes incrementally with a preallocated per-layer KV cache; a training loop; greedy and sampled
generation with and without the cache; temperature, top-k and top-p filtering; greedy speculative
decoding (Leviathan et al., 2023) with its expected-speed-up formula; and int8 per-channel weight-only
quantization of the Linear layers. The tests check the cache against recomputing the whole prefix,
speculative decoding against the target's own greedy output, and the sampling filters against the
logits processors of Hugging Face ``transformers``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from helpers.validation import check_int

TEXT_FILE = "kjv_genesis.txt"


# --------------------------------------------------------------------------- checks


def _check_tokens(tokens: object) -> torch.Tensor:
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2 or tokens.dtype != torch.long:
        raise ValueError(f"tokens must be a 2-D torch.long tensor (batch, time), got {tokens!r:.80}")
    if tokens.shape[1] == 0:
        raise ValueError("tokens must hold at least one position")
    return tokens


# --------------------------------------------------------------------------- text and tokenizer


def load_text(name: str = TEXT_FILE) -> str:
    """A bundled text from ``data/``, its SHA-256 checked against the MANIFEST first."""
    from helpers.data import verified_path

    return Path(verified_path(name)).read_text(encoding="utf-8")


class CharTokenizer:
    """One token per distinct character of a text, ids in sorted character order."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not text:
            raise ValueError("text must be a non-empty str")
        self.chars = sorted(set(text))
        self._index = {ch: i for i, ch in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; a character the tokenizer never saw raises ``ValueError``."""
        unknown = sorted(set(text) - set(self._index))
        if unknown:
            raise ValueError(f"text holds characters outside the vocabulary: {unknown[:10]}")
        return [self._index[ch] for ch in text]

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The characters of token ids (a list or a 1-D tensor)."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        if any(not 0 <= i < self.vocab_size for i in ids):
            raise ValueError(f"ids must lie in [0, {self.vocab_size})")
        return "".join(self.chars[i] for i in ids)


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class CharLMConfig:
    """Sizes of a ``CharLM``: ``n_embd`` must be divisible by ``n_head``."""

    vocab_size: int
    block_size: int = 128
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    mlp_ratio: int = 4

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "mlp_ratio"):
            check_int(name, getattr(self, name), 1)
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


class KVCache:
    """Keys and values of every layer, preallocated for ``max_len`` positions: (batch, heads, max_len, head_dim).

    ``length`` positions are filled; a forward pass with the cache writes its new keys and values at
    ``length`` and advances it. ``truncate`` drops the newest positions (speculative decoding rolls
    rejected draft tokens back this way).
    """

    def __init__(self, config: CharLMConfig, batch_size: int, *, max_len: int | None = None,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> None:
        check_int("batch_size", batch_size, 1)
        max_len = config.block_size if max_len is None else check_int("max_len", max_len, 1)
        if max_len > config.block_size:
            raise ValueError(f"max_len must be <= block_size ({config.block_size}), got {max_len}")
        shape = (batch_size, config.n_head, max_len, config.head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.n_layer)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.n_layer)]
        self.batch_size, self.max_len, self.length = batch_size, max_len, 0

    def nbytes(self) -> int:
        """Bytes of all the key and value buffers."""
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)

    def truncate(self, length: int) -> None:
        """Forget every position from ``length`` on."""
        if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= self.length:
            raise ValueError(f"length must be an int in [0, {self.length}], got {length!r}")
        self.length = length


def causal_mask(start: int, steps: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean mask (steps, start + steps): query i sits at position start + i and sees keys 0 .. start + i."""
    return torch.ones(steps, start + steps, dtype=torch.bool, device=device).tril(diagonal=start)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention that can read and extend a ``KVCache``."""

    def __init__(self, config: CharLMConfig, layer: int) -> None:
        super().__init__()
        self.n_head, self.layer = config.n_head, layer
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, steps, width = x.shape
        q, k, v = (t.view(batch, steps, self.n_head, -1).transpose(1, 2) for t in self.qkv(x).split(width, dim=2))
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            start = cache.length
            cache.keys[self.layer][:, :, start:start + steps] = k
            cache.values[self.layer][:, :, start:start + steps] = v
            k, v = cache.keys[self.layer][:, :, :start + steps], cache.values[self.layer][:, :, :start + steps]
            if steps == 1:  # one new query sees every cached position: no mask needed
                y = F.scaled_dot_product_attention(q, k, v)
            else:
                mask = causal_mask(start, steps, x.device) if mask is None else mask
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(batch, steps, width))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: CharLMConfig, layer: int) -> None:
        super().__init__()
        width = config.n_embd
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = CausalSelfAttention(config, layer)
        self.mlp = nn.Sequential(nn.Linear(width, config.mlp_ratio * width), nn.GELU(),
                                 nn.Linear(config.mlp_ratio * width, width))

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, mask)
        return x + self.mlp(self.ln2(x))


class CharLM(nn.Module):
    """Decoder-only transformer over characters: embeddings, ``n_layer`` blocks, final norm, LM head."""

    def __init__(self, config: CharLMConfig) -> None:
        super().__init__()
        if not isinstance(config, CharLMConfig):
            raise TypeError(f"config must be a CharLMConfig, got {type(config).__name__}")
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def new_cache(self, batch_size: int, *, max_len: int | None = None) -> KVCache:
        """An empty KV cache for this model, on its device and in its dtype."""
        weight = self.tok_emb.weight
        return KVCache(self.config, batch_size, max_len=max_len, dtype=weight.dtype, device=weight.device)

    def forward(self, tokens: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        """Logits (batch, time, vocab) of the next token after each position of ``tokens``.

        Without a cache the tokens are the whole sequence from position 0. With one, they continue the
        ``kv_cache.length`` cached positions (a prompt for an empty cache, one new token per decoding
        step, or several to verify a draft); their keys and values are appended to the cache.
        """
        tokens = _check_tokens(tokens)
        batch, steps = tokens.shape
        start = 0
        if kv_cache is not None:
            if kv_cache.batch_size != batch:
                raise ValueError(f"kv_cache holds {kv_cache.batch_size} sequences, tokens {batch}")
            start = kv_cache.length
            if start + steps > kv_cache.max_len:
                raise ValueError(f"kv_cache has room for {kv_cache.max_len} positions, needs {start + steps}")
        if start + steps > self.config.block_size:
            raise ValueError(f"positions up to {start + steps} exceed block_size {self.config.block_size}")
        positions = torch.arange(start, start + steps, device=tokens.device)
        x = self.tok_emb(tokens) + self.pos_emb(positions)
        mask = causal_mask(start, steps, tokens.device) if kv_cache is not None and steps > 1 else None
        for block in self.blocks:
            x = block(x, kv_cache, mask)
        if kv_cache is not None:
            kv_cache.length = start + steps
        return self.head(self.ln_f(x))


def count_parameters(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- training and evaluation


def get_batch(data: torch.Tensor, batch_size: int, seq_len: int, *,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of ``data`` (1-D token ids) and the same windows shifted by one (the targets)."""
    check_int("batch_size", batch_size, 1)
    check_int("seq_len", seq_len, 1)
    if not isinstance(data, torch.Tensor) or data.ndim != 1 or len(data) <= seq_len:
        raise ValueError(f"data must be a 1-D tensor longer than seq_len ({seq_len})")
    starts = torch.randint(len(data) - seq_len, (batch_size,), generator=generator)
    offsets = torch.arange(seq_len)
    return data[starts[:, None] + offsets], data[starts[:, None] + offsets + 1]


def train(model: CharLM, data: torch.Tensor, *, steps: int, batch_size: int = 32, seq_len: int | None = None,
          lr: float = 3e-3, weight_decay: float = 0.01, seed: int = 0) -> list[float]:
    """AdamW on random windows of ``data`` with a linear warm-up and cosine decay; returns every step's loss."""
    check_int("steps", steps, 1)
    seq_len = model.config.block_size if seq_len is None else seq_len
    if not 0 < lr < 1:
        raise ValueError(f"lr must lie in (0, 1), got {lr!r}")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.99))
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * s / steps))))
    model.train()
    losses = []
    for _ in range(steps):
        x, y = get_batch(data, batch_size, seq_len, generator=generator)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    return losses


def windows(data: torch.Tensor, seq_len: int, *, max_windows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Consecutive non-overlapping windows of ``data`` and their shifted targets, for evaluation."""
    check_int("seq_len", seq_len, 1)
    n = (len(data) - 1) // seq_len
    if max_windows is not None:
        n = min(n, check_int("max_windows", max_windows, 1))
    if n < 1:
        raise ValueError(f"data ({len(data)} tokens) is too short for one window of {seq_len}")
    x = data[: n * seq_len].view(n, seq_len)
    y = data[1: n * seq_len + 1].view(n, seq_len)
    return x, y


@torch.no_grad()
def evaluate_loss(model: nn.Module, data: torch.Tensor, *, seq_len: int, max_windows: int | None = None) -> float:
    """Mean next-token cross-entropy (nats) over non-overlapping windows; exp() of it is the perplexity."""
    x, y = windows(data, seq_len, max_windows=max_windows)
    model.eval()
    return F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()


@torch.no_grad()
def next_token_agreement(model_a: nn.Module, model_b: nn.Module, data: torch.Tensor, *, seq_len: int,
                         max_windows: int | None = None) -> float:
    """Share of positions where both models' most likely next token is the same (teacher forcing)."""
    x, _ = windows(data, seq_len, max_windows=max_windows)
    return (model_a(x).argmax(-1) == model_b(x).argmax(-1)).float().mean().item()


# --------------------------------------------------------------------------- sampling


def sampling_probs(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None) -> torch.Tensor:
    """Next-token probabilities after temperature, then top-k, then top-p (nucleus) filtering.

    ``temperature = 0`` is greedy: all the mass on the argmax. Top-k keeps the ``top_k`` most likely
    tokens; top-p keeps the smallest set of most likely tokens whose probability reaches ``top_p``
    (always at least one). The order is that of Hugging Face ``generate``.
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.ndim < 1:
        raise ValueError("logits must be a floating-point tensor (..., vocab)")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if top_k is not None:
        check_int("top_k", top_k, 1)
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be a number in (0, 1], got {top_p!r}")
    logits = logits.float()
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    scores = logits / temperature
    if top_k is not None and top_k < scores.shape[-1]:
        kth = scores.topk(top_k, dim=-1).indices
        keep = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, kth, True)
        scores = scores.masked_fill(~keep, -math.inf)
    if top_p is not None and top_p < 1:
        sorted_scores, order = scores.sort(dim=-1, descending=True)
        cumulative = sorted_scores.softmax(-1).cumsum(-1)
        drop_sorted = (cumulative - sorted_scores.softmax(-1)) >= top_p  # mass before this token already enough
        drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)
        scores = scores.masked_fill(drop, -math.inf)
    return scores.softmax(-1)


def sample_next(logits: torch.Tensor, *, temperature: float = 0.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row of ``logits`` (batch, vocab): the argmax when ``temperature == 0``, else a draw."""
    if temperature == 0 and top_k is None and top_p is None:
        return logits.argmax(-1)
    probs = sampling_probs(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate(model: CharLM, prompt: torch.Tensor, max_new_tokens: int, *, use_cache: bool = True,
             temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
             generator: torch.Generator | None = None,
             return_logits: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Continue ``prompt`` (batch, time) by ``max_new_tokens`` tokens; greedy unless ``temperature > 0``.

    With ``use_cache`` the prompt is prefilled once into a KV cache and every step feeds only the newest
    token; without it every step recomputes the whole prefix. Returns the tokens (prompt included) and,
    with ``return_logits``, the logits each new token was chosen from (batch, max_new_tokens, vocab).
    """
    prompt = _check_tokens(prompt)
    check_int("max_new_tokens", max_new_tokens, 1)
    total = prompt.shape[1] + max_new_tokens - 1  # the last token is never fed back
    if total > model.config.block_size:
        raise ValueError(f"prompt + max_new_tokens - 1 = {total} exceeds block_size {model.config.block_size}")
    model.eval()
    tokens, chosen_from = prompt, []
    cache = model.new_cache(prompt.shape[0], max_len=total) if use_cache else None
    logits = model(prompt, cache)[:, -1]
    for step in range(max_new_tokens):
        chosen_from.append(logits)
        nxt = sample_next(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        if step + 1 < max_new_tokens:
            logits = model(nxt[:, None], cache)[:, -1] if use_cache else model(tokens)[:, -1]
    if return_logits:
        return tokens, torch.stack(chosen_from, dim=1)
    return tokens


# --------------------------------------------------------------------------- speculative decoding


@dataclass(frozen=True)
class SpeculativeResult:
    """Output of ``speculative_generate`` and what it cost."""

    tokens: torch.Tensor  # (1, prompt + new tokens)
    proposed: int  # draft tokens proposed
    accepted: int  # of which the target accepted
    target_calls: int  # forward passes of the target (the prefill included)
    draft_calls: int  # forward passes of the draft (the prefill included)

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else math.nan


@torch.no_grad()
def speculative_generate(target: CharLM, draft: CharLM, prompt: torch.Tensor, max_new_tokens: int, *,
                         k: int, temperature: float = 0.0,
                         generator: torch.Generator | None = None) -> SpeculativeResult:
    """Speculative decoding: the draft proposes ``k`` tokens, the target checks them in one pass.

    Greedy (``temperature == 0``): the target accepts the longest run of draft tokens that equal its own
    greedy choices and adds one token of its own (the correction, or a bonus token when all ``k`` were
    accepted), so the output is exactly the target's greedy output. Sampling (``temperature > 0``,
    Leviathan et al., 2023; Chen et al., 2023): draft token x drawn from q is accepted with probability
    min(1, p(x) / q(x)); the first rejected one is replaced by a draw from max(0, p - q), normalized, so
    every token is distributed exactly as the target alone would sample it. Both caches always hold
    every token but the newest; rejected positions are rolled back with ``KVCache.truncate``.
    """
    prompt = _check_tokens(prompt)
    if prompt.shape[0] != 1:
        raise ValueError(f"speculative_generate decodes one sequence; prompt has batch {prompt.shape[0]}")
    check_int("max_new_tokens", max_new_tokens, 1)
    check_int("k", k, 1)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if target.config.vocab_size != draft.config.vocab_size:
        raise ValueError("target and draft must share the vocabulary")
    room = prompt.shape[1] + max_new_tokens + k
    if room > min(target.config.block_size, draft.config.block_size):
        raise ValueError(f"prompt + max_new_tokens + k = {room} exceeds a model's block_size")
    target.eval()
    draft.eval()
    t_cache, d_cache = target.new_cache(1, max_len=room), draft.new_cache(1, max_len=room)
    seq = prompt[0].tolist()
    calls_t = calls_d = 0
    if len(seq) > 1:  # prefill everything but the newest token, which the first round feeds
        target(prompt[:, :-1], t_cache)
        draft(prompt[:, :-1], d_cache)
        calls_t = calls_d = 1
    proposed = accepted = 0
    goal = len(seq) + max_new_tokens
    while len(seq) < goal:
        proposal, q_probs = [], []
        feed = seq[d_cache.length:]  # the tokens the draft has not seen yet (one, or two after a full accept)
        for _ in range(k):
            logits = draft(torch.tensor([feed]), d_cache)[0, -1]
            calls_d += 1
            if temperature == 0:
                proposal.append(int(logits.argmax()))
            else:
                q_probs.append((logits / temperature).softmax(-1))
                proposal.append(int(torch.multinomial(q_probs[-1], 1, generator=generator)))
            feed = proposal[-1:]
        logits = target(torch.tensor([seq[-1:] + proposal]), t_cache)[0]
        calls_t += 1
        n_ok, extra = _verify(logits, proposal, q_probs, temperature, generator)
        proposed, accepted = proposed + k, accepted + n_ok
        old = len(seq)
        seq += proposal[:n_ok] + [extra]
        t_cache.truncate(old + n_ok)  # keep the old newest token and the accepted draft tokens
        d_cache.truncate(min(d_cache.length, old + n_ok))
    return SpeculativeResult(torch.tensor([seq[:goal]]), proposed, accepted, calls_t, calls_d)


def _verify(logits: torch.Tensor, proposal: list[int], q_probs: list[torch.Tensor], temperature: float,
            generator: torch.Generator | None) -> tuple[int, int]:
    """How many draft tokens the target accepts, and the token it adds after them."""
    k = len(proposal)
    if temperature == 0:
        check = logits.argmax(-1).tolist()
        n_ok = 0
        while n_ok < k and proposal[n_ok] == check[n_ok]:
            n_ok += 1
        return n_ok, check[n_ok]
    p_probs = (logits / temperature).softmax(-1)
    drafted = torch.tensor(proposal)[:, None]
    p_x, q_x = p_probs[:k].gather(1, drafted)[:, 0], torch.stack(q_probs).gather(1, drafted)[:, 0]
    rejected = (torch.rand(k, generator=generator) * q_x >= p_x).nonzero()  # accept with probability min(1, p/q)
    if len(rejected) == 0:
        return k, int(torch.multinomial(p_probs[k], 1, generator=generator))
    i = int(rejected[0])
    residual = (p_probs[i] - q_probs[i]).clamp(min=0)
    residual = residual if float(residual.sum()) > 0 else p_probs[i]
    return i, int(torch.multinomial(residual / residual.sum(), 1, generator=generator))


@torch.no_grad()
def acceptance_probability(target: nn.Module, draft: nn.Module, data: torch.Tensor, *, seq_len: int,
                           temperature: float = 0.0, max_windows: int | None = None) -> float:
    """α of speculative decoding on ``data`` (teacher forcing): the mean of Σ_x min(p(x), q(x)) over
    positions, with p and q the target's and the draft's next-token distributions at ``temperature``;
    for ``temperature == 0`` the share of positions where both greedy choices agree."""
    if temperature == 0:
        return next_token_agreement(target, draft, data, seq_len=seq_len, max_windows=max_windows)
    x, _ = windows(data, seq_len, max_windows=max_windows)
    p, q = (m(x).div(temperature).softmax(-1) for m in (target.eval(), draft.eval()))
    return torch.minimum(p, q).sum(-1).mean().item()


def _check_alpha_k(alpha: float, k: int) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    check_int("k", k, 1)


def expected_tokens_per_step(alpha: float, k: int) -> float:
    """Expected tokens produced per target pass, (1 − α^(k+1)) / (1 − α), for i.i.d. acceptance α."""
    _check_alpha_k(alpha, k)
    return float(k + 1) if alpha == 1 else (1 - alpha ** (k + 1)) / (1 - alpha)


def expected_acceptance_rate(alpha: float, k: int) -> float:
    """Expected share of the ``k`` proposed tokens that are accepted: (tokens per step − 1) / k."""
    return (expected_tokens_per_step(alpha, k) - 1) / k


def expected_speedup(alpha: float, k: int, cost_ratio: float) -> float:
    """Leviathan et al. (2023): (1 − α^(k+1)) / ((1 − α)(k·c + 1)), with c = draft cost / target cost.

    It assumes that verifying k + 1 tokens costs one target step (true while decoding is bound by
    memory or overhead, not compute).
    """
    if isinstance(cost_ratio, bool) or not isinstance(cost_ratio, (int, float)) or cost_ratio < 0:
        raise ValueError(f"cost_ratio must be a number >= 0, got {cost_ratio!r}")
    return expected_tokens_per_step(alpha, k) / (k * cost_ratio + 1)


# --------------------------------------------------------------------------- int8 weights


class Int8Linear(nn.Module):
    """A Linear layer whose weight is stored as int8 codes with one fp32 scale per output channel.

    Weight-only quantization: the forward pass dequantizes the weight and multiplies in float.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        from helpers import quant

        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        qp = quant.compute_qparams(linear.weight.detach().float(), bits=8, symmetric=True, axis=0)
        self.register_buffer("codes", quant.quantize(linear.weight.detach().float(), qp))
        self.register_buffer("scale", qp.scale.clone())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def dequantized_weight(self) -> torch.Tensor:
        return self.codes.float() * self.scale[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dequantized_weight(), self.bias)


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` replaced by an ``Int8Linear`` (embeddings stay fp32)."""
    quantized = copy.deepcopy(model)
    for module in list(quantized.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, child_name, Int8Linear(child))
    return quantized.eval()


def model_bytes(model: nn.Module) -> int:
    """Bytes of a model's parameters and buffers (codes, scales and biases of ``Int8Linear`` included)."""
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
