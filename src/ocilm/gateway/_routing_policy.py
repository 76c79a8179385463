"""Routing decisions without I/O: which deployments of a model to try, in what order, and what
each outcome does to a deployment's state (in flight, latency, failures, cooldown).

LiteLLM's names and meanings (``router_settings``): ``routing_strategy`` (simple-shuffle,
least-busy, latency-based-routing, usage-based-routing-v2, cost-based-routing), ``order`` and
``weight`` on a deployment, ``allowed_fails`` and ``cooldown_time``. Where LiteLLM is known to
misbehave, this does not:
- weights count for every deployment (a deployment without ``weight`` weighs 1, not 0);
- a deployment that says how long to wait (``Retry-After``) cools that long, even alone in its
  group; a single deployment is circuit-broken like any other;
- a cooldown that ends lets exactly one probe through; its failure cools again, twice as long
  (up to ``MAX_COOLDOWN``), its success closes the breaker;
- ``order`` needs no other setting, and a failed deployment is never picked again for the
  same request;
- a caller's 400 never cools a deployment.
The state is this process's (the README says so); every decision here is a pure function of it.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

STRATEGIES = ("simple-shuffle", "least-busy", "latency-based-routing", "usage-based-routing-v2", "cost-based-routing")
DEFAULT_COOLDOWN = 5.0
MAX_COOLDOWN = 300.0
FAIL_WINDOW = 60.0
LATENCY_SAMPLES = 10


@dataclass(frozen=True, eq=False)
class RoutingSettings:
    strategy: str = "simple-shuffle"
    allowed_fails: int = 3  # failures in a minute a deployment may have before it cools
    cooldown_time: float = DEFAULT_COOLDOWN
    lowest_latency_buffer: float = 0.0  # latency-based: pick at random within (1 + buffer) of the fastest
    latency_ttl: float = 3600.0  # latency samples older than this are forgotten
    num_retries: int | None = None  # the last deployment's retries (None: the deployment's own max_retries)
    disable_cooldowns: bool = False
    tag_filtering: bool = False  # enable_tag_filtering
    tags_match_any: bool = True  # tag_filtering_match_any: any shared tag (False: every request tag on the deployment)
    retry_policy: dict[str, int] = field(default_factory=dict)  # {"RateLimitErrorRetries": 3, ...}: retries by error class
    model_retry_policy: dict[str, dict[str, int]] = field(default_factory=dict)  # model_group_retry_policy
    allowed_fails_policy: dict[str, int] = field(default_factory=dict)  # {"RateLimitErrorAllowedFails": 5, ...}


class NoDeploymentForTags(Exception):
    """No deployment of the model serves the request's tags, and none is tagged ``default``."""


def by_tags(deployments: list[Any], tags: tuple[str, ...], match_any: bool) -> list[Any]:
    """The deployments a request's tags may use. Tagged request: the deployments whose tags match
    (any shared tag, or all of the request's with ``match_any`` off); when none matches, those
    tagged ``default``; when none is, no deployment (NoDeploymentForTags). Untagged request: the
    untagged deployments and those tagged ``default`` (all of them when every deployment is
    tagged otherwise). Filtering comes before cooldowns: a tagged request never spills onto
    another tag's deployments because its own cool; it waits (429) or falls back."""
    defaults = [d for d in deployments if "default" in d.tags]
    if tags:
        wanted = set(tags)
        matching = [d for d in deployments if (wanted & set(d.tags) if match_any else wanted <= set(d.tags))]
        if matching:
            return matching
        if defaults:
            return defaults
        raise NoDeploymentForTags(", ".join(sorted(wanted)))
    plain = [d for d in deployments if not d.tags or "default" in d.tags]
    return plain or list(deployments)


@dataclass
class DeploymentState:
    in_flight: int = 0
    latencies: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))  # (at, seconds)
    ttfts: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    failures: deque[float] = field(default_factory=deque)  # when, this minute
    class_failures: dict[str, deque[float]] = field(default_factory=dict)  # by error class, for allowed_fails_policy
    cooldown_until: float = 0.0
    cooldowns_in_a_row: int = 0  # grows a repeated cooldown
    probing: bool = False  # a probe after a cooldown is in flight
    minute: int = -1
    requests_this_minute: int = 0
    tokens_this_minute: int = 0
    last_error: str = ""

    def cooling(self, now: float) -> bool:
        return now < self.cooldown_until

    def half_open(self, now: float) -> bool:
        """The cooldown ended and no success has closed the breaker yet."""
        return self.cooldowns_in_a_row > 0 and not self.cooling(now)

    def mean_latency(self, now: float, ttl: float, stream: bool) -> float | None:
        samples = [s for at, s in (self.ttfts if stream and self.ttfts else self.latencies) if now - at <= ttl]
        return sum(samples) / len(samples) if samples else None


