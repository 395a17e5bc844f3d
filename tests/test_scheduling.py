import numpy as np
import pytest

from helpers import scheduling as sch
from helpers.scheduling import Job

NODES = [f"node-{i}" for i in range(10)]
KEYS = [f"key-{i}" for i in range(20_000)]


def _peak_memory_per_node(jobs, result, n_nodes):
    """Sweep start and end events of each node (ends first at equal times) and return its peak memory."""
    peaks = np.zeros(n_nodes)
    for node in range(n_nodes):
        runs = zip(jobs, result.starts, result.ends, result.nodes, strict=True)
        events = sorted((t, sign * job.memory_gb)
                        for job, s, e, n in runs if n == node for t, sign in ((s, 1), (e, -1)))
        peaks[node] = max(np.cumsum([delta for _, delta in events]), default=0.0)
    return peaks


# --- GPU-cluster scheduling -------------------------------------------------------------------


def test_make_jobs_is_deterministic_and_has_the_asked_statistics():
    jobs = sch.make_jobs(5000, seed=1, arrival_rate=2.0, mean_duration=4.0, memory_choices=(10, 80))
    assert jobs == sch.make_jobs(5000, seed=1, arrival_rate=2.0, mean_duration=4.0, memory_choices=(10, 80))
    assert jobs != sch.make_jobs(5000, seed=2, arrival_rate=2.0, mean_duration=4.0, memory_choices=(10, 80))
    arrivals = np.array([job.arrival for job in jobs])
    durations = np.array([job.duration for job in jobs])
    assert [job.id for job in jobs] == list(range(5000)) and np.all(np.diff(arrivals) > 0)
    assert np.diff(arrivals).mean() == pytest.approx(0.5, rel=0.05)
    assert durations.mean() == pytest.approx(4.0, rel=0.1)
    assert np.percentile(durations, 99) > 5 * np.median(durations)  # heavy tail
    assert {job.memory_gb for job in jobs} == {10.0, 80.0}


@pytest.mark.parametrize("policy", sch.CLUSTER_POLICIES)
def test_every_policy_runs_each_job_once_without_overfilling_a_node(policy):
    jobs = sch.make_jobs(200, seed=0)
    result = sch.simulate_cluster(jobs, n_nodes=4, node_memory_gb=80, policy=policy)
    arrivals = np.array([job.arrival for job in jobs])
    durations = np.array([job.duration for job in jobs])
    assert np.isfinite(result.starts).all() and set(result.nodes) <= {0, 1, 2, 3}
    assert np.all(result.starts >= arrivals) and np.allclose(result.waits, result.starts - arrivals)
    assert np.allclose(result.ends, result.starts + durations)
    assert np.all(_peak_memory_per_node(jobs, result, 4) <= 80 + 1e-9)
    assert result.makespan == pytest.approx(result.ends.max() - arrivals.min())
    assert 0.5 < result.utilization <= 1
    assert result.p95_wait >= result.mean_wait > 0  # the default load makes jobs queue


def test_fifo_never_starts_a_job_before_an_earlier_arrival():
    jobs = sch.make_jobs(200, seed=3)
    result = sch.simulate_cluster(jobs, n_nodes=4, node_memory_gb=80, policy="fifo")
    order = np.argsort([job.arrival for job in jobs])
    assert np.all(np.diff(result.starts[order]) >= 0)


def test_a_big_head_job_blocks_fifo_but_not_the_backfilling_policies():
    jobs = [Job(0, 0.0, 10.0, 40), Job(1, 1.0, 5.0, 80), Job(2, 2.0, 1.0, 20), Job(3, 3.0, 1.0, 20)]
    waits = {p: sch.simulate_cluster(jobs, n_nodes=1, node_memory_gb=80, policy=p).waits
             for p in sch.CLUSTER_POLICIES}
    assert list(waits["fifo"]) == [0, 9, 13, 12]  # the 80 GB job waits for job 0, the small ones for it
    assert list(waits["sjf"]) == list(waits["best_fit"]) == [0, 9, 0, 0]
    assert waits["fifo"].mean() > 3 * waits["sjf"].mean()


