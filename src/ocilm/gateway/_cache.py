"""The response cache: a stage of the metered path (LiteLLM's ``litellm_settings.cache`` and
``cache_params``), in this process or in Redis.

An entry is the reply of one request: the model name, the call (chat, embeddings, rerank), the
front door, every parameter that shapes the answer, the guardrails that ran, and the tenant. By
default a team's entries are its own (a key without a team: the key's); ``scope: global`` shares
them, ``scope: key`` narrows them. Left out of the key, because they do not change the answer:
``stream`` and ``stream_options`` (a stream and a reply of the same request share an entry and
each replays as the other), ``user``, ``metadata``, ``cache`` and the caller's key itself.

A stream is stored as the chunks it sent (after guardrails), and replayed chunk for chunk; a
reply is replayed to a streaming caller as the chunks a stream of it would have sent. A hit costs
nothing and calls nothing upstream; Redis going away turns the cache off, never the request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._errors import GatewayError

log = logging.getLogger("ocilm.gateway")
ROUTES = ("chat", "embeddings", "rerank", "responses", "messages")  # the routes a cache may serve
UNKEYED = frozenset({"stream", "stream_options", "user", "metadata", "cache", "drop_params"})
MAX_ENTRY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, eq=False)
class CacheSettings:
    kind: str = "local"  # local | redis
    url: str | None = field(default=None, repr=False)  # may hold a password
    namespace: str = "ocilm"
    ttl: float = 600.0
    default_on: bool = True  # mode: default_off caches only requests that ask ("use-cache")
    scope: str = "team"  # team | key | global
    call_types: frozenset[str] = frozenset(ROUTES)
    max_entries: int = 10_000
    max_bytes: int = 256 * 1024 * 1024


@dataclass
class CacheControl:
    """A request's own say: ``cache: {"no-cache", "no-store", "ttl", "s-maxage", "use-cache"}`` in
    the body, or ``Cache-Control: no-cache, no-store, s-maxage=N`` as a header."""

    read: bool = True
    write: bool = True
    ttl: float | None = None
    max_age: float | None = None
    asked: bool = False  # "use-cache": true (mode: default_off)
    sent: tuple[str, ...] = ()  # the controls the request sent (a key may allow only some)

    @classmethod
    def parse(cls, body_value: Any, header: str | None) -> CacheControl:
        control = cls()
        if header:
            for part in (p.strip().lower() for p in header.split(",")):
                if part == "no-cache":
                    control.read = False
                elif part == "no-store":
                    control.write = False
                elif part.startswith("s-maxage="):
                    control.max_age = _seconds(part.partition("=")[2], "Cache-Control: s-maxage")
                else:
                    continue  # HTTP's other directives (max-age, no-transform, ...) say nothing to this cache
                control.sent += (part.partition("=")[0],)
        if body_value is None:
            return control
        if not isinstance(body_value, dict):
            raise GatewayError(400, 'cache: expected an object such as {"no-cache": true}, {"ttl": 60} or {"s-maxage": 30}', param="cache")
        for key, value in body_value.items():
            if key in ("no-cache", "no-store", "use-cache"):
                if not isinstance(value, bool):
                    raise GatewayError(400, f"cache.{key}: expected true or false", param="cache")
                if key == "no-cache":
                    control.read = not value
                elif key == "no-store":
                    control.write = not value
                else:
                    control.asked = value
            elif key in ("ttl", "s-maxage"):
                seconds = _seconds(value, f"cache.{key}")
                if key == "ttl":
                    control.ttl = seconds
                else:
                    control.max_age = seconds
            else:
                raise GatewayError(400, f"cache.{key}: unknown; expected no-cache, no-store, ttl, s-maxage or use-cache", param="cache")
            control.sent += (key,)
        return control


CONTROLS = ("no-cache", "no-store", "ttl", "s-maxage", "use-cache")
_POLICY_KEYS = ("enabled", "ttl", "deterministic_only", "allowed_controls")


def cache_policy(value: Any) -> dict[str, Any] | None:
    """A key's or a team's ``cache`` setting (admin API), checked: ``enabled`` (false: never
    cached), ``ttl`` (its entries' lifetime, and the most a request's ttl may ask),
    ``deterministic_only`` (only requests with temperature 0), ``allowed_controls`` (the cache
    controls its callers may send; others are a 403)."""
    from .governance._policy import PolicyError

    if value is None:
        return None
    if not isinstance(value, dict) or any(k not in _POLICY_KEYS for k in value):
        raise PolicyError("cache", f"expected an object of {', '.join(_POLICY_KEYS)}, such as {{\"ttl\": 60}} or {{\"enabled\": false}}")
    for flag in ("enabled", "deterministic_only"):
        if flag in value and not isinstance(value[flag], bool):
            raise PolicyError("cache", f"{flag}: expected true or false")
    if "ttl" in value:
        ttl = value["ttl"]
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 <= ttl <= 365 * 86400:
            raise PolicyError("cache", "ttl: expected a number of seconds from 0 to 31536000")
    allowed = value.get("allowed_controls")
    if allowed is not None and not (isinstance(allowed, list) and all(c in CONTROLS for c in allowed)):
        raise PolicyError("cache", f"allowed_controls: expected a list of {', '.join(CONTROLS)}")
    return dict(value) or None


def _seconds(value: Any, place: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if isinstance(value, bool) or not 0 <= seconds <= 365 * 86400:
        raise GatewayError(400, f"{place}: expected a number of seconds from 0 to 31536000", param="cache")
    return seconds


def cache_key(settings: CacheSettings, *, route: str, method: str, model: Any, first: Any, params: dict[str, Any],
              guardrails: list[str], caller: Any) -> str:  # fmt: skip
    """The entry's name: a digest of everything that shapes the answer, and of the tenant."""
    if settings.scope == "global":
        tenant = "*"
    elif settings.scope == "key" or not caller.team_id:
        tenant = f"key:{caller.token or 'master'}"
    else:
        tenant = f"team:{caller.team_id}"
    shaped = {k: v for k, v in params.items() if k not in UNKEYED}
    canonical = json.dumps([route, method, model, first, shaped, sorted(guardrails), tenant], sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False, default=str)  # fmt: skip
    return hashlib.sha256(canonical.encode()).hexdigest()


