"""The request-facing side of governance: who is calling, what they may use, what it costs.

Route handlers stay thin: ``Gate.caller`` authenticates, ``Gate.allow`` checks the model,
``Gate.meter`` reserves the worst case before the upstream call, and the returned ``Meter``
settles the actual cost (or what a cancelled stream used) afterwards. Without a store the gate
only checks the master key, and its meters do nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import GatewayError
from ._limits import Limit, LimiterUnavailable, Limits, RateLimited, Ticket, rate_headers
from ._outcomes import NO_LIMITS, BudgetExceeded, KeyView, RateLimits, StoreUnavailable
from ._policy import Price, text_chars, to_usd

if TYPE_CHECKING:
    from ._store import Store

log = logging.getLogger("ocilm.gateway")
AUTH_CACHE_SECONDS = 0.5  # a revoked key stops working on every replica within this (plus a query)


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the master key (``token`` None) or a virtual key."""

    token: str | None = None
    team_id: str | None = None
    models: tuple[str, ...] = ()  # the names it may use; empty: every name
    has_budget: bool = False
    limits: RateLimits = NO_LIMITS
    team_limits: RateLimits = NO_LIMITS

    def rate_limits(self, model: str) -> tuple[Limit, ...]:
        """Every rate limit a request for ``model`` touches: its key's, its team's, and its key's
        for that model."""
        if self.token is None or not (self.limits.any or self.team_limits.any):
            return ()
        key, team = self.limits, self.team_limits
        found = [Limit("key", f"key:{self.token}", key.rpm, key.tpm, key.parallel)]
        if self.team_id:
            found.append(Limit("team", f"team:{self.team_id}", team.rpm, team.tpm, team.parallel))
        if model in key.model_rpm or model in key.model_tpm:
            found.append(Limit("model", f"key:{self.token}:model:{model}", key.model_rpm.get(model), key.model_tpm.get(model)))
        return tuple(limit for limit in found if limit.counted)

    @property
    def is_master(self) -> bool:
        return self.token is None


MASTER = Caller()


def presented_key(headers: Any) -> str:
    """``Authorization: Bearer <key>`` (OpenAI clients) or ``x-api-key: <key>`` (Anthropic's)."""
    scheme, _, given = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given.strip():
        return given.strip()
    return headers.get("x-api-key", "").strip()


def _unauthorized(message: str) -> GatewayError:
    return GatewayError(401, message, kind="authentication_error", code="invalid_api_key")


def unavailable() -> GatewayError:
    return GatewayError(503, "the gateway's key and budget store is unavailable; try again shortly", kind="api_error",
                        code="governance_unavailable", headers={"retry-after": "1"})  # fmt: skip


def rate_limited(exc: RateLimited) -> GatewayError:
    """A 429 naming the full limit, with when to retry (OpenAI's SDK honours ``Retry-After``)."""
    what = {"key": "this key's", "team": "its team's", "model": "this key's per-model", "deployment": "every deployment's"}[exc.scope]
    unit = {"requests": "requests per minute", "tokens": "tokens per minute", "parallel": "requests in flight"}[exc.kind]
    wait = max(1, math.ceil(exc.retry_after))
    headers = {"retry-after": str(wait)}
    if exc.kind == "requests":
        headers.update(rate_headers((exc.limit, 0, exc.retry_after), None))
    elif exc.kind == "tokens":
        headers.update(rate_headers(None, (exc.limit, 0, exc.retry_after)))
    return GatewayError(429, f"rate limit reached: {what} limit of {exc.limit} {unit} ({exc.scope}); retry in {wait} s",
                        kind="rate_limit_error", code="rate_limit_exceeded", headers=headers)  # fmt: skip


def limits_unavailable() -> GatewayError:
    return GatewayError(503, "the gateway's rate-limit counters are unreachable; try again shortly", kind="api_error",
                        code="rate_limit_unavailable", headers={"retry-after": "1"})  # fmt: skip