def test_best_fit_packs_tightly_and_keeps_room_for_a_big_job():
    jobs = [Job(0, 0.0, 10.0, 20), Job(1, 0.1, 10.0, 70), Job(2, 0.2, 10.0, 10), Job(3, 0.3, 10.0, 60)]
    best = sch.simulate_cluster(jobs, n_nodes=2, node_memory_gb=80, policy="best_fit")
    first = sch.simulate_cluster(jobs, n_nodes=2, node_memory_gb=80, policy="sjf")
    assert list(best.nodes) == [0, 1, 1, 0] and best.waits.max() == 0  # the 10 GB job fills node 1's gap
    assert list(first.nodes[:3]) == [0, 1, 0] and first.waits[3] == pytest.approx(10 - 0.3)


@pytest.mark.parametrize("seed", range(5))
def test_backfilling_beats_fifo_on_generated_jobs(seed):
    jobs = sch.make_jobs(200, seed=seed)
    mean_wait = {p: sch.simulate_cluster(jobs, n_nodes=4, node_memory_gb=80, policy=p).mean_wait
                 for p in sch.CLUSTER_POLICIES}
    assert mean_wait["sjf"] <= mean_wait["fifo"] and mean_wait["best_fit"] <= mean_wait["fifo"]


def test_one_job_filling_the_cluster_gives_full_utilization():
    result = sch.simulate_cluster([Job(0, 2.0, 3.0, 80)], n_nodes=1, node_memory_gb=80, policy="fifo")
    assert result.makespan == 3.0 and result.utilization == 1.0 and result.mean_wait == 0


@pytest.mark.parametrize(("jobs", "kwargs", "message"), [
    ([Job(0, 0.0, 1.0, 81)], {}, "more than a node"),
    ([Job(0, 0.0, 0.0, 10)], {}, "duration > 0"),
    ([], {}, "non-empty"),
    ([Job(0, 0.0, 1.0, 10)], {"policy": "lifo"}, "policy"),
    ([Job(0, 0.0, 1.0, 10)], {"n_nodes": 0}, "n_nodes"),
    ([Job(0, 0.0, 1.0, 10)], {"node_memory_gb": -1}, "node_memory_gb"),
])
def test_simulate_cluster_rejects_bad_input(jobs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sch.simulate_cluster(jobs, **{"n_nodes": 1, "node_memory_gb": 80, "policy": "fifo", **kwargs})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n": 0}, "n must"), ({"arrival_rate": 0}, "arrival_rate"), ({"memory_choices": ()}, "memory_choices"),
])
def test_make_jobs_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sch.make_jobs(**{"n": 10, **kwargs})


# --- load balancing ---------------------------------------------------------------------------


def test_make_requests_sets_the_load_per_server():
    arrivals, service = sch.make_requests(20_000, n_servers=8, load=0.8, seed=0)
    assert np.all(np.diff(arrivals) > 0) and np.all(service > 0)
    assert service.mean() == pytest.approx(1.0, rel=0.1)
    assert np.percentile(service, 99) > 20 * np.median(service)  # skewed costs
    assert service.sum() / (8 * arrivals[-1]) == pytest.approx(0.8, rel=0.1)


def test_load_aware_balancers_cut_the_tail_at_high_load():
    arrivals, service = sch.make_requests(10_000, n_servers=10, seed=0)
    p95 = {p: np.percentile(sch.simulate_load_balancer(service, arrivals, n_servers=10, policy=p), 95)
           for p in sch.BALANCER_POLICIES}
    oblivious = min(p95["round_robin"], p95["random"])
    assert p95["least_connections"] < 0.5 * oblivious and p95["power_of_two"] < 0.5 * oblivious


@pytest.mark.parametrize("policy", sch.BALANCER_POLICIES)
def test_latency_is_service_plus_a_wait(policy):
    arrivals, service = sch.make_requests(2000, n_servers=4, seed=1)
    latency = sch.simulate_load_balancer(service, arrivals, n_servers=4, policy=policy)
    assert np.all(latency >= service) and latency.mean() > service.mean()  # some requests queue
    spread_out = sch.simulate_load_balancer(service, np.arange(2000) * 1e3, n_servers=4, policy=policy)
    assert np.array_equal(spread_out, service)  # nothing ever waits when requests never overlap


