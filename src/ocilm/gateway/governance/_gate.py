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
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import GatewayError
from ._leases import Leases
from ._limits import Limit, LimiterUnavailable, Limits, RateLimited, Ticket, rate_headers
from ._outcomes import NO_LIMITS, BudgetExceeded, KeyView, RateLimits, StoreUnavailable
from ._policy import Price, to_usd
from ._tool_calls import as_column, responses_usage

if TYPE_CHECKING:
    from ._store import Store

log = logging.getLogger("ocilm.gateway")
AUTH_CACHE_SECONDS = 0.5  # a revoked key stops working on every replica within this (plus a query)
AUTH_CACHE_ENTRIES = 10_000  # keys (and, apart, unknown keys) remembered, the least recently used going first
LOOKUP_SECONDS = 5.0  # a key lookup the store has not answered by then is a store outage (503), not a hang


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the master key (``token`` None) or a virtual key."""

    token: str | None = None
    team_id: str | None = None
    models: tuple[str, ...] = ()  # the names it may use; empty: every name
    has_budget: bool = False
    limits: RateLimits = NO_LIMITS
    team_limits: RateLimits = NO_LIMITS
    guardrails: tuple[str, ...] = ()  # guardrails the key's and team's settings turn on
    cache: dict[str, Any] | None = None  # the response cache's say for this key (its team's, the key's over it)
    budget_mark: tuple[Any, ...] = ()  # the key's and team's budgets as last read
    object_permission: tuple[Any, Any] = (None, None)  # the key's and its team's (MCP servers and tools)

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


NO_MODEL = "\x00none"  # a key whose models and its team's do not overlap may use no model


def allowed_models(key_models: tuple[str, ...], team_models: tuple[str, ...]) -> tuple[str, ...]:
    """A key's models narrow its team's, never widen them: the names both allow (either list
    empty: the other's)."""
    if not key_models or not team_models:
        return key_models or team_models
    both = tuple(m for m in key_models if m in team_models)
    return both or (NO_MODEL,)


def presented_key(headers: Any) -> str:
    """``Authorization: Bearer <key>`` (OpenAI clients), ``x-api-key: <key>`` (Anthropic's), or
    LiteLLM's ``x-litellm-api-key`` (with or without ``Bearer``), which wins: it leaves
    ``Authorization`` to a header meant for someone else (an MCP upstream's)."""
    litellm = headers.get("x-litellm-api-key", "").strip()
    if litellm:
        scheme, _, given = litellm.partition(" ")
        return given.strip() if scheme.lower() == "bearer" and given.strip() else litellm
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


def never_fits(limits: tuple[Limit, ...], tokens: int) -> None:
    """A 400, not a 429 to retry forever, when a request's worst case is more than a token limit
    allows in a whole window: no wait would let it through, a smaller ``max_tokens`` may."""
    for limit in limits:
        if limit.tpm and tokens > limit.tpm:
            raise GatewayError(400, f"this request may use up to {tokens} tokens (its prompt counted a token a character, plus its "
                               f"max_tokens), more than the {limit.scope}'s limit of {limit.tpm} tokens per minute: no wait lets "
                               "it through; send a smaller max_tokens or a shorter prompt", param="max_tokens",
                               code="request_exceeds_token_limit")  # fmt: skip


def limits_unavailable() -> GatewayError:
    return GatewayError(503, "the gateway's rate-limit counters are unreachable; try again shortly", kind="api_error",
                        code="rate_limit_unavailable", headers={"retry-after": "1"})  # fmt: skip


class Gate:
    def __init__(self, master_key: str | None, store: Store | None = None, *, hold_seconds: float = 600.0, strict: bool = True,
                 limits: Limits | None = None, limits_refused: str | None = None, leases: bool = True) -> None:  # fmt: skip
        self._master_digest = hashlib.sha256(master_key.encode()).digest() if master_key is not None else None
        self.store = store
        self.leases: Leases | None = None
        self.use_leases = leases  # budget leases (``_leases``) instead of a hold written per request
        self.limits = limits
        self.limits_refused = limits_refused  # why keys may not have rate limits here (several replicas, no Redis)
        self.hold_seconds = hold_seconds
        self.strict = strict
        # keys that exist, and digests that name none, apart: a flood of unknown keys evicts only
        # other unknown keys (oldest first), never a tenant's cached key
        self._cache: OrderedDict[bytes, tuple[float, KeyView | None]] = OrderedDict()
        self._unknown: OrderedDict[bytes, tuple[float, KeyView | None]] = OrderedDict()
        self.clock: Callable[[], float] = time.monotonic  # the key cache's clock
        self._looking_up: dict[bytes, asyncio.Future[KeyView | None]] = {}
        self._generation = 0
        self.observer: Any = None  # told when the store stops or starts answering
        self.alerts: Any = None  # BudgetAlerts, when webhooks are configured
        self._store_up = True
        self._settling: set[asyncio.Task[Any]] = set()  # settlements and counter releases
        self._announcing: set[asyncio.Task[Any]] = set()  # budget alerts
        self.lost_settlements = 0  # settlements given up on (the store was down past their hold)

    def store_answered(self, up: bool) -> None:
        if up != self._store_up:
            self._store_up = up
            log.warning("governance store %s", "answers again" if up else "is unavailable: governed requests get 503")
            if self.observer is not None:
                self.observer.health(store=up)

    # ------------------------------------------------------------------ who

    async def caller(self, headers: Any) -> Caller:
        """The caller behind a request's key, or a 401 (503 if the store cannot say)."""
        if self._master_digest is None:
            return MASTER  # no master key: an open gateway on loopback
        key = presented_key(headers)
        if not key:
            raise _unauthorized("missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'")
        digest = hashlib.sha256(key.encode()).digest()  # once: the master key's check and the cache's key
        if hmac.compare_digest(digest, self._master_digest):
            return MASTER
        if self.store is None:
            raise _unauthorized("wrong API key")
        view = await self._view(key, digest)
        if view is None:
            raise _unauthorized("wrong API key: not the master key nor a current virtual key")
        if view.blocked:
            raise _unauthorized(f"key {view.token} is blocked")
        if view.expires_at is not None and view.expires_at <= time.time():
            raise _unauthorized(f"key {view.token} has expired")
        return Caller(view.token, view.team_id, allowed_models(view.models, view.team_models), view.has_budget, view.limits,
                      view.team_limits, view.guardrails, view.cache, view.budget_mark, view.object_permission)  # fmt: skip

    async def _view(self, key: str, digest: bytes) -> KeyView | None:
        # The cache is keyed by the key's digest: it never holds a secret.
        now = self.clock()
        cached = self._cache.get(digest) or self._unknown.get(digest)
        if cached is not None and now - cached[0] < AUTH_CACHE_SECONDS:
            return cached[1]
        # One lookup per key at a time: when a busy key's entry expires, its concurrent requests
        # wait for the same query instead of each sending one (a burst of them stalls the loop).
        pending = self._looking_up.get(digest)
        if pending is None:
            pending = self._looking_up[digest] = asyncio.ensure_future(self._look_up(key, digest, now))
            pending.add_done_callback(lambda done: self._looking_up.pop(digest) if self._looking_up.get(digest) is done else None)
        try:
            view = await asyncio.wait_for(asyncio.shield(pending), LOOKUP_SECONDS)
        except (StoreUnavailable, asyncio.TimeoutError):
            self.store_answered(False)
            raise unavailable() from None
        self.store_answered(True)
        return view

    async def _look_up(self, key: str, digest: bytes, now: float) -> KeyView | None:
        assert self.store is not None
        generation = self._generation
        view = await self.store.authenticate(key)
        if generation == self._generation:  # not read before this process changed a key
            table = self._cache if view is not None else self._unknown
            table[digest] = (now, view)
            table.move_to_end(digest)
            while len(table) > AUTH_CACHE_ENTRIES:
                table.popitem(last=False)
        return view

    def forget(self) -> None:
        """Drop cached key lookups (this process changed a key); lookups in flight started
        before the change, so later requests do not wait for them."""
        self._cache.clear()
        self._unknown.clear()
        self._looking_up.clear()
        self._generation += 1

    def allow(self, caller: Caller, model: str, resolved: str) -> None:
        """403 unless the key may use ``model`` (as asked, or the name an alias resolves to)."""
        if caller.models and model not in caller.models and resolved not in caller.models:
            raise GatewayError(403, f"key {caller.token} may not use model {model!r}; it may use: {', '.join(caller.models)}",
                               kind="permission_error", param="model", code="model_not_allowed")  # fmt: skip

    # ------------------------------------------------------------------ what it costs

    async def meter(self, caller: Caller, route: str, model: str, deployments: list[Any],
                    worst_case: Callable[[Any], tuple[int, int]], request_id: str, *, hold: bool = True) -> Meter:  # fmt: skip
        """Reserve a request's worst case (``worst_case(deployment)``: its input and output
        tokens there, at that deployment's price; the dearest deployment counts) against every
        budget it touches; 429 if one has no room. ``request_id`` names it in the spend log (the
        same id as in its access line). ``hold=False``: a request that spends nothing (a cache
        hit) meets its rate limits only."""
        if self.store is None:
            return _UNMETERED
        meter = Meter(self, caller, request_id, route, model)
        rate_limits = caller.rate_limits(model) if self.limits is not None else ()
        if rate_limits:
            assert self.limits is not None
            tokens = max(sum(worst_case(d)) for d in deployments)
            never_fits(rate_limits, tokens)
            try:
                meter.ticket = await self.limits.admit(meter.request_id, rate_limits, tokens)
            except RateLimited as exc:
                raise rate_limited(exc) from None
            except LimiterUnavailable:
                raise limits_unavailable() from None
        if hold:  # else nothing to spend yet (a response-cache hit; or a stage may still refuse it, and hold() follows)
            await self.hold(meter, caller, model, deployments, worst_case)
        return meter

    async def hold(self, meter: Meter, caller: Caller, model: str, deployments: list[Any], worst_case: Callable[[Any], tuple[int, int]]) -> None:
        """The budget hold of a request metered with ``hold=False`` (its rate limits met first, then
        a stage that may refuse it, such as a guardrail): 429 if a budget has no room, its rate
        ticket then given back."""
        if self.store is None:
            return
        try:
            await self._hold(meter, caller, model, deployments, worst_case)
        except BaseException:
            if self.limits is not None:
                await self.limits.finish(meter.ticket, 0)
            raise

    async def _hold(self, meter: Meter, caller: Caller, model: str, deployments: list[Any], worst_case: Callable[[Any], tuple[int, int]]) -> None:
        if caller.has_budget:
            prices = [d.price for d in deployments]
            if any(p is None for p in prices) and self.strict:
                raise GatewayError(400, f"model {model!r} has no price (no built-in OCI price for its model, or a dedicated endpoint, "
                                   "which OCI bills by the hour): set input_cost_per_token and output_cost_per_token on its "
                                   "deployments, so a key with a budget can use it", param="model", code="price_unknown")  # fmt: skip
            offered, most_calls = getattr(worst_case, "hosted_tools", (set(), 0))  # hosted tools the request may call
            estimate = max((d.price.nano(*worst_case(d)) + d.price.worst_tools_nano(offered, most_calls) for d in deployments
                            if d.price is not None), default=0)  # fmt: skip
            assert caller.token is not None and self.store is not None
            try:
                if self.use_leases:
                    if self.leases is None:
                        self.leases = Leases(self.store, self.hold_seconds, self.later)
                    await self.leases.hold(meter.request_id, caller.token, caller.team_id, caller.budget_mark, estimate)
                    meter.leased = True
                else:
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
        """Run ``work`` off the request's path, in a task the shutdown drains (its failure is
        logged once, never left unread)."""
        self._track(asyncio.ensure_future(work), self._settling)

    def announce(self, work: Any) -> None:
        """Send a budget alert off the request's path; the shutdown gives alerts a short grace."""
        self._track(asyncio.ensure_future(work), self._announcing)

    @staticmethod
    def _track(task: asyncio.Task[Any], tasks: set[asyncio.Task[Any]]) -> None:
        tasks.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            tasks.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                log.error("background work failed: %s: %s", type(finished.exception()).__name__, finished.exception())

        task.add_done_callback(done)

    async def drain(self, settle_seconds: float = 15.0, alert_seconds: float = 5.0) -> None:
        """At shutdown: settlements first (each gets a last try), then leases given back, then
        alerts, each within a deadline, so that a stalled store or webhook cannot hold the
        process past its grace."""
        if self._settling:
            await self._drain(self._settling, settle_seconds)
        if self.leases is not None:
            try:
                await asyncio.wait_for(self.leases.close(), 3.0)
            except asyncio.TimeoutError:  # a stalled store: the leases expire on their own
                pass
        await self._drain(self._announcing, alert_seconds)

    @staticmethod
    async def _drain(tasks: set[asyncio.Task[Any]], seconds: float) -> None:
        if not tasks:
            return
        _, pending = await asyncio.wait(set(tasks), timeout=seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2.0)


MAX_TOKEN_COUNT = 2**31 - 1  # what the spend log's token columns hold
SETTLE_RETRY_FIRST, SETTLE_RETRY_MOST = 0.25, 5.0  # seconds between tries of a settlement that could not be written


def _tokens(value: Any) -> int:
    """A token count from OCI's usage, bounded to what a column holds (a broken upstream cannot
    fail the write)."""
    try:
        count = int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0
    return min(max(count, 0), MAX_TOKEN_COUNT)


class Meter:
    """One request's spend: settled once, with its log row. A settlement that cannot be written
    (the store is down or failed) is kept and retried until it is written or its hold would have
    expired: it is never marked done before it is."""

    def __init__(self, gate: Gate, caller: Caller, request_id: str, route: str, model: str) -> None:
        self.gate, self.caller, self.request_id, self.route, self.model = gate, caller, request_id, route, model
        self.started = time.time()
        self.settled = False  # its row is in the store
        self.claimed = False  # a settlement was made (written, or being retried)
        self.cost_usd: float | None = None
        self.ticket: Ticket | None = None
        self.leased = False  # its worst case is held under this replica's budget lease

    @property
    def rate_headers(self) -> dict[str, str]:
        return self.ticket.headers if self.ticket is not None else {}

    def log_row(self, deployment: Any, usage: dict[str, Any] | None, status: int,
                estimated: tuple[int, int] | None) -> tuple[dict[str, Any], int | None]:  # fmt: skip
        """The spend-log row and the cost (nano-USD, None when the price is unknown)."""
        if usage:
            input_tokens, output_tokens = _tokens(usage.get("prompt_tokens")), _tokens(usage.get("completion_tokens"))
        else:
            input_tokens, output_tokens = (_tokens(t) for t in (estimated or (0, 0)))
        price: Price | None = deployment.price if deployment is not None else None
        tool_calls = usage.get("tool_calls") if usage else None
        if status >= 400 and not estimated:
            cost: int | None = 0  # refused or failed before any output: nothing to bill
        else:
            cost = price.nano(input_tokens, output_tokens, tool_calls) if price is not None else None
        row = {
            "request_id": self.request_id, "token": self.caller.token, "team_id": self.caller.team_id, "model": self.model,
            "deployment": deployment.model if deployment is not None else "", "route": self.route, "input_tokens": input_tokens,
            "output_tokens": output_tokens, "cost": cost, "status": status, "latency_ms": (time.time() - self.started) * 1000,
            "started_at": self.started, "tool_calls": as_column(tool_calls),
        }  # fmt: skip
        return row, cost

    async def settle(self, *, deployment: Any = None, usage: dict[str, Any] | None = None, status: int = 200,
                     estimated: tuple[int, int] | None = None) -> float | None:  # fmt: skip
        """Record the request (tokens from ``usage``, or ``estimated`` for a cut stream) and
        release its hold; returns the cost in USD (None when its price is unknown). Never
        raises for the store: a row that cannot be written now is retried off the request's
        path (the hold keeps the budget safe meanwhile)."""
        store = self.gate.store
        if store is None or self.claimed:
            return self.cost_usd
        self.claimed = True
        row, cost = self.log_row(deployment, usage, status, estimated)
        if self.ticket is not None and self.gate.limits is not None:
            used = row["input_tokens"] + row["output_tokens"] if (usage or estimated) else (0 if status >= 400 else None)
            self.gate.later(self.gate.limits.finish(self.ticket, used))  # nothing the reply waits for
        self.cost_usd = to_usd(cost)
        if not await self.write(row):
            self.gate.later(self.retry(row))
        return self.cost_usd

    async def write(self, row: dict[str, Any]) -> bool:
        """One try at writing the settlement: True once it is in the store."""
        store = self.gate.store
        assert store is not None
        try:
            await store.settle(row)
        except StoreUnavailable:
            self.gate.store_answered(False)
            return False
        except Exception as exc:  # a failure of this row alone (its batch-mates were retried without it)
            log.error("settlement of request %s failed (%s); retrying", self.request_id, type(exc).__name__)
            return False
        self.settled = True
        self._leave_lease(row["cost"])
        self.gate.store_answered(True)
        if row["cost"] and self.caller.has_budget and self.gate.alerts is not None:
            self.gate.announce(self.gate.alerts.check(store, self.caller.token, self.caller.team_id))
        return True

    def _leave_lease(self, cost: int | None) -> None:
        if self.leased and self.gate.leases is not None:
            assert self.caller.token is not None
            self.gate.leases.settled(self.request_id, self.caller.token, self.caller.team_id, cost)

    async def retry(self, row: dict[str, Any]) -> None:
        """Retry a settlement with backoff until it is written, or until its hold would have
        expired (then the loss is logged: the request's spend could not be recorded)."""
        give_up = self.started + self.gate.hold_seconds
        wait = SETTLE_RETRY_FIRST
        while True:
            try:
                await asyncio.sleep(min(wait, max(0.0, give_up - time.time())))
            except asyncio.CancelledError:  # shutting down: one last try
                if await self.write(row):
                    return
                raise
            if await self.write(row):
                return
            if time.time() >= give_up:
                log.error("spend of request %s could not be recorded before its hold expired (store unavailable)", self.request_id)
                self.gate.lost_settlements += 1
                self._leave_lease(None)
                return
            wait = min(wait * 2, SETTLE_RETRY_MOST)


_UNMETERED = Meter(Gate(None), MASTER, "", "", "")  # without a store: settles nothing


def cost_header(cost: float | None) -> dict[str, str]:
    """LiteLLM's response header for a request's cost, in USD."""
    return {} if cost is None else {"x-litellm-response-cost": f"{cost:.9f}".rstrip("0").rstrip(".") or "0"}


def stream_estimate(input_tokens: int, chars_delivered: int) -> tuple[int, int]:
    """Tokens a stream cut short used, when OCI's usage never came: about four characters a token
    for the prompt (its counted ceiling) and for everything delivered (text, reasoning and tool
    call arguments; at least one token once a reply started)."""
    return max(1, math.ceil(input_tokens / 4)), max(1, math.ceil(chars_delivered / 4))


_RESPONSES_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_RESPONSES_DELTAS = frozenset({"response.output_text.delta", "response.reasoning_text.delta", "response.reasoning_summary_text.delta",
                               "response.function_call_arguments.delta", "response.refusal.delta"})  # fmt: skip


class StreamWatch:
    """Follows a relayed stream for its meter: the usage OCI reports at the end, what was
    delivered so far (to bill a stream cut short), and, when only the gateway asked for usage,
    keeps the usage chunk from the client. A deployment's own token ticket is reconciled with
    the stream's usage at its end."""

    def __init__(self, gate: Gate, meter: Meter, deployment: Any, input_tokens: int, keep_usage: bool, record: Any = None,
                 on_end: Callable[[], None] | None = None, deployment_ticket: Ticket | None = None,
                 limits: Limits | None = None) -> None:  # fmt: skip
        self.gate, self.meter, self.deployment, self.input_tokens, self.keep_usage = gate, meter, deployment, input_tokens, keep_usage
        self.record = record  # the request's RequestRecord: first token, tokens and cost
        self.on_end = on_end
        self.deployment_ticket, self.limits = deployment_ticket, limits
        self.usage: dict[str, Any] | None = None
        self.chars = 0
        self.finished = False

    def see(self, batch: list[Any]) -> list[Any]:
        usage_seen = False
        delivered = self.chars
        for chunk in batch:
            kind = dict.get(chunk, "type")
            if kind is not None:  # a Responses API event (OCI's /openai/v1, relayed as it is)
                if kind in _RESPONSES_ENDS:
                    usage = dict.get(dict.get(chunk, "response") or {}, "usage")
                    if usage:
                        self.usage = responses_usage(dict.get(chunk, "response"))
                elif kind in _RESPONSES_DELTAS:
                    delivered += len(dict.get(chunk, "delta") or "")
                continue
            usage = dict.get(chunk, "usage")
            if usage:
                self.usage = dict(usage)
                usage_seen = True
            for choice in dict.get(chunk, "choices") or ():
                delta = dict.get(choice, "delta") or {}
                text = dict.get(delta, "content")
                if text:
                    delivered += len(text)
                reasoning = dict.get(delta, "reasoning_content")
                if reasoning:
                    delivered += len(reasoning)
                for call in dict.get(delta, "tool_calls") or ():
                    function = dict.get(call, "function") or {}
                    delivered += len(dict.get(function, "arguments") or "") + len(dict.get(function, "name") or "")
        if delivered != self.chars:
            if not self.chars and self.record is not None:
                self.record.first_token_at = time.perf_counter()
            self.chars = delivered
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
        estimated = None if self.usage else stream_estimate(self.input_tokens, self.chars)
        return {"deployment": self.deployment, "usage": self.usage, "estimated": estimated, "status": status}

    def _release_deployment(self, result: dict[str, Any]) -> None:
        ticket, self.deployment_ticket = self.deployment_ticket, None
        if ticket is None or self.limits is None:
            return
        usage, estimated = result["usage"], result["estimated"]
        used = _tokens(usage.get("prompt_tokens")) + _tokens(usage.get("completion_tokens")) if usage else sum(estimated or (0, 0))
        self.gate.later(self.limits.finish(ticket, used))

    async def finish(self, status: int = 200) -> float | None:
        self.finished = True
        result = self._result(status)
        self._note(result)
        self._release_deployment(result)
        cost = await self.meter.settle(**result)
        if self.record is not None:
            self.record.cost = cost
        return cost

    def abandon(self) -> None:
        """The client left (or the relay broke) before the end: bill what was used, later."""
        if self.finished:
            return
        result = self._result(499)
        if self.record is not None and not self.record.done:
            self._note(result)
            self.record.status = 499
        self._release_deployment(result)
        if not self.meter.claimed and self.gate.store is not None:
            self.gate.settle_later(self.meter, **result)

    def _note(self, result: dict[str, Any]) -> None:
        if self.record is None:
            return
        if result["usage"]:
            self.record.usage(result["usage"])
        elif result["estimated"]:
            self.record.input_tokens, self.record.output_tokens = result["estimated"]
