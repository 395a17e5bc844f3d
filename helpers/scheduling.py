"""Scheduling and serving at scale, simulated: GPU-cluster job scheduling (SimPy), load balancing,
consistent hashing, retries with exponential backoff and jitter, and capacity headroom.

Small simulations rather than formulas, because the interview answers are about what queues do
under load: head-of-line blocking, backfilling, herd behaviour and bursts. Everything is
deterministic given ``seed``; the tests check conservation laws and the orderings the notebook shows.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import numbers
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import simpy

from helpers.validation import check_int

CLUSTER_POLICIES = ("fifo", "sjf", "best_fit")
BALANCER_POLICIES = ("round_robin", "random", "least_connections", "power_of_two")
JITTERS = ("full", "none")
_EPS = 1e-9  # memory sums are compared with this slack, so 0.1 + 0.2 fits in 0.3


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    is_number = not isinstance(value, bool) and isinstance(value, numbers.Real) and np.isfinite(value)
    if not is_number or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


# --- GPU-cluster scheduling -------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """A job that runs on one node for ``duration`` and holds ``memory_gb`` of that node's memory."""

    id: int
    arrival: float
    duration: float
    memory_gb: float


@dataclass
class ClusterResult:
    """Outcome of ``simulate_cluster``; arrays are in the order of the job list given."""

    waits: np.ndarray  # start - arrival
    starts: np.ndarray
    ends: np.ndarray
    nodes: np.ndarray  # index of the node each job ran on
    makespan: float  # last end - first arrival
    utilization: float  # memory x time used / memory x time available over the makespan

    @property
    def mean_wait(self) -> float:
        """Average of start - arrival over all jobs."""
        return float(self.waits.mean())

    @property
    def p95_wait(self) -> float:
        """95th percentile of start - arrival: the tail that users complain about."""
        return float(np.percentile(self.waits, 95))


def make_jobs(
    n: int,
    *,
    seed: int = 0,
    arrival_rate: float = 1.0,
    mean_duration: float = 8.0,
    duration_sigma: float = 1.0,
    memory_choices: Sequence[float] = (10, 20, 40, 80),
) -> list[Job]:
    """``n`` jobs with Poisson arrivals (``arrival_rate`` per time unit), lognormal durations of mean
    ``mean_duration`` (``duration_sigma`` sets the tail) and memory drawn uniformly from ``memory_choices``.

    The defaults offer 4 x 80 GB nodes about 94% of their memory-time (1.0 x 8 x 37.5 GB / 320 GB), so
    jobs queue and the 80 GB jobs block FIFO's queue often.
    """
    check_int("n", n)
    _check_positive("arrival_rate", arrival_rate)
    _check_positive("mean_duration", mean_duration)
    _check_positive("duration_sigma", duration_sigma, allow_zero=True)
    if len(memory_choices) == 0 or any(not m > 0 for m in memory_choices):
        raise ValueError(f"memory_choices must be a non-empty sequence of sizes > 0, got {memory_choices!r}")
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / arrival_rate, n))
    mu = np.log(mean_duration) - duration_sigma**2 / 2  # lognormal mean = exp(mu + sigma^2 / 2)
    durations = rng.lognormal(mu, duration_sigma, n)
    memory = rng.choice(np.asarray(memory_choices, dtype=float), n)
    columns = zip(arrivals, durations, memory, strict=True)
    return [Job(i, float(a), float(d), float(m)) for i, (a, d, m) in enumerate(columns)]


def _check_jobs(jobs: Sequence[Job], node_memory_gb: float) -> None:
    if len(jobs) == 0:
        raise ValueError("jobs must be a non-empty sequence of Job")
    for job in jobs:
        finite = all(math.isfinite(value) for value in (job.arrival, job.duration, job.memory_gb))
        if not finite or job.arrival < 0 or job.duration <= 0 or job.memory_gb <= 0:
            raise ValueError(f"job {job.id} needs a finite arrival >= 0, duration > 0, memory_gb > 0: {job}")
        if job.memory_gb > node_memory_gb + _EPS:
            raise ValueError(f"job {job.id} needs {job.memory_gb} GB, more than a node's {node_memory_gb} GB")