class LocalCache:
    """Entries in this process: bounded by count and bytes, the least recently used going first."""

    def __init__(self, settings: CacheSettings) -> None:
        self.settings = settings
        self._entries: OrderedDict[str, tuple[float, float, bytes]] = OrderedDict()  # key -> (stored at, expires at, value)
        self.bytes = 0

    async def get(self, key: str) -> tuple[bytes, float] | None:
        found = self._entries.get(key)
        if found is None:
            return None
        stored, expires, value = found
        if time.time() >= expires:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value, stored

    async def get_many(self, keys: list[str]) -> list[tuple[bytes, float] | None]:
        return [await self.get(key) for key in keys]

    async def put_many(self, items: list[tuple[str, bytes]], ttl: float) -> None:
        for key, value in items:
            await self.put(key, value, ttl)

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        self._drop(key)
        now = time.time()
        self._entries[key] = (now, now + ttl, value)
        self.bytes += len(value)
        while self._entries and (len(self._entries) > self.settings.max_entries or self.bytes > self.settings.max_bytes):
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self.bytes -= len(found[2])

    async def close(self) -> None:
        self._entries.clear()


class RedisCache:
    """Entries in Redis, shared by replicas: one key per entry (a single hash slot: Cluster-safe),
    holding when it was stored and the reply. Any Redis failure is a miss, logged once; after
    one, Redis is left alone for a second at a time (a stalled Redis costs one timeout a second,
    not one per request)."""

    PAUSE = 1.0

    def __init__(self, settings: CacheSettings) -> None:
        import redis.asyncio as redis_asyncio

        self.settings = settings
        self._redis = redis_asyncio.from_url(settings.url or "redis://127.0.0.1:6379/0", socket_timeout=0.5, socket_connect_timeout=0.5,
                                             retry_on_timeout=False)  # fmt: skip
        self.reachable = True
        self._retry_at = 0.0
        self.on_change: Callable[[bool], None] = lambda up: None

    def _name(self, key: str) -> str:
        return f"{self.settings.namespace}:cache:{{{key}}}"

    def _paused(self) -> bool:
        return not self.reachable and time.monotonic() < self._retry_at

    def _failed(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self.PAUSE
        if self.reachable:
            self.reachable = False
            self.on_change(False)
            log.error("cache: Redis is unreachable (%s); requests go upstream uncached until it returns", type(exc).__name__)

    def _answered(self) -> None:
        if not self.reachable:
            self.reachable = True
            self.on_change(True)
            log.warning("cache: Redis answers again")

    async def get(self, key: str) -> tuple[bytes, float] | None:
        return (await self.get_many([key]))[0]

    async def get_many(self, keys: list[str]) -> list[tuple[bytes, float] | None]:
        """Many entries in one round trip (a pipeline of GETs: each key keeps its own slot)."""
        if self._paused() or not keys:
            return [None] * len(keys)
        try:
            pipe = self._redis.pipeline(transaction=False)
            for key in keys:
                pipe.get(self._name(key))
            raws = await pipe.execute()
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as exc:
            self._failed(exc)
            return [None] * len(keys)
        self._answered()
        return [(raw[17:], float(raw[:17].decode())) if isinstance(raw, bytes) and len(raw) >= 17 else None for raw in raws]

    async def put_many(self, items: list[tuple[str, bytes]], ttl: float) -> None:
        if self._paused() or not items:
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            stamp = f"{time.time():17.6f}".encode()
            for key, value in items:
                pipe.set(self._name(key), stamp + value, px=max(1, int(ttl * 1000)))
            await pipe.execute()
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as exc:
            self._failed(exc)
            return
        self._answered()

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        await self.put_many([(key, value)], ttl)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._redis.aclose(), 1.0)
        except Exception:  # a closing cache never holds a shutdown
            pass


