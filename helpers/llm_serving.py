"""Simulators of LLM serving (notebook 11d): static against continuous batching, driven by measured step
times, and contiguous against paged KV-cache allocation.

Batching: requests arrive over time with different prompt and output lengths. Static batching takes
the waiting requests (up to ``max_batch``), prefills them padded to the longest prompt and decodes until
the longest output is done; nobody joins before the whole batch leaves. Continuous (in-flight,
iteration-level) batching, as in Orca (Yu et al., 2022) and vLLM, lets finished requests leave after
any step and waiting ones join at the next, their prefill run in that iteration. Each iteration's time
comes from a ``StepTimes`` cost model measured on a real model.

Allocation: a pool of KV-cache slots (in tokens). Contiguous allocation reserves ``max_seq_len`` slots
per request at admission, because the output length is unknown; paged allocation (PagedAttention, Kwon
et al., 2023) hands out fixed-size blocks as the sequence grows and preempts the newest request when
the pool runs out.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from helpers.validation import check_int

BATCHING_POLICIES = ("static", "continuous")
ALLOCATION_POLICIES = ("contiguous", "paged")


def _check_range(name: str, value: object) -> tuple[int, int]:
    if (not isinstance(value, Sequence) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) for v in value) or not 1 <= value[0] <= value[1]):
        raise ValueError(f"{name} must be a pair of ints (low, high) with 1 <= low <= high, got {value!r}")
    return int(value[0]), int(value[1])


@dataclass(frozen=True)
class Request:
    """One generation request: when it arrives, its prompt length and how many tokens it generates."""

    arrival_s: float
    prompt_tokens: int
    output_tokens: int

    def __post_init__(self) -> None:
        if not (isinstance(self.arrival_s, (int, float)) and math.isfinite(self.arrival_s) and self.arrival_s >= 0):
            raise ValueError(f"arrival_s must be a finite number >= 0, got {self.arrival_s!r}")
        check_int("prompt_tokens", self.prompt_tokens, 1)
        check_int("output_tokens", self.output_tokens, 1)


def make_requests(n: int, *, rate_per_s: float, prompt_tokens: tuple[int, int] = (8, 64),
                  output_tokens: tuple[int, int] = (4, 128), seed: int = 0) -> list[Request]:
    """``n`` requests with Poisson arrivals at ``rate_per_s``; prompt lengths uniform in ``prompt_tokens``,
    output lengths log-uniform in ``output_tokens`` (many short answers, a few long ones)."""
    check_int("n", n, 1)
    if isinstance(rate_per_s, bool) or not isinstance(rate_per_s, (int, float)) or not rate_per_s > 0:
        raise ValueError(f"rate_per_s must be a number > 0, got {rate_per_s!r}")
    p_low, p_high = _check_range("prompt_tokens", prompt_tokens)
    o_low, o_high = _check_range("output_tokens", output_tokens)
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate_per_s, n))
    prompts = rng.integers(p_low, p_high + 1, n)
    outputs = np.floor(np.exp(rng.uniform(np.log(o_low), np.log(o_high + 1), n))).astype(int).clip(o_low, o_high)
    return [Request(float(a), int(p), int(o)) for a, p, o in zip(arrivals, prompts, outputs, strict=True)]


@dataclass(frozen=True)
class StepTimes:
    """A cost model measured on a real model: one decoding step at each batch size, and prefill per token.

    ``decode(b)`` interpolates linearly between the measured batch sizes and extrapolates the last
    segment's slope beyond them; ``prefill(n)`` is ``prefill_overhead_s + n * prefill_s_per_token``.
    """

    batch_sizes: tuple[int, ...]
    decode_s: tuple[float, ...]
    prefill_s_per_token: float
    prefill_overhead_s: float = 0.0

    def __post_init__(self) -> None:
        sizes, times = tuple(self.batch_sizes), tuple(self.decode_s)
        if len(sizes) < 2 or len(sizes) != len(times):
            raise ValueError("batch_sizes and decode_s must have the same length, at least 2")
        if any(isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1 for b in sizes) \
                or any(b2 <= b1 for b1, b2 in zip(sizes, sizes[1:], strict=False)):
            raise ValueError(f"batch_sizes must be increasing ints >= 1, got {sizes}")
        if any(not (t > 0 and math.isfinite(t)) for t in times):
            raise ValueError("decode_s must hold positive finite times")
        for name in ("prefill_s_per_token", "prefill_overhead_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        object.__setattr__(self, "batch_sizes", tuple(int(b) for b in sizes))
        object.__setattr__(self, "decode_s", tuple(float(t) for t in times))

    def decode(self, batch: int) -> float:
        """Seconds of one decoding step for ``batch`` running sequences."""
        batch = check_int("batch", batch, 1)
        sizes, times = self.batch_sizes, self.decode_s
        if batch <= sizes[-1]:
            return float(np.interp(batch, sizes, times))
        slope = (times[-1] - times[-2]) / (sizes[-1] - sizes[-2])
        return times[-1] + max(slope, 0.0) * (batch - sizes[-1])

    def prefill(self, n_tokens: int) -> float:
        """Seconds to prefill ``n_tokens`` prompt tokens (0 for none)."""
        n_tokens = check_int("n_tokens", n_tokens, 0)
        return 0.0 if n_tokens == 0 else self.prefill_overhead_s + n_tokens * self.prefill_s_per_token


@dataclass(frozen=True)
class ServingResult:
    """Per-request times of a simulated serving run (seconds), in the order of the requests."""

    policy: str
    ttft_s: np.ndarray  # time to first token: first token - arrival
    tpot_s: np.ndarray  # time per output token after the first (NaN for one-token outputs)
    latency_s: np.ndarray  # last token - arrival
    throughput_tok_s: float  # output tokens / (last token - first arrival)
    mean_batch: float  # mean number of sequences in a decoding step

    def summary(self) -> dict[str, float]:
        """Throughput and the median and p95 of TTFT, TPOT and latency."""
        out = {"throughput (tok/s)": self.throughput_tok_s, "mean batch": self.mean_batch}
        for name, values in (("TTFT", self.ttft_s), ("TPOT", self.tpot_s), ("latency", self.latency_s)):
            values = values[np.isfinite(values)]
            out[f"{name} p50 (s)"] = float(np.percentile(values, 50))
            out[f"{name} p95 (s)"] = float(np.percentile(values, 95))
        return out


def _result(policy: str, requests: Sequence[Request], first: np.ndarray, last: np.ndarray,
            step_batches: list[int]) -> ServingResult:
    arrivals = np.array([r.arrival_s for r in requests])
    outputs = np.array([r.output_tokens for r in requests])
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(outputs > 1, (last - first) / (outputs - 1), np.nan)
    span = last.max() - arrivals.min()
    mean_batch = float(np.mean(step_batches)) if step_batches else 1.0
    return ServingResult(policy, first - arrivals, tpot, last - arrivals, float(outputs.sum() / span), mean_batch)


def _check_requests(requests: Sequence[Request]) -> list[Request]:
    requests = list(requests)
    if not requests or any(not isinstance(r, Request) for r in requests):
        raise ValueError("requests must be a non-empty sequence of Request")
    return requests


def simulate_batching(requests: Sequence[Request], times: StepTimes, *, max_batch: int,
                      policy: str = "continuous") -> ServingResult:
    """Serve ``requests`` first come, first served, with ``policy`` "static" or "continuous" batching.

    Static: when the server is free it takes up to ``max_batch`` waiting requests, prefills them padded
    to the longest prompt (the first token of each), then runs ``max(output) - 1`` decoding steps of the
    full batch; tokens stream out, but the slots free up only when the whole batch is done. Continuous:
    every iteration admits waiting requests into free slots (their prefill, which yields their first
    token, runs in that iteration) and decodes one token for every running sequence; a sequence leaves
    after its last token.
    """
    requests = _check_requests(requests)
    max_batch = check_int("max_batch", max_batch, 1)
    if not isinstance(times, StepTimes):
        raise TypeError(f"times must be a StepTimes, got {type(times).__name__}")
    if policy not in BATCHING_POLICIES:
        raise ValueError(f"policy must be one of {BATCHING_POLICIES}, got {policy!r}")
    order = sorted(range(len(requests)), key=lambda i: requests[i].arrival_s)
    first, last = np.zeros(len(requests)), np.zeros(len(requests))
    step_batches: list[int] = []
    waiting: deque[int] = deque()
    nxt, t = 0, 0.0

    def admit_arrivals() -> None:
        nonlocal nxt
        while nxt < len(order) and requests[order[nxt]].arrival_s <= t:
            waiting.append(order[nxt])
            nxt += 1

    if policy == "static":
        while nxt < len(order) or waiting:
            admit_arrivals()
            if not waiting:
                t = requests[order[nxt]].arrival_s
                continue
            batch = [waiting.popleft() for _ in range(min(max_batch, len(waiting)))]
            t += times.prefill(len(batch) * max(requests[i].prompt_tokens for i in batch))
            step = times.decode(len(batch))
            for i in batch:
                first[i] = t
                last[i] = t + (requests[i].output_tokens - 1) * step
            n_steps = max(requests[i].output_tokens for i in batch) - 1
            step_batches += [len(batch)] * n_steps
            t += n_steps * step
        return _result(policy, requests, first, last, step_batches)

    running: dict[int, int] = {}  # request index -> tokens generated so far
    while nxt < len(order) or waiting or running:
        admit_arrivals()
        if not waiting and not running:
            t = requests[order[nxt]].arrival_s
            continue
        joining = [waiting.popleft() for _ in range(min(max_batch - len(running), len(waiting)))]
        t += times.prefill(sum(requests[i].prompt_tokens for i in joining))
        if running:
            t += times.decode(len(running))
            step_batches.append(len(running))
        for i in list(running):
            running[i] += 1
            if running[i] == requests[i].output_tokens:
                last[i] = t
                del running[i]
        for i in joining:
            first[i] = last[i] = t
            if requests[i].output_tokens > 1:
                running[i] = 1
    return _result(policy, requests, first, last, step_batches)


@dataclass
class AllocationResult:
    """What a simulated KV-cache pool did, step by step."""

    policy: str
    steps: int  # decoding steps until every request finished
    used_tokens: np.ndarray = field(repr=False)  # tokens held in the cache at each step
    reserved_tokens: np.ndarray = field(repr=False)  # slots reserved (contiguous) or in allocated blocks (paged)
    running: np.ndarray = field(repr=False)  # sequences decoding at each step
    preemptions: int = 0

    @property
    def waste_fraction(self) -> float:
        """Share of the reserved slots that hold no token, over the whole run."""
        return float(1 - self.used_tokens.sum() / self.reserved_tokens.sum())

    @property
    def mean_running(self) -> float:
        return float(self.running.mean())


def simulate_kv_allocation(requests: Sequence[Request], *, pool_tokens: int, max_seq_len: int,
                           policy: str = "paged", block_tokens: int = 16) -> AllocationResult:
    """Serve ``requests`` (all queued at step 0, first come first served) from a KV-cache pool.

    A sequence holds ``prompt_tokens`` after its prefill and one more token per step until it has
    generated ``output_tokens``. "contiguous" reserves ``max_seq_len`` slots per sequence at admission
    (the longest it may grow); "paged" allocates blocks of ``block_tokens`` as the sequence grows and,
    when no block is free, preempts the most recently admitted sequence (its blocks are freed and it
    goes back to the head of the queue, to be recomputed), as vLLM does.
    """
    requests = _check_requests(requests)
    pool_tokens = check_int("pool_tokens", pool_tokens, 1)
    max_seq_len = check_int("max_seq_len", max_seq_len, 1)
    block_tokens = check_int("block_tokens", block_tokens, 1)
    if policy not in ALLOCATION_POLICIES:
        raise ValueError(f"policy must be one of {ALLOCATION_POLICIES}, got {policy!r}")
    longest = max(r.prompt_tokens + r.output_tokens for r in requests)
    if longest > max_seq_len:
        raise ValueError(f"a request needs {longest} tokens, more than max_seq_len={max_seq_len}")
    if max_seq_len > pool_tokens:
        raise ValueError(f"max_seq_len ({max_seq_len}) must fit in pool_tokens ({pool_tokens})")
    paged = policy == "paged"
    n_blocks = pool_tokens // block_tokens
    blocks_for = lambda tokens: -(-tokens // block_tokens)  # noqa: E731
    if paged and blocks_for(longest) > n_blocks:
        raise ValueError(f"a request needs {blocks_for(longest)} blocks, the pool has {n_blocks}")
    queue: deque[int] = deque(range(len(requests)))
    generated = [0] * len(requests)  # kept across a preemption: recomputed as part of the prompt
    length: dict[int, int] = {}  # running sequence -> tokens in its cache, in admission order
    blocks: dict[int, int] = {}
    used, reserved, running_counts = [], [], []
    preemptions = 0

    def free_capacity() -> int:
        return n_blocks - sum(blocks.values()) if paged else pool_tokens - len(length) * max_seq_len

    while queue or length:
        while queue:  # admit from the head while the next request fits
            i = queue[0]
            start = requests[i].prompt_tokens + generated[i]
            if (blocks_for(start + 1) if paged else max_seq_len) > free_capacity():
                break
            queue.popleft()
            length[i], blocks[i] = start, blocks_for(start)
        for i in list(length):
            if i not in length:  # preempted earlier in this step
                continue
            if paged and blocks_for(length[i] + 1) > blocks[i]:
                while free_capacity() < 1:  # preempt the newest sequence until a block is free
                    victim = next(reversed(length))
                    del length[victim], blocks[victim]
                    queue.appendleft(victim)
                    preemptions += 1
                    if victim == i:
                        break
                if i not in length:
                    continue
                blocks[i] += 1
            length[i] += 1
            generated[i] += 1
        used.append(sum(length.values()))
        reserved.append(sum(blocks.values()) * block_tokens if paged else len(length) * max_seq_len)
        running_counts.append(len(length))
        for i in list(length):
            if generated[i] == requests[i].output_tokens:
                del length[i], blocks[i]
    return AllocationResult(policy, len(used), np.array(used), np.array(reserved), np.array(running_counts),
                            preemptions)