def _first_fit(memory: float, free: list[float]) -> int | None:
    return next((node for node, room in enumerate(free) if memory <= room + _EPS), None)


def _best_fit(memory: float, free: list[float]) -> int | None:
    fitting = [(room - memory, node) for node, room in enumerate(free) if memory <= room + _EPS]
    return min(fitting)[1] if fitting else None


def _pick_fifo(queue: list[Job], free: list[float]) -> tuple[int, int] | None:
    """The head of the queue on its first-fit node, or nothing: no one may pass the head."""
    node = _first_fit(queue[0].memory_gb, free)
    return None if node is None else (0, node)


def _pick_sjf(queue: list[Job], free: list[float]) -> tuple[int, int] | None:
    """The shortest waiting job that fits on some node, on its first-fit node."""
    fitting = [(job.duration, position) for position, job in enumerate(queue)
               if _first_fit(job.memory_gb, free) is not None]
    if not fitting:
        return None
    position = min(fitting)[1]
    return position, _first_fit(queue[position].memory_gb, free)


def _pick_best_fit(queue: list[Job], free: list[float]) -> tuple[int, int] | None:
    """The earliest-arrived waiting job that fits, on the node it leaves least memory free on."""
    for position, job in enumerate(queue):
        node = _best_fit(job.memory_gb, free)
        if node is not None:
            return position, node
    return None


_PICKERS = {"fifo": _pick_fifo, "sjf": _pick_sjf, "best_fit": _pick_best_fit}


class _Cluster:
    """SimPy model: an arrival process feeds a queue; a decision runs at every arrival and completion."""

    def __init__(self, jobs: Sequence[Job], n_nodes: int, node_memory_gb: float, policy: str) -> None:
        self.env = simpy.Environment()
        self.jobs = jobs
        self.free = [float(node_memory_gb)] * n_nodes
        self.pick = _PICKERS[policy]
        self.queue: list[int] = []  # indices of the waiting jobs, in arrival order
        self.starts = np.full(len(jobs), np.nan)
        self.nodes = np.full(len(jobs), -1)

    def run(self) -> None:
        """Simulate until every job has finished."""
        self.env.process(self._arrivals())
        self.env.run()

    def _arrivals(self) -> Iterator[simpy.Event]:
        for i in sorted(range(len(self.jobs)), key=lambda i: self.jobs[i].arrival):  # ties keep list order
            yield self.env.timeout(self.jobs[i].arrival - self.env.now)
            self.queue.append(i)
            self._schedule()

    def _schedule(self) -> None:
        while self.queue and (choice := self.pick([self.jobs[i] for i in self.queue], self.free)) is not None:
            position, node = choice
            i = self.queue.pop(position)
            self.free[node] -= self.jobs[i].memory_gb
            self.starts[i] = self.env.now
            self.nodes[i] = node
            self.env.process(self._execute(self.jobs[i], node))

    def _execute(self, job: Job, node: int) -> Iterator[simpy.Event]:
        yield self.env.timeout(job.duration)
        self.free[node] += job.memory_gb
        self._schedule()