class RoutingState:
    """Every deployment's state in this process, keyed by deployment id."""

    def __init__(self, settings: RoutingSettings) -> None:
        self.settings = settings
        self.states: dict[str, DeploymentState] = {}
        self.on_cooldown: Any = None  # told (deployment id, seconds, cooldowns in a row) when one starts: other replicas hear it
        self.remote_in_flight: dict[str, int] = {}  # other replicas' calls in flight, by deployment
        self.remote_latency: dict[str, float] = {}  # other replicas' recent mean latency, by deployment

    def apply_cooldown(self, deployment_id: str, until: float, in_a_row: int) -> None:
        """A cooldown another replica started (``until`` on this process's monotonic clock)."""
        state = self.of(deployment_id)
        if until > state.cooldown_until:
            state.cooldown_until = until
            state.cooldowns_in_a_row = max(state.cooldowns_in_a_row, in_a_row)

    def in_flight(self, deployment_id: str) -> int:
        return self.of(deployment_id).in_flight + self.remote_in_flight.get(deployment_id, 0)

    def of(self, deployment_id: str) -> DeploymentState:
        state = self.states.get(deployment_id)
        if state is None:
            state = self.states[deployment_id] = DeploymentState()
        return state

    # ---------------------------------------------------------------- choosing

    def candidates(self, deployments: list[Any], now: float, stream: bool = False, rng: random.Random | None = None) -> tuple[list[Any], float]:
        """The deployments to try, in order, and, when every one is cooling, the seconds until the
        first cools down (the list is then empty). Lower ``order`` first; within an order, the
        strategy decides; a half-open deployment gets one probe at a time."""
        chooser: Any = rng or random
        ready, waits = [], []
        for deployment in deployments:
            state = self.of(deployment.id)
            if not self.settings.disable_cooldowns and state.cooling(now):
                waits.append(state.cooldown_until - now)
            elif state.half_open(now) and state.probing:
                waits.append(0.5)  # its probe decides soon
            else:
                ready.append(deployment)
        if not ready:
            return [], min(waits, default=self.settings.cooldown_time)
        by_order: dict[int, list[Any]] = {}
        for deployment in ready:
            by_order.setdefault(deployment.order, []).append(deployment)
        ordered: list[Any] = []
        for order in sorted(by_order):
            ordered += self._rank(by_order[order], now, stream, chooser)
        return ordered, 0.0

    def _rank(self, group: list[Any], now: float, stream: bool, rng: Any) -> list[Any]:
        strategy = self.settings.strategy
        if len(group) == 1:
            return group
        if strategy == "least-busy":
            return sorted(group, key=lambda d: (self.in_flight(d.id), rng.random()))
        if strategy == "latency-based-routing":
            means = {d.id: _merged(self.of(d.id).mean_latency(now, self.settings.latency_ttl, stream), self.remote_latency.get(d.id))
                     for d in group}  # fmt: skip
            known = [m for m in means.values() if m is not None]
            fastest = min(known) if len(known) == len(group) else 0.0  # an unmeasured deployment is tried first
            limit = fastest * (1 + self.settings.lowest_latency_buffer)
            near = [d for d in group if (means[d.id] or 0.0) <= limit]
            rng.shuffle(near)
            rest = sorted((d for d in group if d not in near), key=lambda d: means[d.id] or 0.0)
            return near + rest
        if strategy == "usage-based-routing-v2":
            return sorted(group, key=lambda d: (self._usage_share(d, now), rng.random()))
        if strategy == "cost-based-routing":
            return sorted(group, key=lambda d: (_price_score(d), rng.random()))
        return _weighted_order(group, rng)

    def _usage_share(self, deployment: Any, now: float) -> float:
        state = self.of(deployment.id)
        if state.minute != int(now // 60):
            return 0.0
        shares = []
        if deployment.rpm:
            shares.append(state.requests_this_minute / deployment.rpm)
        if deployment.tpm:
            shares.append(state.tokens_this_minute / deployment.tpm)
        return max(shares) if shares else state.requests_this_minute / 1e9  # no limits: fewest requests

    # ---------------------------------------------------------------- outcomes

    def started(self, deployment_id: str, now: float) -> None:
        state = self.of(deployment_id)
        state.in_flight += 1
        if state.half_open(now):
            state.probing = True
        minute = int(now // 60)
        if state.minute != minute:
            state.minute, state.requests_this_minute, state.tokens_this_minute = minute, 0, 0
        state.requests_this_minute += 1

    def succeeded(self, deployment_id: str, now: float, seconds: float, ttft: float | None = None, tokens: int = 0) -> None:
        state = self.of(deployment_id)
        state.in_flight = max(0, state.in_flight - 1)
        state.latencies.append((now, seconds))
        if ttft is not None:
            state.ttfts.append((now, ttft))
        state.tokens_this_minute += tokens
        state.probing = False
        state.cooldowns_in_a_row = 0  # a success closes the breaker
        state.failures.clear()

    def ended(self, deployment_id: str) -> None:
        """A call that neither succeeded nor failed upstream (the caller left)."""
        state = self.of(deployment_id)
        state.in_flight = max(0, state.in_flight - 1)
        state.probing = False

    def failed(self, deployment_id: str, now: float, cools: bool, retry_after: float | None, why: str) -> float:
        """Record a failure; returns the cooldown it started (0: none). ``cools``: the failure is
        the deployment's (429, 5xx, timeout, no connection), not the caller's. ``why``: the
        error's class (LiteLLM's name): ``allowed_fails_policy`` may give it its own count, and
        may make a class that does not cool by default (a 400) cool."""
        state = self.of(deployment_id)
        state.in_flight = max(0, state.in_flight - 1)
        was_probe, state.probing = state.probing, False
        own_limit = self.settings.allowed_fails_policy.get(f"{why}AllowedFails")
        if (not cools and own_limit is None) or self.settings.disable_cooldowns:
            return 0.0
        state.last_error = why[:120]
        failures = state.failures if own_limit is None else state.class_failures.setdefault(why, deque())
        while failures and now - failures[0] > FAIL_WINDOW:
            failures.popleft()
        failures.append(now)
        limit = self.settings.allowed_fails if own_limit is None else own_limit
        if retry_after is None and not was_probe and len(failures) <= limit:
            return 0.0
        failures.clear()
        state.cooldowns_in_a_row += 1
        grown = self.settings.cooldown_time * 2 ** (state.cooldowns_in_a_row - 1)
        seconds = min(MAX_COOLDOWN, max(retry_after or 0.0, grown if retry_after is None else 0.0))
        state.cooldown_until = max(state.cooldown_until, now + seconds)
        state.failures.clear()
        if self.on_cooldown is not None:
            self.on_cooldown(deployment_id, seconds, state.cooldowns_in_a_row)
        return seconds


def _merged(own: float | None, remote: float | None) -> float | None:
    if own is None or remote is None:
        return own if remote is None else remote
    return (own + remote) / 2


def _weighted_order(group: list[Any], rng: Any) -> list[Any]:
    """A weighted random order (each deployment's chance to come first is its share of the
    weights): ``weight``, else ``rpm``, else ``tpm``, a deployment without it counting 1 (or the
    group's smallest rpm/tpm)."""
    if any(d.weight is not None for d in group):
        weights = [d.weight if d.weight is not None else 1.0 for d in group]
    elif any(d.rpm for d in group):
        smallest = min(d.rpm for d in group if d.rpm)
        weights = [float(d.rpm or smallest) for d in group]
    elif any(d.tpm for d in group):
        smallest = min(d.tpm for d in group if d.tpm)
        weights = [float(d.tpm or smallest) for d in group]
    else:
        shuffled = list(group)
        rng.shuffle(shuffled)
        return shuffled
    keyed = [(-math.log(max(rng.random(), 1e-300)) / w if w > 0 else math.inf, i) for i, w in enumerate(weights)]
    return [group[i] for _, i in sorted(keyed)]


def _price_score(deployment: Any) -> float:
    price = deployment.price
    return math.inf if price is None else price.input_per_token + price.output_per_token