def test_with_one_server_every_policy_is_the_same_fifo_queue():
    arrivals, service = np.array([0.0, 1.0, 2.0, 10.0]), np.array([3.0, 1.0, 1.0, 2.0])
    for policy in sch.BALANCER_POLICIES:
        latency = sch.simulate_load_balancer(service, arrivals, n_servers=1, policy=policy, seed=5)
        assert list(latency) == [3.0, 3.0, 3.0, 2.0]


@pytest.mark.parametrize(("service", "arrivals", "kwargs", "message"), [
    ([1.0, 1.0], [0.0], {}, "same length"),
    ([1.0, 1.0], [1.0, 0.0], {}, "sorted"),
    ([-1.0], [0.0], {}, ">= 0"),
    ([1.0], [0.0], {"policy": "fastest"}, "policy"),
    ([1.0], [0.0], {"n_servers": 0}, "n_servers"),
])
def test_simulate_load_balancer_rejects_bad_input(service, arrivals, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sch.simulate_load_balancer(np.array(service), np.array(arrivals),
                                   **{"n_servers": 2, "policy": "random", **kwargs})


def test_make_requests_rejects_an_unstable_load():
    with pytest.raises(ValueError, match="load"):
        sch.make_requests(10, n_servers=2, load=1.0)


# --- consistent hashing -----------------------------------------------------------------------


def test_removing_a_node_moves_a_tenth_of_the_keys_on_a_ring_and_most_with_modulo():
    ring, smaller = sch.ConsistentHashRing(NODES), sch.ConsistentHashRing(NODES[:3] + NODES[4:])
    before = {key: ring.node_for(key) for key in KEYS}
    moved = [key for key in KEYS if smaller.node_for(key) != before[key]]
    assert {before[key] for key in moved} == {"node-3"}  # only the removed node's keys move
    assert len(moved) == sum(node == "node-3" for node in before.values())
    assert sch.remapped_fraction(KEYS, ring.node_for, smaller.node_for) == pytest.approx(0.1, abs=0.04)
    modulo = sch.remapped_fraction(KEYS, sch.modulo_assignment(NODES),
                                   sch.modulo_assignment(NODES[:3] + NODES[4:]))
    assert modulo > 0.8


def test_adding_a_node_moves_keys_only_onto_it():
    ring = sch.ConsistentHashRing(NODES)
    before = [ring.node_for(key) for key in KEYS]
    ring.add("node-new")
    after = [ring.node_for(key) for key in KEYS]
    assert {a for b, a in zip(before, after, strict=True) if a != b} == {"node-new"}
    ring.remove("node-new")
    assert [ring.node_for(key) for key in KEYS] == before
    assert ring.nodes == sorted(NODES)


def test_ring_is_independent_of_insertion_order_and_of_the_process():
    forward, backward = sch.ConsistentHashRing(NODES), sch.ConsistentHashRing(reversed(NODES))
    assert all(forward.node_for(key) == backward.node_for(key) for key in KEYS[:2000])
    assert sch.stable_hash("key-0") == 0x8655DB8F4C7D5137  # blake2b, 8 bytes: the same in every process
    assert sch.stable_hash("key-0") != sch.stable_hash("key-1")


def test_virtual_nodes_balance_the_load():
    def spread(replicas):
        ring = sch.ConsistentHashRing(NODES, replicas=replicas)
        counts = np.unique([ring.node_for(key) for key in KEYS], return_counts=True)[1]
        return counts.min() / counts.mean(), counts.max() / counts.mean()

    low, high = spread(100)
    assert low > 0.7 and high < 1.3
    assert spread(1)[1] > high + 0.5  # one point per node: some node gets far more than its share


def test_hashing_rejects_bad_input():
    ring = sch.ConsistentHashRing(["a"])
    with pytest.raises(ValueError, match="already"):
        ring.add("a")
    with pytest.raises(ValueError, match="not on the ring"):
        ring.remove("b")
    ring.remove("a")
    with pytest.raises(ValueError, match="no nodes"):
        ring.node_for("key")
    with pytest.raises(ValueError, match="replicas"):
        sch.ConsistentHashRing(["a"], replicas=0)
    with pytest.raises(ValueError, match="distinct"):
        sch.modulo_assignment(["a", "a"])
    with pytest.raises(ValueError, match="keys"):
        sch.remapped_fraction([], str, str)


# --- retries with backoff ---------------------------------------------------------------------


def test_retries_without_jitter_storm_in_lockstep_and_jitter_spreads_them():
    kwargs = {"outage_s": 10.0, "max_attempts": 8, "base_delay_s": 0.5}
    lockstep = sch.simulate_retries(1000, jitter="none", **kwargs)
    jittered = sch.simulate_retries(1000, jitter="full", **kwargs)
    assert lockstep.peak_load == 1000 and jittered.peak_load < 400
    # without jitter everyone retries at 0.5, 1.5, 3.5, 7.5 (failures) and 15.5 (success)
    assert lockstep.success_rate == 1 and np.all(lockstep.added_latency_s == 15.5)
    assert np.array_equal(np.unique(lockstep.retry_times), [0.5, 1.5, 3.5, 7.5, 15.5])
    assert lockstep.retry_times.size == 5 * 1000
    assert jittered.added_latency_s.min() >= 10.0 and 0.9 < jittered.success_rate < 1


@pytest.mark.parametrize("jitter", sch.JITTERS)
def test_more_attempts_never_lower_the_success_rate(jitter):
    rates = [sch.simulate_retries(500, outage_s=20.0, max_attempts=m, base_delay_s=0.5, jitter=jitter, seed=4)
             .success_rate for m in range(1, 12)]
    assert np.all(np.diff(rates) >= 0) and rates[0] == 0 and rates[-1] == 1


def test_a_short_outage_loses_no_one():
    result = sch.simulate_retries(100, outage_s=0.4, max_attempts=2, base_delay_s=0.5, jitter="none")
    assert result.success_rate == 1 and np.all(result.added_latency_s == 0.5)
    none = sch.simulate_retries(100, outage_s=0.4, max_attempts=1, base_delay_s=0.5)
    assert none.success_rate == 0 and none.peak_load == 0 and none.added_latency_s.size == 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"jitter": "equal"}, "jitter"), ({"max_attempts": 0}, "max_attempts"), ({"outage_s": 0}, "outage_s"),
    ({"base_delay_s": -1.0}, "base_delay_s"), ({"bin_s": 0}, "bin_s"),
])
def test_simulate_retries_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sch.simulate_retries(10, **{"outage_s": 1.0, "max_attempts": 3, "base_delay_s": 0.1, **kwargs})