# -------------------------------------------------------------------- what an entry holds


def entry_bytes(reply: Any = None, chunks: list[Any] | None = None) -> bytes:
    """An entry: the reply, or a stream's chunks (the reply is rebuilt from them when a
    non-streaming caller hits it)."""
    return json.dumps({"reply": reply, "chunks": chunks}, separators=(",", ":"), ensure_ascii=False).encode()


def reply_of(entry: dict) -> dict:
    """The reply of an entry (a stream's chunks assembled into a chat completion)."""
    if entry.get("reply") is not None:
        return dict(entry["reply"])
    return assemble(entry["chunks"])


def chunks_of(entry: dict, with_usage: bool) -> list[dict]:
    """The chunks of an entry (a reply turned into the chunks its stream would have sent); the
    usage chunk only when the caller asked for it."""
    chunks = entry["chunks"] if entry.get("chunks") is not None else split(entry["reply"])
    out = []
    for chunk in chunks:
        if not dict.get(chunk, "choices") and dict.get(chunk, "usage") is not None:
            if with_usage:
                out.append(chunk)
            continue
        if with_usage:
            out.append({**chunk, "usage": None})
        else:
            out.append({k: v for k, v in chunk.items() if k != "usage"})
    return out


def assemble(chunks: list[dict]) -> dict:
    """A chat completion from a stream's chunks: each choice's text, reasoning and tool calls
    joined (pieces gathered and joined once: linear however many chunks), its finish reason, and
    the usage."""
    first = chunks[0] if chunks else {}
    texts: dict[int, dict[str, list[str]]] = {}
    calls: dict[int, dict[int, dict[str, Any]]] = {}
    finishes: dict[int, Any] = {}
    usage = None
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            parts = texts.setdefault(index, {"content": [], "reasoning_content": []})
            delta = choice.get("delta") or {}
            for name in ("content", "reasoning_content"):
                if delta.get(name):
                    parts[name].append(delta[name])
            for call in delta.get("tool_calls") or []:
                known = calls.setdefault(index, {}).setdefault(call.get("index", 0), {"id": None, "name": "", "arguments": []})
                function = call.get("function") or {}
                known["id"] = known["id"] or call.get("id")
                known["name"] = known["name"] or function.get("name") or ""
                known["arguments"].append(function.get("arguments") or "")
            if choice.get("finish_reason"):
                finishes[index] = choice["finish_reason"]
    built = []
    for index in sorted(texts):
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts[index]["content"]) or None}
        if texts[index]["reasoning_content"]:
            message["reasoning_content"] = "".join(texts[index]["reasoning_content"])
        made = calls.get(index, {})
        message["tool_calls"] = [{"id": made[k]["id"], "type": "function", "function": {"name": made[k]["name"],
                                  "arguments": "".join(made[k]["arguments"])}} for k in sorted(made)] or None  # fmt: skip
        built.append({"index": index, "message": message, "finish_reason": finishes.get(index), "logprobs": None})
    return {"id": first.get("id"), "object": "chat.completion", "created": first.get("created"), "model": first.get("model"),
            "choices": built, "usage": usage, "system_fingerprint": None}  # fmt: skip