class Gate:
    def __init__(self, master_key: str | None, store: Store | None = None, *, hold_seconds: float = 600.0, strict: bool = True,
                 limits: Limits | None = None, limits_refused: str | None = None) -> None:  # fmt: skip
        self._master_digest = hashlib.sha256(master_key.encode()).digest() if master_key is not None else None
        self.store = store
        self.limits = limits
        self.limits_refused = limits_refused  # why keys may not have rate limits here (several replicas, no Redis)
        self.hold_seconds = hold_seconds
        self.strict = strict
        self._cache: dict[str, tuple[float, KeyView | None]] = {}
        self._looking_up: dict[str, asyncio.Future[KeyView | None]] = {}
        self._generation = 0
        self.observer: Any = None  # told when the store stops or starts answering
        self.alerts: Any = None  # BudgetAlerts, when webhooks are configured
        self._store_up = True
        self._settling: set[asyncio.Task[Any]] = set()

    def store_answered(self, up: bool) -> None:
        if up != self._store_up:
            self._store_up = up
            log.warning("governance store %s", "answers again" if up else "is unavailable: governed requests get 503")
            if self.observer is not None:
                self.observer.health(store=up)

    # ------------------------------------------------------------------ who

    def is_master(self, key: str) -> bool:
        if self._master_digest is None:
            return False
        return hmac.compare_digest(hashlib.sha256(key.encode()).digest(), self._master_digest)

    async def caller(self, headers: Any) -> Caller:
        """The caller behind a request's key, or a 401 (503 if the store cannot say)."""
        if self._master_digest is None:
            return MASTER  # no master key: an open gateway on loopback
        key = presented_key(headers)
        if not key:
            raise _unauthorized("missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'")
        if self.is_master(key):
            return MASTER
        if self.store is None:
            raise _unauthorized("wrong API key")
        view = await self._view(key)
        if view is None:
            raise _unauthorized("wrong API key: not the master key nor a current virtual key")
        if view.blocked:
            raise _unauthorized(f"key {view.token} is blocked")
        if view.expires_at is not None and view.expires_at <= time.time():
            raise _unauthorized(f"key {view.token} has expired")
        return Caller(view.token, view.team_id, view.models or view.team_models, view.has_budget, view.limits, view.team_limits)

    async def _view(self, key: str) -> KeyView | None:
        digest = hashlib.sha256(key.encode()).hexdigest()  # the cache never holds a secret
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < AUTH_CACHE_SECONDS:
            return cached[1]
        # One lookup per key at a time: when a busy key's entry expires, its concurrent requests
        # wait for the same query instead of each sending one (a burst of them stalls the loop).
        pending = self._looking_up.get(digest)
        if pending is None:
            pending = self._looking_up[digest] = asyncio.ensure_future(self._look_up(key, digest, now))
            pending.add_done_callback(lambda done: self._looking_up.pop(digest) if self._looking_up.get(digest) is done else None)
        try:
            view = await asyncio.shield(pending)
        except StoreUnavailable:
            self.store_answered(False)
            raise unavailable() from None
        self.store_answered(True)
        return view

    async def _look_up(self, key: str, digest: str, now: float) -> KeyView | None:
        assert self.store is not None
        generation = self._generation
        view = await self.store.authenticate(key)
        if generation == self._generation:  # not read before this process changed a key
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, view)
        return view

    def forget(self) -> None:
        """Drop cached key lookups (this process changed a key); lookups in flight started
        before the change, so later requests do not wait for them."""
        self._cache.clear()
        self._looking_up.clear()
        self._generation += 1

    def allow(self, caller: Caller, model: str, resolved: str) -> None:
        """403 unless the key may use ``model`` (as asked, or the name an alias resolves to)."""
        if caller.models and model not in caller.models and resolved not in caller.models:
            raise GatewayError(403, f"key {caller.token} may not use model {model!r}; it may use: {', '.join(caller.models)}",
                               kind="permission_error", param="model", code="model_not_allowed")  # fmt: skip

    # ------------------------------------------------------------------ what it costs

    async def meter(self, caller: Caller, route: str, model: str, deployments: list[Any],
                    worst_case: Callable[[Any], tuple[int, int]], request_id: str) -> Meter:  # fmt: skip
        """Reserve a request's worst case (``worst_case(deployment)``: its input and output
        tokens there, at that deployment's price; the dearest deployment counts) against every
        budget it touches; 429 if one has no room. ``request_id`` names it in the spend log (the
        same id as in its access line)."""
        if self.store is None:
            return _UNMETERED
        meter = Meter(self, caller, request_id, route, model)
        rate_limits = caller.rate_limits(model) if self.limits is not None else ()
        if rate_limits:
            assert self.limits is not None
            tokens = max(sum(worst_case(d)) for d in deployments)
            try:
                meter.ticket = await self.limits.admit(meter.request_id, rate_limits, tokens)
            except RateLimited as exc:
                raise rate_limited(exc) from None
            except LimiterUnavailable:
                raise limits_unavailable() from None
        try:
            await self._hold(meter, caller, model, deployments, worst_case)
        except BaseException:
            if self.limits is not None:
                await self.limits.finish(meter.ticket, 0)
            raise
        return meter

    async def _hold(self, meter: Meter, caller: Caller, model: str, deployments: list[Any], worst_case: Callable[[Any], tuple[int, int]]) -> None:
        if caller.has_budget:
            prices = [d.price for d in deployments]
            if any(p is None for p in prices) and self.strict:
                raise GatewayError(400, f"model {model!r} has no price (no built-in OCI price for its model, or a dedicated endpoint, "
                                   "which OCI bills by the hour): set input_cost_per_token and output_cost_per_token on its "
                                   "deployments, so a key with a budget can use it", param="model", code="price_unknown")  # fmt: skip
            estimate = max((d.price.nano(*worst_case(d)) for d in deployments if d.price is not None), default=0)
            assert caller.token is not None and self.store is not None
            try:
                await self.store.reserve(meter.request_id, caller.token, caller.team_id, estimate, self.hold_seconds)
            except StoreUnavailable:
                self.store_answered(False)
                raise unavailable() from None
            except BudgetExceeded as exc:
                raise GatewayError(
                    429, f"{exc.scope} budget exceeded: ${to_usd(exc.committed):.6f} spent and ${to_usd(exc.held):.6f} held of "
                    f"${to_usd(exc.max_budget):.6f}; this request may cost up to ${to_usd(exc.estimate):.6f}",
                    kind="budget_exceeded", code="budget_exceeded", headers={"retry-after": "60"},
                ) from None  # fmt: skip

    def settle_later(self, meter: Meter, **result: Any) -> None:
        """Settle where the request can no longer wait (a cancelled stream): a task the
        shutdown drains."""
        self.later(meter.settle(**result))

    def later(self, work: Any) -> None:
        """Run ``work`` off the request's path, in a task the shutdown drains."""
        task = asyncio.ensure_future(work)
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def drain(self) -> None:
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)