def simulate_cluster(
    jobs: Sequence[Job], *, n_nodes: int, node_memory_gb: float, policy: str
) -> ClusterResult:
    """Run ``jobs`` on ``n_nodes`` nodes of ``node_memory_gb`` each under a scheduling policy.

    Several jobs may share a node while their memory fits. Decisions happen at arrivals and completions:
    ``"fifo"`` starts jobs in strict arrival order (a head that does not fit blocks everyone behind it);
    ``"sjf"`` repeatedly starts the shortest waiting job that fits anywhere (first-fit node), so small
    jobs backfill; ``"best_fit"`` repeatedly starts the earliest-arrived job that fits, on the node it
    leaves least free memory on (best-fit bin packing, which keeps whole nodes free for big jobs).
    """
    check_int("n_nodes", n_nodes)
    _check_positive("node_memory_gb", node_memory_gb)
    _check_choice("policy", policy, CLUSTER_POLICIES)
    _check_jobs(jobs, node_memory_gb)
    cluster = _Cluster(jobs, n_nodes, node_memory_gb, policy)
    cluster.run()
    arrivals = np.array([job.arrival for job in jobs])
    durations = np.array([job.duration for job in jobs])
    memory = np.array([job.memory_gb for job in jobs])
    ends = cluster.starts + durations
    makespan = float(ends.max() - arrivals.min())
    utilization = float((memory * durations).sum() / (n_nodes * node_memory_gb * makespan))
    waits = cluster.starts - arrivals
    return ClusterResult(waits, cluster.starts, ends, cluster.nodes, makespan, utilization)


# --- load balancing ---------------------------------------------------------------------------


