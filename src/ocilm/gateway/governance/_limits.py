"""Rate limits: requests and tokens per minute and requests in flight, for keys, teams, a key's
use of one model, and deployments.

One decision per request covers every limit it touches, all or nothing: either each limit has
room and the request is counted against all of them, or none is touched and the caller hears
which limit was full and when it frees. Windows slide: a request counts for exactly the window
(60 s unless configured) from when it was admitted, so there is no boundary at which a double burst gets through. Tokens are
reserved from the worst case (the prompt's characters, plus ``max_tokens``) and set to what the
reply used afterwards; a slot in flight is a lease that expires, so a killed replica cannot pin
one.

``RedisLimiter`` keeps the counters in Redis (one Lua script per decision, on Redis's clock),
shared by every replica; ``MemoryLimiter`` keeps the same counters in one process;
``StoreLimiter`` keeps them in the SQLite store, for several workers on one host. All three
decide with ``check_limit``.
"""

from __future__ import annotations

import array
import asyncio
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ._outcomes import Lost

log = logging.getLogger("ocilm.gateway")

WINDOW_SECONDS = 60.0
RELEASE_RETRIES = 8  # a release the counters missed is tried again for about a minute
SLOT_LEASE_SECONDS = 900.0  # longer than any request may run (the longest deployment deadline)


@dataclass(frozen=True)
class Limit:
    """The limits of one thing a request touches: ``scope`` says what (key, team, model,
    deployment) for the caller, ``ident`` names it uniquely for the counters."""

    scope: str
    ident: str
    rpm: int | None = None
    tpm: int | None = None
    parallel: int | None = None

    @property
    def counted(self) -> bool:
        return bool(self.rpm or self.tpm or self.parallel)


class RateLimited(Exception):
    """No room: ``scope`` and ``kind`` (requests, tokens, parallel) of the full limit."""

    def __init__(self, scope: str, ident: str, kind: str, limit: int, retry_after: float) -> None:
        super().__init__(f"{scope} {kind} limit")
        self.scope, self.ident, self.kind, self.limit, self.retry_after = scope, ident, kind, limit, retry_after


class LimiterUnavailable(Exception):
    """The shared counters cannot be reached."""


@dataclass
class Ticket:
    """What an admitted request holds: released (slots) and reconciled (tokens) once."""

    request_id: str
    limits: tuple[Limit, ...]
    tokens: int
    headers: dict[str, str] = field(default_factory=dict)
    done: bool = False
    held: tuple[int, ...] = ()  # in-process: its entry's sequence number in each limit's window


def go_duration(seconds: float) -> str:
    """OpenAI's reset format: ``12ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


Stat = tuple[int, int, float]  # limit, remaining, seconds until the window frees room


def rate_headers(requests: Stat | None, tokens: Stat | None) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` for the tightest request and token limits: (limit, remaining,
    seconds until the window frees room)."""
    headers: dict[str, str] = {}
    for kind, stat in (("requests", requests), ("tokens", tokens)):
        if stat is not None:
            limit, remaining, reset = stat
            headers[f"x-ratelimit-limit-{kind}"] = str(limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, remaining))
            headers[f"x-ratelimit-reset-{kind}"] = go_duration(reset)
    return headers


def check_limit(limit: Limit, count: int, used: int, reset: float, in_flight: int, tokens: int, span: float, tokens_wait: Any,
                tightest: tuple[Stat | None, Stat | None]) -> tuple[Stat | None, Stat | None]:  # fmt: skip
    """One limit's decision, the same wherever its counters live: raise RateLimited if it has no
    room for one more request of ``tokens``, else the tightest request and token figures so far.
    ``count``/``used``: requests and tokens in its window; ``reset``: seconds until the oldest
    leaves; ``span``: the window's length; ``tokens_wait()``: seconds until enough tokens leave."""
    req_stat, tok_stat = tightest
    if limit.rpm:
        if count + 1 > limit.rpm:
            raise RateLimited(limit.scope, limit.ident, "requests", limit.rpm, reset)
        if req_stat is None or limit.rpm - count - 1 < req_stat[1]:
            req_stat = (limit.rpm, limit.rpm - count - 1, reset)
    if limit.tpm:
        if used + tokens > limit.tpm:
            wait = span if tokens > limit.tpm else tokens_wait()  # larger than the limit itself: it never fits
            raise RateLimited(limit.scope, limit.ident, "tokens", limit.tpm, wait)
        if tok_stat is None or limit.tpm - used - tokens < tok_stat[1]:
            tok_stat = (limit.tpm, limit.tpm - used - tokens, reset)
    if limit.parallel and in_flight + 1 > limit.parallel:
        raise RateLimited(limit.scope, limit.ident, "parallel", limit.parallel, 1.0)
    return req_stat, tok_stat