class Meter:
    """One request's spend: settled once, with its log row."""

    def __init__(self, gate: Gate, caller: Caller, request_id: str, route: str, model: str) -> None:
        self.gate, self.caller, self.request_id, self.route, self.model = gate, caller, request_id, route, model
        self.started = time.time()
        self.settled = False
        self.cost_usd: float | None = None
        self.ticket: Ticket | None = None

    @property
    def rate_headers(self) -> dict[str, str]:
        return self.ticket.headers if self.ticket is not None else {}

    async def settle(self, *, deployment: Any = None, usage: dict[str, Any] | None = None, status: int = 200,
                     estimated: tuple[int, int] | None = None) -> float | None:  # fmt: skip
        """Record the request (tokens from ``usage``, or ``estimated`` for a cut stream) and
        release its hold; returns the cost in USD (None when its price is unknown)."""
        store = self.gate.store
        if store is None or self.settled:
            return self.cost_usd
        self.settled = True
        if usage:
            input_tokens, output_tokens = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        else:
            input_tokens, output_tokens = estimated or (0, 0)
        if self.ticket is not None and self.gate.limits is not None:
            used = input_tokens + output_tokens if (usage or estimated) else (0 if status >= 400 else None)
            self.gate.later(self.gate.limits.finish(self.ticket, used))  # nothing the reply waits for
        price: Price | None = deployment.price if deployment is not None else None
        if status >= 400 and not estimated:
            cost: int | None = 0  # refused or failed before any output: nothing to bill
        else:
            cost = price.nano(input_tokens, output_tokens) if price is not None else None
        log_row = {
            "request_id": self.request_id, "token": self.caller.token, "team_id": self.caller.team_id, "model": self.model,
            "deployment": deployment.model if deployment is not None else "", "route": self.route, "input_tokens": input_tokens,
            "output_tokens": output_tokens, "cost": cost, "status": status, "latency_ms": (time.time() - self.started) * 1000,
            "started_at": self.started,
        }  # fmt: skip
        try:
            await store.settle(log_row)
        except StoreUnavailable:
            self.settled = False
            self.gate.store_answered(False)
            raise unavailable() from None
        self.gate.store_answered(True)
        if cost and self.caller.has_budget and self.gate.alerts is not None:
            self.gate.later(self.gate.alerts.check(store, self.caller.token, self.caller.team_id))
        self.cost_usd = to_usd(cost)
        return self.cost_usd