def make_requests(
    n: int, *, n_servers: int, load: float = 0.85, mean_service_s: float = 1.0, service_sigma: float = 1.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` requests as (arrival times, service times): Poisson arrivals at the rate that gives each of
    ``n_servers`` servers a utilization of ``load``, and lognormal service times of mean ``mean_service_s``
    (``service_sigma`` = 1.5: a few requests cost tens of times the median)."""
    check_int("n", n)
    check_int("n_servers", n_servers)
    _check_positive("mean_service_s", mean_service_s)
    _check_positive("service_sigma", service_sigma, allow_zero=True)
    if not 0 < load < 1:
        raise ValueError(f"load must lie in (0, 1) for the queues to be stable, got {load!r}")
    rng = np.random.default_rng(seed)
    rate = load * n_servers / mean_service_s
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    mu = np.log(mean_service_s) - service_sigma**2 / 2
    return arrivals, rng.lognormal(mu, service_sigma, n)


def _route(policy: str, connections: list[int], request: int, rng: np.random.Generator) -> int:
    n_servers = len(connections)
    if policy == "round_robin":
        return request % n_servers
    if policy == "random":
        return int(rng.integers(n_servers))
    if policy == "least_connections":
        fewest = min(connections)
        return int(rng.choice([s for s, c in enumerate(connections) if c == fewest]))
    if n_servers == 1:  # power_of_two with nothing to choose from
        return 0
    a, b = rng.choice(n_servers, 2, replace=False)
    return int(a if connections[a] <= connections[b] else b)


def simulate_load_balancer(
    service_times: np.ndarray, arrivals: np.ndarray, *, n_servers: int, policy: str, seed: int = 0
) -> np.ndarray:
    """Latency (queueing wait + service) of every request when a balancer routes each arrival to one of
    ``n_servers`` FIFO servers that serve one request at a time.

    Policies: ``"round_robin"``, ``"random"``, ``"least_connections"`` (fewest requests queued or in
    service, ties at random) and ``"power_of_two"`` (the less busy of two servers sampled at random).
    The balancer sees connection counts, never service times.
    """
    service_times = np.asarray(service_times, dtype=float)
    arrivals = np.asarray(arrivals, dtype=float)
    if service_times.ndim != 1 or service_times.shape != arrivals.shape or len(arrivals) == 0:
        raise ValueError("service_times and arrivals must be non-empty 1-D arrays of the same length")
    if (service_times < 0).any() or np.any(np.diff(arrivals) < 0) or not np.isfinite(arrivals).all():
        raise ValueError("service_times must be >= 0 and arrivals finite and sorted")
    check_int("n_servers", n_servers)
    _check_choice("policy", policy, BALANCER_POLICIES)
    rng = np.random.default_rng(seed)
    finishes: list[deque[float]] = [deque() for _ in range(n_servers)]  # per server, in completion order
    latencies = np.empty(len(arrivals))
    for request, (arrival, service) in enumerate(zip(arrivals, service_times, strict=True)):
        for queue in finishes:
            while queue and queue[0] <= arrival:
                queue.popleft()
        server = _route(policy, [len(queue) for queue in finishes], request, rng)
        start = max(arrival, finishes[server][-1]) if finishes[server] else arrival
        finishes[server].append(start + service)
        latencies[request] = (start - arrival) + service  # exactly the service time when nothing waits
    return latencies


# --- consistent hashing -----------------------------------------------------------------------


def stable_hash(text: str) -> int:
    """A 64-bit hash of ``text`` that is the same in every process (unlike Python's salted ``hash``)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class ConsistentHashRing:
    """Nodes placed at ``replicas`` pseudo-random points each on a hash ring; a key belongs to the first
    node point clockwise from its hash. Adding or removing a node moves only the keys of its arcs."""

    def __init__(self, nodes: Iterable[str], *, replicas: int = 100) -> None:
        check_int("replicas", replicas)
        self.replicas = replicas
        self._points: list[int] = []
        self._owners: list[str] = []
        self._nodes: set[str] = set()
        for node in nodes:
            self.add(node)

    @property
    def nodes(self) -> list[str]:
        """The nodes on the ring, sorted."""
        return sorted(self._nodes)

    def add(self, node: str) -> None:
        """Put ``node`` on the ring at its ``replicas`` points."""
        if node in self._nodes:
            raise ValueError(f"node {node!r} is already on the ring")
        self._nodes.add(node)
        for replica in range(self.replicas):
            point = stable_hash(f"{node}#{replica}")
            position = bisect.bisect_left(self._points, point)
            self._points.insert(position, point)
            self._owners.insert(position, node)

    def remove(self, node: str) -> None:
        """Take ``node`` and all its points off the ring."""
        if node not in self._nodes:
            raise ValueError(f"node {node!r} is not on the ring")
        self._nodes.remove(node)
        kept = [(p, o) for p, o in zip(self._points, self._owners, strict=True) if o != node]
        self._points = [p for p, _ in kept]
        self._owners = [o for _, o in kept]

    def node_for(self, key: str) -> str:
        """The node that owns ``key``."""
        if not self._points:
            raise ValueError("the ring has no nodes")
        position = bisect.bisect_right(self._points, stable_hash(key)) % len(self._points)
        return self._owners[position]


def modulo_assignment(nodes: Sequence[str]) -> Callable[[str], str]:
    """The naive scheme: ``key -> nodes[hash(key) % len(nodes)]``, for comparison with the ring."""
    nodes = list(nodes)
    if len(nodes) == 0 or len(set(nodes)) != len(nodes):
        raise ValueError(f"nodes must be a non-empty sequence of distinct names, got {nodes!r}")
    return lambda key: nodes[stable_hash(key) % len(nodes)]


def remapped_fraction(
    keys: Sequence[str], before: Callable[[str], str], after: Callable[[str], str]
) -> float:
    """Fraction of ``keys`` that ``after`` assigns to a different node than ``before`` did. Pass two
    assignments that exist side by side (two rings, not one ring mutated between the calls)."""
    if len(keys) == 0:
        raise ValueError("keys must be non-empty")
    return sum(before(key) != after(key) for key in keys) / len(keys)


# --- retries with backoff ---------------------------------------------------------------------


@dataclass
class RetryResult:
    """Outcome of ``simulate_retries``."""

    success_rate: float  # fraction of clients that got through within max_attempts
    added_latency_s: np.ndarray  # time of success, for the clients that succeeded
    peak_load: int  # most retries sent in one bin [j * bin_s, (j + 1) * bin_s); the t=0 attempts excluded
    retry_times: np.ndarray  # send time of every retry, for a histogram


def _backoff_delays(n_clients: int, max_attempts: int, base_delay_s: float, jitter: str,
                    rng: np.random.Generator) -> np.ndarray:
    """Delays before retries 1 .. max_attempts - 1, shape (clients, retries). Drawn one retry at a time,
    so a run with more attempts shares the earlier delays of a run with fewer (same seed)."""
    delays = np.empty((n_clients, max_attempts - 1))
    for k in range(max_attempts - 1):
        cap = base_delay_s * 2**k
        delays[:, k] = rng.uniform(0, cap, n_clients) if jitter == "full" else cap
    return delays


def simulate_retries(
    n_clients: int, *, outage_s: float, max_attempts: int, base_delay_s: float, jitter: str = "full",
    seed: int = 0, bin_s: float = 0.1,
) -> RetryResult:
    """Every client sends a request at t=0, inside an outage lasting ``outage_s``; a request succeeds
    if sent at or after the outage ends. After failed attempt k (k = 0, 1, ...) a client waits
    ``base_delay_s * 2**k`` (``jitter="none"``) or uniform(0, that) (``"full"``, as in the AWS
    Architecture Blog's "Exponential Backoff and Jitter"), for at most ``max_attempts`` attempts in all.
    Requests take no time; only the send times matter."""
    check_int("n_clients", n_clients)
    check_int("max_attempts", max_attempts)
    _check_positive("outage_s", outage_s)
    _check_positive("base_delay_s", base_delay_s)
    _check_positive("bin_s", bin_s)
    _check_choice("jitter", jitter, JITTERS)
    rng = np.random.default_rng(seed)
    delays = _backoff_delays(n_clients, max_attempts, base_delay_s, jitter, rng)
    send_times = np.cumsum(np.concatenate([np.zeros((n_clients, 1)), delays], axis=1), axis=1)
    after_outage = send_times >= outage_s  # column 0, the first attempt at t=0, is always inside
    succeeded = after_outage.any(axis=1)
    first_success = np.where(succeeded, after_outage.argmax(axis=1), max_attempts - 1)
    sent = np.arange(max_attempts)[None, :] <= first_success[:, None]  # no sends after a success
    sent[:, 0] = False  # count retries only
    retry_times = send_times[sent]
    peak = int(np.bincount((retry_times // bin_s).astype(int)).max()) if retry_times.size else 0
    latency = send_times[succeeded, first_success[succeeded]]
    return RetryResult(float(succeeded.mean()), latency, peak, np.sort(retry_times))


# --- headroom ---------------------------------------------------------------------------------


def make_bursty_load(
    n_steps: int, *, mean: float = 100.0, burst_probability: float = 0.05, burst_factor: float = 3.0,
    seed: int = 0,
) -> np.ndarray:
    """Requests per time step: Poisson counts whose rate jumps to ``burst_factor`` times the base rate
    in a fraction ``burst_probability`` of the steps, the base chosen so the long-run mean is ``mean``."""
    check_int("n_steps", n_steps)
    _check_positive("mean", mean)
    if not 0 <= burst_probability <= 1:
        raise ValueError(f"burst_probability must lie in [0, 1], got {burst_probability!r}")
    if isinstance(burst_factor, bool) or not isinstance(burst_factor, numbers.Real) or not burst_factor >= 1:
        raise ValueError(f"burst_factor must be a number >= 1, got {burst_factor!r}")
    rng = np.random.default_rng(seed)
    base = mean / (1 + burst_probability * (burst_factor - 1))
    bursts = rng.random(n_steps) < burst_probability
    return rng.poisson(np.where(bursts, base * burst_factor, base)).astype(float)


def dropped_fraction(load: np.ndarray, capacity: float) -> float:
    """Fraction of all requests dropped when each time step serves at most ``capacity`` and sheds the
    rest (no queueing between steps): sum of max(load - capacity, 0) over sum of load."""
    load = np.asarray(load, dtype=float)
    if load.ndim != 1 or load.size == 0 or (load < 0).any() or not load.sum() > 0:
        raise ValueError("load must be a non-empty 1-D array of non-negative counts with a positive total")
    _check_positive("capacity", capacity, allow_zero=True)
    return float(np.clip(load - capacity, 0, None).sum() / load.sum())
