import numpy as np
import pytest

from helpers import llm_serving as srv
from helpers.llm_serving import Request

FLAT = srv.StepTimes((1, 64), (0.01, 0.01), prefill_s_per_token=0.0)  # a step costs 10 ms at any batch size


def test_make_requests_ranges_and_rate():
    requests = srv.make_requests(4000, rate_per_s=20.0, prompt_tokens=(8, 64), output_tokens=(4, 128), seed=0)
    prompts = np.array([r.prompt_tokens for r in requests])
    outputs = np.array([r.output_tokens for r in requests])
    arrivals = np.array([r.arrival_s for r in requests])
    assert prompts.min() == 8 and prompts.max() == 64 and outputs.min() == 4 and outputs.max() == 128
    assert np.median(outputs) < outputs.mean()  # log-uniform: many short answers, a few long ones
    assert np.all(np.diff(arrivals) > 0) and 4000 / arrivals[-1] == pytest.approx(20, rel=0.05)
    assert srv.make_requests(5, rate_per_s=1.0, seed=3) == srv.make_requests(5, rate_per_s=1.0, seed=3)


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"rate_per_s": 0}, {"prompt_tokens": (5, 2)}, {"output_tokens": (0, 3)}])
def test_make_requests_rejects_bad_arguments(kwargs):
    args = {"n": 5, "rate_per_s": 1.0, **kwargs}
    with pytest.raises(ValueError):
        srv.make_requests(args.pop("n"), **args)


def test_request_validation():
    with pytest.raises(ValueError, match="output_tokens"):
        Request(0.0, 5, 0)
    with pytest.raises(ValueError, match="arrival_s"):
        Request(-1.0, 5, 3)


def test_step_times_interpolate_and_extrapolate():
    times = srv.StepTimes((1, 4, 8), (1.0, 1.0, 2.0), prefill_s_per_token=0.5, prefill_overhead_s=0.25)
    assert times.decode(1) == 1.0 and times.decode(6) == pytest.approx(1.5) and times.decode(16) == pytest.approx(4.0)
    assert times.prefill(0) == 0 and times.prefill(4) == pytest.approx(2.25)
    with pytest.raises(ValueError, match="increasing"):
        srv.StepTimes((4, 1), (1.0, 1.0), prefill_s_per_token=0.0)
    with pytest.raises(ValueError, match="positive"):
        srv.StepTimes((1, 4), (1.0, 0.0), prefill_s_per_token=0.0)
    with pytest.raises(ValueError, match="batch"):
        times.decode(0)


def test_one_request_alone():
    times = srv.StepTimes((1, 2), (0.01, 0.02), prefill_s_per_token=0.001)
    for policy in srv.BATCHING_POLICIES:
        result = srv.simulate_batching([Request(1.0, 10, 5)], times, max_batch=4, policy=policy)
        assert result.ttft_s[0] == pytest.approx(0.01)  # the prefill yields the first token
        assert result.tpot_s[0] == pytest.approx(0.01) and result.latency_s[0] == pytest.approx(0.05)
        assert result.throughput_tok_s == pytest.approx(5 / 0.05)


def test_batch_of_one_is_the_same_under_both_policies():
    requests = srv.make_requests(50, rate_per_s=5.0, seed=1)
    times = srv.StepTimes((1, 8), (0.01, 0.02), prefill_s_per_token=1e-4)
    static, continuous = (srv.simulate_batching(requests, times, max_batch=1, policy=p) for p in srv.BATCHING_POLICIES)
    assert np.allclose(static.latency_s, continuous.latency_s) and np.allclose(static.ttft_s, continuous.ttft_s)


def test_static_batching_makes_a_short_request_wait_for_a_long_one():
    requests = [Request(0.0, 4, 100), Request(0.0, 4, 2), Request(0.05, 4, 2)]
    static = srv.simulate_batching(requests, FLAT, max_batch=2, policy="static")
    continuous = srv.simulate_batching(requests, FLAT, max_batch=2, policy="continuous")
    # static: the third request waits for the 100-token request's batch to finish (99 steps of 10 ms)
    assert static.ttft_s[2] == pytest.approx(0.99 - 0.05)
    # continuous: it joins as soon as the short one has left, two steps in
    assert continuous.ttft_s[2] < 0.05
    assert continuous.throughput_tok_s >= static.throughput_tok_s