_UNMETERED = Meter(Gate(None), MASTER, "", "", "")  # without a store: settles nothing


def cost_header(cost: float | None) -> dict[str, str]:
    """LiteLLM's response header for a request's cost, in USD."""
    return {} if cost is None else {"x-litellm-response-cost": f"{cost:.9f}".rstrip("0").rstrip(".") or "0"}


def output_token_ceiling(asked: Any, deployment: Any, default: int) -> int:
    """The most output one deployment may produce: the request's ``max_tokens`` clamped to the
    deployment's ``max_output_tokens``; without one, that limit or ``default`` (what the SDK sends
    when a caller sets no limit)."""
    limit = deployment.max_output_tokens
    if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0:
        return min(asked, limit) if limit else asked
    return limit or default


def stream_estimate(messages: Any, text_chars_delivered: int) -> tuple[int, int]:
    """Tokens a stream cut short used, when OCI's usage never came: about four characters a token
    for the prompt and for the text delivered (at least one token once a reply started)."""
    return math.ceil(text_chars(messages) / 4), max(1, math.ceil(text_chars_delivered / 4))


class StreamWatch:
    """Follows a relayed stream for its meter: the usage OCI reports at the end, the text
    delivered so far (to bill a stream cut short), and, when only the gateway asked for usage,
    keeps the usage chunk from the client."""

    def __init__(self, gate: Gate, meter: Meter, deployment: Any, messages: Any, keep_usage: bool, record: Any = None,
                 on_end: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.gate, self.meter, self.deployment, self.messages, self.keep_usage = gate, meter, deployment, messages, keep_usage
        self.record = record  # the request's RequestRecord: first token, tokens and cost
        self.on_end = on_end
        self.usage: dict[str, Any] | None = None
        self.chars = 0
        self.finished = False

    def see(self, batch: list[Any]) -> list[Any]:
        usage_seen = False
        for chunk in batch:
            usage = dict.get(chunk, "usage")
            if usage:
                self.usage = dict(usage)
                usage_seen = True
            for choice in dict.get(chunk, "choices") or ():
                text = dict.get(dict.get(choice, "delta") or {}, "content")
                if text:
                    if not self.chars and self.record is not None:
                        self.record.first_token_at = time.perf_counter()
                    self.chars += len(text)
        if self.keep_usage or not usage_seen:
            return batch
        kept = [chunk for chunk in batch if dict.get(chunk, "choices")]
        for chunk in kept:
            chunk.pop("usage", None)
        return kept

    def ended(self) -> None:
        """The relay is over, however it ended: the request's record can close."""
        if self.on_end is not None:
            self.on_end()

    def _result(self, status: int) -> dict[str, Any]:
        estimated = None if self.usage else stream_estimate(self.messages, self.chars)
        return {"deployment": self.deployment, "usage": self.usage, "estimated": estimated, "status": status}

    async def finish(self, status: int = 200) -> float | None:
        self.finished = True
        result = self._result(status)
        self._note(result)
        cost = await self.meter.settle(**result)
        if self.record is not None:
            self.record.cost = cost
        return cost

    def abandon(self) -> None:
        """The client left (or the relay broke) before the end: bill what was used, later."""
        if self.record is not None and not self.finished and not self.record.done:
            self._note(self._result(499))
            self.record.status = 499
        if not self.meter.settled and self.gate.store is not None:
            self.gate.settle_later(self.meter, **self._result(499))

    def _note(self, result: dict[str, Any]) -> None:
        if self.record is None:
            return
        if result["usage"]:
            self.record.usage(result["usage"])
        elif result["estimated"]:
            self.record.input_tokens, self.record.output_tokens = result["estimated"]