# ---------------------------------------------------------------- one process


class _Window:
    """One limit's exact sliding window: an entry per request admitted in it, its admission
    time and tokens in two arrays (16 bytes a request for the window's span, where a small
    object per request cost about 130). An entry is named by its sequence number: the request's
    ticket keeps it, so its tokens are reconciled in place while it is in the window."""

    __slots__ = ("base", "first", "slots", "span", "times", "token_sum", "tokens")

    def __init__(self, span: float) -> None:
        self.span = span
        self.times = array.array("d")  # admitted at
        self.tokens = array.array("q")
        self.base = 0  # the sequence number of times[0]
        self.first = 0  # the index of the oldest entry still in the window
        self.token_sum = 0
        self.slots: dict[str, float] = {}  # request id -> lease end (requests in flight only)

    def __len__(self) -> int:
        return len(self.times) - self.first

    def oldest(self) -> float | None:
        return self.times[self.first] if self.first < len(self.times) else None

    def add(self, now: float, tokens: int) -> int:
        self.times.append(now)
        self.tokens.append(tokens)
        self.token_sum += tokens
        return self.base + len(self.times) - 1

    def reconcile(self, sequence: int, used: int) -> None:
        """Set an entry's tokens to what its request used, if it is still in the window."""
        index = sequence - self.base
        if self.first <= index < len(self.tokens):
            self.token_sum += used - self.tokens[index]
            self.tokens[index] = used

    def trim(self, now: float) -> None:
        times, tokens, edge = self.times, self.tokens, now - self.span
        first, count = self.first, len(self.times)
        while first < count and times[first] <= edge:
            self.token_sum -= tokens[first]
            first += 1
        if first > 1024 and first * 2 > count:  # drop what left the window, now and then: linear over time
            del times[:first]
            del tokens[:first]
            self.base += first
            first = 0
        self.first = first
        if self.slots:
            for request_id in [r for r, end in self.slots.items() if end <= now]:
                del self.slots[request_id]

    def tokens_free_after(self, now: float, needed: int, limit: int) -> float:
        """Seconds until enough tokens leave the window for ``needed`` more."""
        excess = self.token_sum + needed - limit
        for index in range(self.first, len(self.times)):
            excess -= self.tokens[index]
            if excess <= 0:
                return self.times[index] + self.span - now
        return self.span


class MemoryLimiter:
    """The counters in this process: exact for one process (``--workers 1``)."""

    kind = "in-process"

    def __init__(self, window_seconds: float = WINDOW_SECONDS, clock: Any = time.monotonic) -> None:
        self.window = window_seconds
        self._windows: dict[str, _Window] = {}
        self.clock = clock

    def _window(self, ident: str) -> _Window:
        window = self._windows.get(ident)
        if window is None:
            window = self._windows[ident] = _Window(self.window)
        return window

    async def admit(self, request_id: str, limits: tuple[Limit, ...], tokens: int) -> Ticket:
        return self.admit_now(request_id, limits, tokens)

    def admit_now(self, request_id: str, limits: tuple[Limit, ...], tokens: int) -> Ticket:
        now = self.clock()
        windows = [self._window(limit.ident) for limit in limits]
        tightest: tuple[Stat | None, Stat | None] = (None, None)
        for limit, window in zip(limits, windows, strict=True):
            window.trim(now)
            oldest = window.oldest()
            reset = oldest + self.window - now if oldest is not None else self.window
            wait = functools.partial(window.tokens_free_after, now, tokens, limit.tpm or 0)
            tightest = check_limit(limit, len(window), window.token_sum, reset, len(window.slots), tokens, self.window, wait, tightest)
        held = []
        for limit, window in zip(limits, windows, strict=True):
            held.append(window.add(now, tokens))
            if limit.parallel:
                window.slots[request_id] = now + SLOT_LEASE_SECONDS
        return Ticket(request_id, limits, tokens, rate_headers(*tightest), held=tuple(held))

    async def finish(self, ticket: Ticket, used_tokens: int | None) -> None:
        if ticket.done:
            return
        ticket.done = True
        for i, limit in enumerate(ticket.limits):
            window = self._window(limit.ident)
            window.slots.pop(ticket.request_id, None)
            if used_tokens is not None and i < len(ticket.held):
                window.reconcile(ticket.held[i], used_tokens)

    async def close(self) -> None:
        pass