def split(reply: dict) -> list[dict]:
    """The chunks a stream of a chat completion would have sent: per choice, its reasoning, its
    text, its tool calls and its finish; then the usage."""
    head = {"id": reply.get("id"), "object": "chat.completion.chunk", "created": reply.get("created"), "model": reply.get("model"),
            "system_fingerprint": None}  # fmt: skip
    out = []
    for choice in reply.get("choices") or []:
        message = choice.get("message") or {}
        index = choice.get("index", 0)

        def chunk(delta: dict, finish: Any = None, index: int = index) -> dict:
            return {**head, "choices": [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}]}

        if message.get("reasoning_content"):
            out.append(chunk({"role": "assistant", "content": None, "reasoning_content": message["reasoning_content"], "tool_calls": None}))
        out.append(chunk({"role": "assistant", "content": message.get("content") or "", "tool_calls": None}))
        for k, call in enumerate(message.get("tool_calls") or []):
            out.append(chunk({"content": None, "tool_calls": [{"index": k, **call}]}))
        out.append(chunk({"content": None, "tool_calls": None}, choice.get("finish_reason") or "stop"))
    out.append({**head, "choices": [], "usage": reply.get("usage")})
    return out


INCOMPLETE = frozenset({"length", "content_filter"})  # a reply cut short or withheld is never kept


def complete(reply: Any) -> bool:
    """Whether a chat reply may be kept: every choice finished on its own."""
    choices = dict.get(reply, "choices") or []
    return bool(choices) and all(dict.get(choice, "finish_reason") not in INCOMPLETE for choice in choices)


def renamed(objects: list[dict]) -> list[dict]:
    """A hit's reply or chunks under a new id and time (ids stay unique per request in logs;
    tool-call ids are kept: the conversation refers to them)."""
    new_id, now = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    return [{**obj, "id": new_id, "created": now} for obj in objects]


class CachedStream:
    """A stored stream played back, with what the relay reads of a live one."""

    opc_request_id = None

    def __init__(self, chunks: list[dict]) -> None:
        self.chunks = chunks

    async def _batches(self, *, plain: bool = False) -> Any:
        if self.chunks:
            yield [dict(chunk) for chunk in self.chunks]

    async def aclose(self) -> None:
        pass


class StreamRecorder:
    """Keeps a stream's chunks, as the caller got them (after guardrails), for the cache; the
    relay stores them only when the stream ended well (never one cut short or failed)."""

    def __init__(self, store: Any, key: str, ttl: float, stored: Callable[[int], None] = lambda n: None) -> None:
        self.store, self.key, self.ttl, self.stored = store, key, ttl, stored
        self.texts: list[str] = []  # each chunk as sent, serialised once (parsed back once, at the end)
        self.size = 0
        self.unguarded: Callable[[], bool] = lambda: False  # a guardrail failed open on it: never kept

    def add(self, batch: list[Any]) -> None:
        if self.size > MAX_ENTRY_BYTES:
            return  # too big to keep: the rest is not copied either
        for chunk in batch:
            text = json.dumps(chunk, separators=(",", ":"), ensure_ascii=False, default=str)
            self.size += len(text)
            self.texts.append(text)

    async def finish(self, usage: dict[str, Any] | None) -> None:
        """Store the stream; ``usage``: what it used, kept even when this caller did not ask
        for it (a later caller may)."""
        if not self.texts or self.size > MAX_ENTRY_BYTES or self.unguarded():
            return
        chunks = json.loads(f"[{','.join(self.texts)}]")
        finishes = [choice.get("finish_reason") for chunk in chunks for choice in chunk.get("choices") or () if choice.get("finish_reason")]
        if not finishes or any(reason in INCOMPLETE for reason in finishes):
            return
        if usage and not any(chunk.get("usage") for chunk in chunks):
            head = chunks[0]
            chunks.append({"id": head.get("id"), "object": "chat.completion.chunk", "created": head.get("created"), "model": head.get("model"),
                           "system_fingerprint": None, "choices": [], "usage": dict(usage)})  # fmt: skip
        value = entry_bytes(chunks=chunks)
        await self.store.put(self.key, value, self.ttl)
        self.stored(len(value))


@dataclass
class CachePlan:
    """What the cache does for one request: its entry's key and the request's own say."""

    key: str
    control: CacheControl