def test_continuous_batching_serves_a_mixed_stream_better():
    times = srv.StepTimes((1, 8, 32), (0.010, 0.012, 0.030), prefill_s_per_token=2e-5, prefill_overhead_s=1e-3)
    requests = srv.make_requests(300, rate_per_s=40.0, seed=2)
    static, continuous = (srv.simulate_batching(requests, times, max_batch=16, policy=p).summary()
                          for p in srv.BATCHING_POLICIES)
    assert continuous["throughput (tok/s)"] > static["throughput (tok/s)"]
    assert continuous["TTFT p50 (s)"] < static["TTFT p50 (s)"]
    assert set(static) == {"throughput (tok/s)", "mean batch", "TTFT p50 (s)", "TTFT p95 (s)", "TPOT p50 (s)",
                           "TPOT p95 (s)", "latency p50 (s)", "latency p95 (s)"}


def test_every_token_is_accounted_for():
    requests = srv.make_requests(80, rate_per_s=30.0, seed=4)
    for policy in srv.BATCHING_POLICIES:
        result = srv.simulate_batching(requests, FLAT, max_batch=8, policy=policy)
        assert np.all(result.ttft_s >= 0) and np.all(result.latency_s >= result.ttft_s)
        one_token = np.array([r.output_tokens == 1 for r in requests])
        assert np.isnan(result.tpot_s[one_token]).all() and np.all(result.tpot_s[~one_token] >= 0.01 - 1e-12)


def test_simulate_batching_rejects_bad_input():
    with pytest.raises(ValueError, match="policy"):
        srv.simulate_batching([Request(0.0, 1, 1)], FLAT, max_batch=2, policy="greedy")
    with pytest.raises(ValueError, match="requests"):
        srv.simulate_batching([], FLAT, max_batch=2)
    with pytest.raises(TypeError, match="StepTimes"):
        srv.simulate_batching([Request(0.0, 1, 1)], {"decode": 1}, max_batch=2)


def test_contiguous_allocation_wastes_the_unused_reservation():
    requests = [Request(0.0, 10, 22)] * 4  # 32 tokens each at the end, 64 reserved
    result = srv.simulate_kv_allocation(requests, pool_tokens=256, max_seq_len=64, policy="contiguous")
    assert result.steps == 22 and result.running.max() == 4 and result.preemptions == 0
    used = sum(10 + s for s in range(1, 23)) * 4
    assert result.waste_fraction == pytest.approx(1 - used / (22 * 4 * 64))


def test_paged_allocation_wastes_less_than_a_block_per_sequence():
    requests = srv.make_requests(200, rate_per_s=1.0, prompt_tokens=(8, 64), output_tokens=(4, 400), seed=5)
    paged = srv.simulate_kv_allocation(requests, pool_tokens=4096, max_seq_len=512, policy="paged", block_tokens=16)
    contiguous = srv.simulate_kv_allocation(requests, pool_tokens=4096, max_seq_len=512, policy="contiguous")
    slack = paged.reserved_tokens - paged.used_tokens
    assert np.all(slack >= 0) and np.all(slack < 16 * paged.running)
    assert paged.waste_fraction < 0.1 < 0.5 < contiguous.waste_fraction
    assert paged.mean_running > 2 * contiguous.mean_running and paged.steps < contiguous.steps
    assert np.all(paged.reserved_tokens <= 4096) and np.all(contiguous.reserved_tokens <= 4096)


def test_paged_allocation_preempts_when_the_pool_runs_out_and_still_finishes():
    requests = [Request(0.0, 8, 100)] * 6  # each grows to 108 tokens: 7 blocks of 16; the pool has 24 blocks
    result = srv.simulate_kv_allocation(requests, pool_tokens=384, max_seq_len=128, policy="paged", block_tokens=16)
    assert result.preemptions > 0 and np.all(result.reserved_tokens <= 384)
    assert result.used_tokens.sum() >= 6 * sum(8 + s for s in range(1, 101))  # recomputed work adds steps
    roomy = srv.simulate_kv_allocation(requests, pool_tokens=4096, max_seq_len=128, policy="paged")
    assert roomy.preemptions == 0 and roomy.steps == 100


def test_simulate_kv_allocation_rejects_bad_input():
    with pytest.raises(ValueError, match="max_seq_len"):
        srv.simulate_kv_allocation([Request(0.0, 60, 10)], pool_tokens=256, max_seq_len=64)
    with pytest.raises(ValueError, match="pool_tokens"):
        srv.simulate_kv_allocation([Request(0.0, 6, 10)], pool_tokens=32, max_seq_len=64)
    with pytest.raises(ValueError, match="blocks"):
        srv.simulate_kv_allocation([Request(0.0, 60, 40)], pool_tokens=100, max_seq_len=100, block_tokens=16)
    with pytest.raises(ValueError, match="policy"):
        srv.simulate_kv_allocation([Request(0.0, 6, 10)], pool_tokens=256, max_seq_len=64, policy="buddy")