# ---------------------------------------------------------------- Redis

# KEYS: four per limit (request log, tokens per request, token sum, slots in flight).
# ARGV: request id, tokens, window ms, slot lease ms, then rpm, tpm, parallel per limit (0: none).
# Returns {0, index, kind, retry ms} when a limit is full, else {1, rpm, remaining, reset ms,
# tpm, remaining, reset ms} for the tightest limits (-1: none).
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, tokens, window, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n = #KEYS / 4
local req = {-1, 0, 0}
local tok = {-1, 0, 0}
for i = 0, n - 1 do
  local log, per, sum, slots = KEYS[i*4+1], KEYS[i*4+2], KEYS[i*4+3], KEYS[i*4+4]
  local rpm, tpm, par = tonumber(ARGV[5+i*3]), tonumber(ARGV[6+i*3]), tonumber(ARGV[7+i*3])
  local old = redis.call('ZRANGEBYSCORE', log, '-inf', now - window)
  if #old > 0 then
    local freed = 0
    for j = 1, #old, 500 do
      local part = {unpack(old, j, math.min(j + 499, #old))}
      for _, v in ipairs(redis.call('HMGET', per, unpack(part))) do freed = freed + (tonumber(v) or 0) end
      redis.call('HDEL', per, unpack(part))
      redis.call('ZREM', log, unpack(part))
    end
    redis.call('DECRBY', sum, freed)
  end
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
  local count = redis.call('ZCARD', log)
  local used = tonumber(redis.call('GET', sum) or '0')
  local first = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
  local reset = window
  if #first > 0 then reset = tonumber(first[2]) + window - now end
  if rpm > 0 then
    if count + 1 > rpm then return {0, i, 'requests', reset} end
    if req[1] < 0 or rpm - count - 1 < req[2] then req = {rpm, rpm - count - 1, reset} end
  end
  if tpm > 0 then
    if used + tokens > tpm then
      if tokens > tpm then return {0, i, 'tokens', window} end
      local excess = used + tokens - tpm
      local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
      local wait = window
      for j = 1, #entries, 2 do
        excess = excess - (tonumber(redis.call('HGET', per, entries[j])) or 0)
        if excess <= 0 then wait = tonumber(entries[j+1]) + window - now break end
      end
      return {0, i, 'tokens', wait}
    end
    if tok[1] < 0 or tpm - used - tokens < tok[2] then tok = {tpm, tpm - used - tokens, reset} end
  end
  if par > 0 and redis.call('ZCARD', slots) + 1 > par then return {0, i, 'parallel', 1000} end
end
for i = 0, n - 1 do
  local log, per, sum, slots = KEYS[i*4+1], KEYS[i*4+2], KEYS[i*4+3], KEYS[i*4+4]
  redis.call('INCRBY', sum, ARGV[2])  -- first, and the count as sent (an integer string): nothing is written if it fails
  redis.call('ZADD', log, now, id)
  redis.call('HSET', per, id, ARGV[2])
  if tonumber(ARGV[7+i*3]) > 0 then
    redis.call('ZADD', slots, now + lease, id)
    redis.call('PEXPIRE', slots, lease)
  end
  redis.call('PEXPIRE', log, window + 1000)
  redis.call('PEXPIRE', per, window + 1000)
  redis.call('PEXPIRE', sum, window + 1000)
end
return {1, req[1], req[2], req[3], tok[1], tok[2], tok[3]}
"""

# KEYS as above; ARGV: request id, tokens used (-1: unknown).
_FINISH = """
local id, used = ARGV[1], tonumber(ARGV[2])
for i = 0, #KEYS / 4 - 1 do
  local per, sum, slots = KEYS[i*4+2], KEYS[i*4+3], KEYS[i*4+4]
  redis.call('ZREM', slots, id)
  if used >= 0 then
    local reserved = redis.call('HGET', per, id)
    if reserved then
      redis.call('HSET', per, id, used)
      redis.call('INCRBY', sum, used - tonumber(reserved))
    end
  end
end
return 1
"""


def _keys(limits: tuple[Limit, ...]) -> list[str]:
    keys: list[str] = []
    for limit in limits:
        tag = f"ocilm:rl:{{{limit.ident}}}"  # one hash tag per limit: its four keys share a slot
        keys += [f"{tag}:log", f"{tag}:tokens", f"{tag}:sum", f"{tag}:slots"]
    return keys


MAX_PIPELINE = 256
RELEASE_DELAY_SECONDS = 0.05  # a release waits at most this long for a decision to travel with


class RedisLimiter:
    """The counters in Redis, shared by every replica; one script call per decision.

    Script calls (decisions and releases) that arrive while a round trip is in flight go
    together in the next one, as one pipeline: each is still its own script, decided on its own
    and atomically, but one round trip and one read serve them all. A release does not start a
    round trip of its own: it waits for the next decision this process sends (ahead of it in the
    same pipeline, so that the decision sees the slot and tokens freed) or for
    ``RELEASE_DELAY_SECONDS``, whichever comes first. Through redis-py's script objects a
    decision and its release cost about 170 µs of the gateway's CPU; pipelined, 144 µs one
    request at a time and 55 µs eight at a time (``bench/store_paths.py``)."""

    kind = "redis"

    def __init__(self, url: str, window_seconds: float = WINDOW_SECONDS) -> None:
        import redis.asyncio as redis_asyncio

        self.window = window_seconds
        self._redis = redis_asyncio.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0, retry_on_timeout=False)
        self._admit = self._redis.register_script(_ADMIT)
        self._finish = self._redis.register_script(_FINISH)
        self._waiting: list[tuple[Any, list[str], list[Any], asyncio.Future[Any]]] = []
        self._sending: asyncio.Future[None] | None = None
        self._release_timer: asyncio.TimerHandle | None = None

    async def _call(self, script: Any, keys: list[str], args: list[Any], defer: bool = False) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((script, keys, args, future))
        if defer:
            if self._release_timer is None:
                self._release_timer = loop.call_later(RELEASE_DELAY_SECONDS, self._start)
        else:
            self._start()
        return await future

    def _start(self) -> None:
        self._release_timer = None
        if self._waiting and (self._sending is None or self._sending.done()):
            self._sending = asyncio.ensure_future(self._send())  # held: a task nobody holds may be collected

    async def _send(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_PIPELINE], self._waiting[MAX_PIPELINE:]
            batch = [call for call in batch if not call[3].cancelled()]  # its caller left before it was sent: not counted
            if not batch:
                continue
            try:
                results = await self._pipeline(batch)
            except LimiterUnavailable as exc:  # the connection: every call in it hears
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException as exc:
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(LimiterUnavailable(type(exc).__name__))
                raise
            for (*_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    # READONLY after a failover, OOM under maxmemory, CLUSTERDOWN, MASTERDOWN, a
                    # busy script: the counters cannot decide, so the failure policy applies.
                    future.set_exception(LimiterUnavailable(f"{type(result).__name__}: {str(result)[:120]}"))
                else:
                    future.set_result(result)

    async def _pipeline(self, batch: list[tuple[Any, list[str], list[Any], asyncio.Future[Any]]]) -> list[Any]:
        import redis.exceptions

        try:
            pipe = self._redis.pipeline(transaction=False)
            for script, keys, args, _ in batch:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            results = await pipe.execute(raise_on_error=False)
            missing = [i for i, result in enumerate(results) if isinstance(result, redis.exceptions.NoScriptError)]
            if missing:  # Redis restarted (it keeps no scripts): EVAL loads them as it runs them
                pipe = self._redis.pipeline(transaction=False)
                for i in missing:
                    script, keys, args, _ = batch[i]
                    pipe.eval(script.script, len(keys), *keys, *args)
                for i, result in zip(missing, await pipe.execute(raise_on_error=False), strict=True):
                    results[i] = result
            return list(results)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError, asyncio.TimeoutError) as exc:
            raise LimiterUnavailable(type(exc).__name__) from None
        except redis.exceptions.RedisError as exc:
            raise LimiterUnavailable(f"{type(exc).__name__}: {str(exc)[:120]}") from None

    async def admit(self, request_id: str, limits: tuple[Limit, ...], tokens: int) -> Ticket:
        args: list[Any] = [request_id, tokens, int(self.window * 1000), int(SLOT_LEASE_SECONDS * 1000)]
        for limit in limits:
            args += [limit.rpm or 0, limit.tpm or 0, limit.parallel or 0]
        result = await self._call(self._admit, _keys(limits), args)
        if int(result[0]) == 0:
            limit = limits[int(result[1])]
            kind = result[2].decode() if isinstance(result[2], bytes) else str(result[2])
            value = {"requests": limit.rpm, "tokens": limit.tpm, "parallel": limit.parallel}[kind] or 0
            raise RateLimited(limit.scope, limit.ident, kind, value, int(result[3]) / 1000)
        req = (int(result[1]), int(result[2]), int(result[3]) / 1000) if int(result[1]) >= 0 else None
        tok = (int(result[4]), int(result[5]), int(result[6]) / 1000) if int(result[4]) >= 0 else None
        return Ticket(request_id, limits, tokens, rate_headers(req, tok))

    async def finish(self, ticket: Ticket, used_tokens: int | None) -> None:
        if ticket.done:
            return
        ticket.done = True
        await self._call(self._finish, _keys(ticket.limits), [ticket.request_id, -1 if used_tokens is None else used_tokens], defer=True)

    async def close(self) -> None:
        self._start()  # releases still waiting go now
        while self._sending is not None and not self._sending.done():
            await asyncio.wait([self._sending], timeout=2.0)
            if not self._sending.done():
                break
        await self._redis.aclose()


class StoreLimiter:
    """The counters in the governance store's SQLite file, decided in its one writer's
    transactions: exact for ``ocilm serve --workers N`` on one host without Redis."""

    kind = "store"

    def __init__(self, budgets: Any, window_seconds: float = WINDOW_SECONDS) -> None:
        self.budgets, self.window = budgets, window_seconds

    async def admit(self, request_id: str, limits: tuple[Limit, ...], tokens: int) -> Ticket:
        try:
            return await self.budgets.rate_admit(request_id, limits, tokens, time.time(), self.window, SLOT_LEASE_SECONDS)  # type: ignore[no-any-return]
        except Lost as exc:
            raise LimiterUnavailable(str(exc)) from None

    async def finish(self, ticket: Ticket, used_tokens: int | None) -> None:
        if ticket.done:
            return
        ticket.done = True
        try:
            await self.budgets.rate_finish(ticket, used_tokens)
        except Lost as exc:
            raise LimiterUnavailable(str(exc)) from None

    async def close(self) -> None:
        pass


class Limits:
    """The gateway's limiter with its failure policy: when the shared counters are unreachable,
    ``closed`` refuses (503) and ``open`` admits without limits and counts what it let through."""

    def __init__(self, limiter: MemoryLimiter | RedisLimiter | StoreLimiter, failure: str = "closed") -> None:
        self.limiter, self.failure = limiter, failure
        self.unlimited = 0  # requests served without limits while the counters were unreachable
        self.on_unlimited: Any = None  # told of each (the gateway's metrics count them)
        self._down_since: float | None = None
        self._retrying: set[asyncio.Task[None]] = set()

    async def admit(self, request_id: str, limits: tuple[Limit, ...], tokens: int) -> Ticket | None:
        limits = tuple(limit for limit in limits if limit.counted)
        if not limits:
            return None
        try:
            ticket = await self.limiter.admit(request_id, limits, tokens)
        except LimiterUnavailable as exc:
            if self._down_since is None:
                self._down_since = time.time()
                log.error("rate limits: the shared counters are unreachable (%s); failing %s", exc, self.failure)
            if self.failure == "open":
                self.unlimited += 1
                if self.on_unlimited is not None:
                    self.on_unlimited()
                return None
            raise
        if self._down_since is not None:
            log.warning("rate limits: the shared counters are back after %.1f s", time.time() - self._down_since)
            self._down_since = None
        return ticket

    def status(self) -> dict[str, Any]:
        """What ``/health/readiness`` shows: where the counters are and whether they answer."""
        return {"counters": self.limiter.kind, "failure_policy": self.failure,
                "reachable": self._down_since is None, "served_unlimited": self.unlimited}  # fmt: skip

    async def finish(self, ticket: Ticket | None, used_tokens: int | None) -> None:
        if ticket is None or ticket.done:
            return
        try:
            await self.limiter.finish(ticket, used_tokens)
        except LimiterUnavailable:
            # Retried off the request's path, so that a slot in flight is not pinned for its
            # whole lease by a short outage; past the retries the lease runs out by itself.
            ticket.done = False
            task = asyncio.ensure_future(self._finish_later(ticket, used_tokens))
            self._retrying.add(task)
            task.add_done_callback(self._retrying.discard)

    async def _finish_later(self, ticket: Ticket, used_tokens: int | None) -> None:
        wait = 0.5
        for _ in range(RELEASE_RETRIES):
            await asyncio.sleep(wait)
            try:
                await self.limiter.finish(ticket, used_tokens)
                return
            except LimiterUnavailable:
                ticket.done = False
                wait = min(wait * 2, 8.0)

    async def close(self) -> None:
        for task in list(self._retrying):
            task.cancel()
        await self.limiter.close()