# --- headroom ---------------------------------------------------------------------------------


def test_dropped_fraction_on_a_worked_example():
    assert sch.dropped_fraction(np.array([1, 2, 3, 4]), 2) == pytest.approx(3 / 10)
    assert sch.dropped_fraction(np.array([1, 2, 3, 4]), 0) == 1.0


def test_more_headroom_never_drops_more_and_enough_drops_nothing():
    load = sch.make_bursty_load(20_000, mean=100, burst_probability=0.05, burst_factor=3.0, seed=0)
    assert load.mean() == pytest.approx(100, rel=0.02)
    assert (load > 200).mean() == pytest.approx(0.05, abs=0.01)  # the bursts, and nothing else
    drops = [sch.dropped_fraction(load, 100 * (1 + headroom)) for headroom in np.linspace(0, 3, 31)]
    assert np.all(np.diff(drops) <= 0) and drops[0] > 0.05
    assert sch.dropped_fraction(load, load.max()) == 0


@pytest.mark.parametrize(("load", "capacity", "message"), [
    (np.array([]), 1.0, "load"), (np.array([1.0, -1.0]), 1.0, "load"), (np.array([1.0]), -1.0, "capacity"),
])
def test_dropped_fraction_rejects_bad_input(load, capacity, message):
    with pytest.raises(ValueError, match=message):
        sch.dropped_fraction(load, capacity)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"burst_probability": 1.5}, "burst_probability"), ({"burst_factor": 0.5}, "burst_factor"),
    ({"mean": 0}, "mean"),
])
def test_make_bursty_load_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sch.make_bursty_load(10, **kwargs)