class ResponseCache:
    """The cache stage of the metered path: which requests it serves, the lookup (honouring
    the request's no-cache and s-maxage), and keeping replies and streams (honouring no-store
    and ttl)."""

    def __init__(self, settings: CacheSettings, store: Any = None, observer: Any = None) -> None:
        self.settings = settings
        self.store = store if store is not None else RedisCache(settings) if settings.kind == "redis" else LocalCache(settings)
        self.stored: Callable[[int], None] = (lambda n: observer.cached(stored_bytes=n)) if observer is not None else (lambda n: None)
        if observer is not None and isinstance(self.store, RedisCache):
            self.store.on_change = lambda up: observer.cached(redis_up=up)

    def plan(self, control: CacheControl, *, route: str, method: str, model: Any, first: Any, params: dict[str, Any],
             guardrails: list[str], caller: Any) -> CachePlan | None:  # fmt: skip
        """The request's plan, or None when the cache stays out of it (a call type it does not
        serve; ``mode: default_off`` and the request did not ask; no-cache with no-store)."""
        if method not in ("completion", "embedding", "rerank") or route not in self.settings.call_types:
            return None  # OCI's stored Responses (method "responses") carry state the cache must not replay
        policy = caller.cache or {}
        refused = [c for c in control.sent if c not in policy.get("allowed_controls", CONTROLS)]
        if refused:
            raise GatewayError(403, f"cache: this key may not send {', '.join(refused)}; it may send "
                               f"{', '.join(policy['allowed_controls']) or 'none'}", kind="permission_error", param="cache",
                               code="cache_control_not_allowed")  # fmt: skip
        sampled = method == "completion" and params.get("temperature") != 0  # embeddings and rerank are deterministic
        if policy.get("enabled") is False or (policy.get("deterministic_only") and sampled):
            return None
        if "ttl" in policy:  # the key's lifetime for its entries, and the most a request may ask
            control.ttl = policy["ttl"] if control.ttl is None else min(control.ttl, policy["ttl"])
        if not (self.settings.default_on or control.asked) or not (control.read or control.write):
            return None
        key = cache_key(self.settings, route=route, method=method, model=model, first=first, params=params, guardrails=guardrails,
                        caller=caller)  # fmt: skip
        return CachePlan(key, control)

    async def find(self, plan: CachePlan) -> dict[str, Any] | None:
        if not plan.control.read:
            return None
        return self._entry(plan, await self.store.get(plan.key))

    async def find_many(self, plans: list[CachePlan]) -> list[dict[str, Any] | None]:
        """Entries for many plans in one lookup (an embeddings batch: one round trip, not one per input)."""
        readable = [plan for plan in plans if plan.control.read]
        found = iter(await self.store.get_many([plan.key for plan in readable]))
        out: list[dict[str, Any] | None] = []
        for plan in plans:
            raw = next(found) if plan.control.read else None
            out.append(self._entry(plan, raw))
        return out

    @staticmethod
    def _entry(plan: CachePlan, found: tuple[bytes, float] | None) -> dict[str, Any] | None:
        if found is None:
            return None
        value, stored_at = found
        if plan.control.max_age is not None and time.time() - stored_at > plan.control.max_age:
            return None
        try:
            entry = json.loads(value)
        except ValueError:
            return None
        return entry if isinstance(entry, dict) else None

    async def keep_many(self, items: list[tuple[CachePlan, Any]]) -> None:
        """Keep many replies at once (an embeddings batch's inputs share one lifetime)."""
        writable = [(plan, entry_bytes(reply=reply)) for plan, reply in items if plan.control.write and self._ttl(plan)]
        writable = [(plan, value) for plan, value in writable if len(value) <= MAX_ENTRY_BYTES]
        if not writable:
            return
        await self.store.put_many([(plan.key, value) for plan, value in writable], self._ttl(writable[0][0]))
        self.stored(sum(len(value) for _, value in writable))

    def _ttl(self, plan: CachePlan) -> float:
        """The operator's ``ttl`` bounds every entry: a request (or a key's policy) may only shorten it."""
        return self.settings.ttl if plan.control.ttl is None else min(plan.control.ttl, self.settings.ttl)

    async def keep(self, plan: CachePlan, reply: Any) -> None:
        if not plan.control.write or not self._ttl(plan):
            return
        value = entry_bytes(reply=reply)
        if len(value) <= MAX_ENTRY_BYTES:
            await self.store.put(plan.key, value, self._ttl(plan))
            self.stored(len(value))

    def recorder(self, plan: CachePlan) -> StreamRecorder | None:
        if not plan.control.write or not self._ttl(plan):
            return None
        return StreamRecorder(self.store, plan.key, self._ttl(plan), self.stored)

    async def close(self) -> None:
        await self.store.close()
