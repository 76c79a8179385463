"""The one metered path every model route takes (chat, embeddings, and the agent doors).

``Metered.call`` admits a request (the key may use the model; its worst case, a function of the
whole request, fits its rate limits and budgets), runs the upstream call while the caller is
connected, and settles what it cost: at once for a reply, at its end for a stream. ``relay``
is the one stream relay: each route only says how its events are framed, and every stream is
settled before its last event, billed from what was delivered when the client leaves, and
closed however it ends.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.requests import Request

from .._capabilities import DEFAULT_MAX_TOKENS
from .._errors import OCIError
from .._retry import retry_listener
from .._types import ChatCompletion, EmbeddingResponse, RerankResponse
from ._background import BackgroundSettlements, runs_on
from ._cache import (
    CacheControl,
    CachedStream,
    CachePlan,
    ResponseCache,
    StreamRecorder,
    chunks_of,
    complete,
    renamed,
    reply_of,
)
from ._config import Deployment
from ._errors import GatewayError
from ._guardrails import Guardrails, GuardrailSpec, StreamGuard
from ._http import ClientGone, while_connected
from ._routing import FALLBACK_ERRORS, Router, chat_usage, gateway_error_for
from .governance._gate import Caller, Gate, StreamWatch, cost_header
from .governance._policy import Price
from .governance._tool_calls import hosted_types, responses_usage
from .governance._worst_case import (
    OUTPUT_LIMIT_FIELDS,
    BadNumber,
    check_numbers,
    input_ceiling,
    output_ceiling,
)
from .observability import Observer, RequestRecord

log = logging.getLogger("ocilm.gateway")


@dataclass
class Upstream:
    """An upstream call's result, with what governance adds: the cost header of a settled
    reply, or the watch that settles a stream when it ends."""

    result: Any
    headers: dict[str, str]
    watch: StreamWatch | None
    deployment: Deployment | None = None  # the one that answered
    guard: StreamGuard | None = None  # during_call guardrails on a stream
    recorder: StreamRecorder | None = None  # the response cache keeping this stream


class _CacheHit:
    """Where a cache hit's spend-log row says it came from: no deployment, at no cost."""

    model = "ocilm-cache"
    price = Price(0.0, 0.0, "cache")


CACHE_HIT = _CacheHit()


@dataclass(frozen=True)
class SideTarget:
    """What a call that is not a model's (a moderation, a stored response's read) reaches, as its
    spend-log row names it, and what it costs (nothing unless the operator prices it)."""

    model: str
    price: Price = field(default_factory=lambda: Price(0.0, 0.0, "none"))


class _SideWorstCase:
    """A side call's worst case: its input tokens, and its priced calls (each made at most once)."""

    def __init__(self, input_tokens: int, calls: dict[str, int] | None) -> None:
        self.input_tokens = input_tokens
        self.hosted_tools = (set(calls or ()), max((calls or {}).values(), default=0))

    def __call__(self, deployment: Any) -> tuple[int, int]:
        return self.input_tokens, 0


_REPLY_TYPES = {"completion": ChatCompletion, "embedding": EmbeddingResponse, "rerank": RerankResponse}


class WorstCase:
    """A request's most input and output tokens on each deployment. The input is counted once
    (a long agent context is walked once, not per deployment, and only when something needs it)."""

    def __init__(self, method: str, first: Any, params: dict[str, Any], door: bool) -> None:
        self.method, self.first, self.params, self.door = method, first, params, door
        self._input: int | None = None
        # the hosted tools the request offers and the most calls it may make (bounded by the route)
        offered = hosted_types(params.get("tools")) if method == "responses" else set()
        most = params.get("max_tool_calls") if offered else 0
        self.hosted_tools = (offered, most if isinstance(most, int) and not isinstance(most, bool) and most > 0 else 0)

    @property
    def input_tokens(self) -> int:
        if self._input is None:
            self._input = input_ceiling(self.first, self.params)
        return self._input

    def __call__(self, deployment: Deployment) -> tuple[int, int]:
        if self.method not in ("completion", "responses"):
            return self.input_tokens, 0
        params = self.params
        if not any(name in params for name in OUTPUT_LIMIT_FIELDS):  # the deployment's own default limit is what is sent
            params = {**{k: v for k, v in deployment.params.items() if k in OUTPUT_LIMIT_FIELDS}, **params}
        # a limit that bounds reasoning too is held exactly; otherwise the model's thinking allowance is added
        allowance = 0 if deployment.reasoning_bounded(self.params, self.method) else deployment.reasoning_allowance
        output = output_ceiling(params, deployment.max_output_tokens, DEFAULT_MAX_TOKENS, self.door, allowance)
        return self.input_tokens, output


@dataclass
class _Prepared:
    """A request as it goes upstream: masked by ``pre_call`` once, whichever model answers it."""

    first: Any
    params: dict[str, Any]
    checked: bool


class Metered:
    """The upstream call every model route makes: the key may use the model, its worst case is
    reserved against its limits and budgets, the call runs while the client is connected, and
    the actual cost is settled (at once, or by the stream's watch)."""

    def __init__(self, gate: Gate, router: Router, observer: Observer, guardrails: Guardrails | None = None,
                 cache: ResponseCache | None = None) -> None:  # fmt: skip
        self.gate, self.router, self.observer = gate, router, observer
        self.guardrails, self.cache = guardrails, cache
        self.background = BackgroundSettlements(gate, router.client)
        self.catalog: Any = None  # ModelCatalog: what OCI says of each deployment's model (on_retirement)

    async def call(self, request: Request, route: str, name: Any, method: str, first: Any, params: dict[str, Any],
                   *, stream: bool = False, door: bool = False, pinned: str | None = None,
                   fallbacks: list[str] | None = None) -> Upstream:  # fmt: skip
        """``method``: the client's (completion, embedding, responses); ``pinned``: the only
        deployment that may answer (where a stored response lives); ``fallbacks``: the request's
        own fallback models (else the config's). A model whose deployments all failed, or all
        cool down, hands the request to its fallbacks in turn, each routed, limited, held and
        priced as itself; no model is tried twice, and at most ``max_fallbacks`` are."""
        guards = self.guards_for(request) if method in ("completion", "responses") else []
        if "cache" in params:
            params = dict(params)
            asked = params.pop("cache")
            if self.cache is None and asked is not None:
                raise GatewayError(400, "cache: this gateway keeps no response cache (litellm_settings.cache: true turns it on)",
                                   param="cache")  # fmt: skip
        else:
            asked = None
        plan = self._cache_plan(request, route, name, method, first, params, guards, asked)
        if plan is not None:
            if method == "embedding" and (isinstance(first, str) or (isinstance(first, list) and first and all(isinstance(i, str) for i in first))):
                return await self._embed_by_item(request, route, name, [first] if isinstance(first, str) else first, params, asked, fallbacks)
            hit = await self._cached(request, route, name, method, first, params, plan, stream=stream, door=door)
            if hit is not None:
                return hit
        upstream = await self._upstream(request, route, name, method, first, params, stream=stream, door=door, pinned=pinned,
                                        fallbacks=fallbacks, guards=guards)  # fmt: skip
        if plan is not None:
            await self._keep(request, plan, upstream, stream, method)
        return upstream

    async def side_call(self, request: Request, route: str, name: str, work: Callable[[], Awaitable[Any]], *, target: SideTarget,
                        input_tokens: int = 0, allowed: bool | None = None, calls: dict[str, int] | None = None,
                        watch: bool = True) -> tuple[Any, dict[str, str]]:  # fmt: skip
        """A call to OCI that is not a model call (``/v1/moderations``, a stored response's
        retrieval, deletion or input items): through the same gate as every model call, before any
        per-item work: the key may use ``name`` (``allowed`` decides where the route knows better),
        it counts against the key's rate limits (``input_tokens`` against tpm), its worst case is
        held against budgets when it is priced, it runs while the caller is connected, and it is
        settled into the spend log once. ``calls``: the priced calls it makes (an MCP tool's,
        by ``target.price.per_tool_call``), held for and billed through the same settlement.
        ``watch``: False where another layer owns the caller's channel (the MCP transport).
        Returns the result and the headers the reply carries."""
        caller: Caller = request.state.caller
        record: RequestRecord = request.state.record
        if allowed is False or (allowed is None and caller.models and name not in caller.models):
            raise GatewayError(403, f"key {caller.token} may not use {name!r}; it may use: {', '.join(caller.models)}",
                               kind="permission_error", param="model", code="model_not_allowed")  # fmt: skip
        record.model, record.key, record.team = name, caller.token, caller.team_id
        priced = bool(target.price.input_per_token or target.price.output_per_token or calls)
        meter = await self.gate.meter(caller, route, name, [target], _SideWorstCase(input_tokens, calls), record.request_id, hold=priced)
        try:
            result = await (while_connected(request, work) if watch else work())
        except ClientGone:
            await meter.settle(deployment=target, status=499, estimated=(input_tokens, 0))
            raise
        except OCIError as exc:
            await meter.settle(deployment=target, status=gateway_error_for(exc).status)
            raise
        except GatewayError as err:
            await meter.settle(deployment=target, status=err.status)
            raise
        usage: dict[str, Any] = {"prompt_tokens": input_tokens, "completion_tokens": 0}
        if calls:
            usage["tool_calls"] = calls
        record.usage(usage)
        record.cost = cost = await meter.settle(deployment=target, usage=usage)
        return result, {**meter.rate_headers, **cost_header(cost)}

    async def _upstream(self, request: Request, route: str, name: Any, method: str, first: Any, params: dict[str, Any], *, stream: bool,
                        door: bool, pinned: str | None, fallbacks: list[str] | None, guards: list[GuardrailSpec]) -> Upstream:  # fmt: skip
        config = self.router.config
        prepared = _Prepared(first, params, checked=not guards)
        tried_models: list[str] = []
        current: Any = name
        while True:
            try:
                if self.catalog is not None:
                    current = self.catalog.route(current)  # a retired model: refused (block_after) or its replacement (alias)
                upstream = await self._call_model(request, route, current, method, prepared, stream=stream, door=door, pinned=pinned,
                                                  guards=guards)  # fmt: skip
            except (OCIError, GatewayError) as exc:
                resolved = config.resolve(current) if isinstance(current, str) else current
                tried_models.append(resolved)
                # the asked model's list is walked in order (a fallback's own list is not: no detours, no loops)
                following = None if pinned is not None else next_fallback(config, tried_models[0], exc, tried_models, fallbacks)
                if following is None or len(tried_models) > config.max_fallbacks:
                    raise
                log.warning("model %s failed (%s); falling back to %s", resolved, type(exc).__name__, following)
                self.observer.fell_back(resolved, following)
                current = following
                continue
            upstream.headers.update(self._route_headers(request, name, upstream, len(tried_models)))
            return upstream

    def _cache_plan(self, request: Request, route: str, name: Any, method: str, first: Any, params: dict[str, Any],
                    guards: list[GuardrailSpec], asked: Any) -> CachePlan | None:  # fmt: skip
        if self.cache is None:
            return None
        control = CacheControl.parse(asked, request.headers.get("cache-control"))
        # the deployments that may answer this request (after its routing tags): another modelId,
        # region or tag behind the same alias never shares an entry
        deployments = self.router.eligible(name, getattr(request.state, "tags", None))
        model = [deployments[0].model_name, sorted(d.id for d in deployments)]
        return self.cache.plan(control, route=route, method=method, model=model, first=first, params=params,
                               guardrails=[g.digest for g in guards], caller=request.state.caller)  # fmt: skip

    async def _cached(self, request: Request, route: str, name: Any, method: str, first: Any, params: dict[str, Any], plan: CachePlan,
                      *, stream: bool, door: bool) -> Upstream | None:  # fmt: skip
        """A cache hit, answered without OCI: the key may use the model and the request is
        valid (a cache never widens access), it counts against the key's request rate, and is
        logged at no cost. None on a miss."""
        assert self.cache is not None
        self._admit(request, name, params)
        record: RequestRecord = request.state.record
        entry = await self.cache.find(plan)
        if entry is None:
            record.cache = "miss"
            return None
        headers = {"x-litellm-cache-key": plan.key, "x-ocilm-cache": "hit", **await self._settle_hit(request, route, name, stream)}
        if stream:
            asked_usage = bool((params.get("stream_options") or {}).get("include_usage"))
            return Upstream(CachedStream(renamed(chunks_of(entry, with_usage=door or asked_usage))), headers, None)
        reply = renamed([reply_of(entry)])[0] if method == "completion" else dict(entry["reply"])
        return Upstream(_REPLY_TYPES[method](reply), headers, None)

    def _admit(self, request: Request, name: Any, params: dict[str, Any]) -> tuple[list[Deployment], str]:
        """What every request passes, a cache hit too (a cache never widens access): the key may
        use the model, and the request's numbers are valid. Returns the model's deployments and
        its resolved name (the one metrics, spend logs, traces and limits use)."""
        deployments = self.router.deployments(name)
        resolved = deployments[0].model_name
        self.gate.allow(request.state.caller, name, resolved)
        try:
            check_numbers(params)
        except BadNumber as exc:
            raise GatewayError(400, str(exc), param=exc.field, code="invalid_value") from None
        return deployments, resolved

    async def _settle_hit(self, request: Request, route: str, name: Any, stream: bool) -> dict[str, str]:
        """A hit counts against the key's request rate (not its tokens), holds no budget, and is
        logged at no cost; returns its headers."""
        caller: Caller = request.state.caller
        record: RequestRecord = request.state.record
        deployments = self.router.deployments(name)
        resolved = deployments[0].model_name
        record.model, record.key, record.team, record.stream, record.cache = resolved, caller.token, caller.team_id, stream, "hit"
        record.deployment = CACHE_HIT.model
        meter = await self.gate.meter(caller, route, resolved, deployments, lambda _: (0, 0), record.request_id, hold=False)
        record.cost = cost = await meter.settle(deployment=CACHE_HIT, usage={"prompt_tokens": 0, "completion_tokens": 0})
        return {**meter.rate_headers, **cost_header(cost), "x-litellm-model-group": str(name), "x-litellm-model-id": CACHE_HIT.model}

    async def _embed_by_item(self, request: Request, route: str, name: Any, items: list[str], params: dict[str, Any], asked: Any,
                             fallbacks: list[str] | None) -> Upstream:  # fmt: skip
        """Embeddings cached per input: only the inputs not in the cache go upstream (billed as
        such), and the reply is put together in the caller's order."""
        assert self.cache is not None
        self._admit(request, name, params)
        plans = [self._cache_plan(request, route, name, "embedding", {"embedding_input": item}, params, [], asked) for item in items]
        entries: list[dict[str, Any] | None] = [None] * len(items)
        if all(plan is not None for plan in plans):
            found = await self.cache.find_many(plans)  # type: ignore[arg-type]
            entries = [dict.get(entry, "reply") if entry else None for entry in found]
        missing = [i for i, entry in enumerate(entries) if not isinstance(entry, dict) or "embedding" not in entry]
        state = "hit" if not missing else "miss" if len(missing) == len(items) else "partial"
        record: RequestRecord = request.state.record
        headers = {"x-ocilm-cache": state}
        if not missing:
            headers.update(await self._settle_hit(request, route, name, False))
            model = next((e.get("model") for e in entries if e and e.get("model")), None)
            deployment = None
        else:
            upstream = await self._upstream(request, route, name, "embedding", [items[i] for i in missing], params, stream=False, door=False,
                                            pinned=None, fallbacks=fallbacks, guards=[])  # fmt: skip
            record.cache = state
            headers.update(upstream.headers)
            fresh = upstream.result
            data = sorted(dict.get(fresh, "data") or [], key=lambda d: dict.get(d, "index", 0))
            billed = _tokens_of(dict.get(fresh, "usage"))
            sizes = [len(items[i]) or 1 for i in missing]
            model, deployment = dict.get(fresh, "model"), upstream.deployment
            kept = []
            for k, (i, vector) in enumerate(zip(missing, data, strict=False)):
                entries[i] = {"embedding": dict.get(vector, "embedding"), "tokens": round(billed * sizes[k] / sum(sizes)), "model": model}
                plan = plans[i]
                if plan is not None:
                    kept.append((plan, entries[i]))
            await self.cache.keep_many(kept)
        tokens = sum(int(e.get("tokens") or 0) for e in entries if e)
        reply = EmbeddingResponse({"object": "list", "model": model,
                                   "data": [{"object": "embedding", "index": i, "embedding": e["embedding"] if e else None} for i, e in enumerate(entries)],
                                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})  # fmt: skip
        return Upstream(reply, headers, None, deployment)

    async def _keep(self, request: Request, plan: CachePlan, upstream: Upstream, stream: bool, method: str) -> None:
        """Keep what the caller got, unless a guardrail that should have checked it could not
        (``fail_open``): such a reply is served once, never replayed."""
        assert self.cache is not None
        record: RequestRecord = request.state.record
        upstream.headers.update({"x-litellm-cache-key": plan.key, "x-ocilm-cache": "miss"})
        if stream:
            upstream.recorder = self.cache.recorder(plan)
            if upstream.recorder is not None:
                upstream.recorder.unguarded = lambda: record.guardrail_skipped
        elif not record.guardrail_skipped and (method != "completion" or complete(upstream.result)):
            await self.cache.keep(plan, upstream.result)

    @staticmethod
    def _route_headers(request: Request, name: Any, upstream: Upstream, fallbacks: int) -> dict[str, str]:
        """LiteLLM's headers: the group asked for, the deployment that answered, and the retries
        and fallbacks it took."""
        record: RequestRecord = request.state.record
        return {"x-litellm-model-group": str(name), "x-litellm-model-id": upstream.deployment.id if upstream.deployment else "",
                "x-litellm-attempted-retries": str(record.retries + record.fallbacks), "x-litellm-attempted-fallbacks": str(fallbacks)}  # fmt: skip

    def guards_for(self, request: Request) -> list[GuardrailSpec]:
        """The guardrails a request passes: ``default_on`` ones, its key's and team's, those it names."""
        if self.guardrails is None:
            return []
        caller: Caller = request.state.caller
        return self.guardrails.selected(getattr(request.state, "guardrails_asked", None), caller.guardrails)

    async def _call_model(self, request: Request, route: str, name: Any, method: str, prepared: _Prepared,
                          *, stream: bool, door: bool, pinned: str | None, guards: list[GuardrailSpec]) -> Upstream:  # fmt: skip
        """The stages in their order: the key may use the model and its rate limits admit it;
        ``pre_call`` guardrails (once per request, whichever model answers); the budget holds the
        worst case of what is then sent; the call; the settlement."""
        caller: Caller = request.state.caller
        deployments, resolved = self._admit(request, name, prepared.params)
        record: RequestRecord = request.state.record
        record.model, record.key, record.team, record.stream = resolved, caller.token, caller.team_id, stream
        worst_case = WorstCase(method, prepared.first, prepared.params, door)
        meter = await self.gate.meter(caller, route, resolved, deployments, worst_case, record.request_id, hold=False)
        if not prepared.checked:  # a request a guardrail refuses still counted against the key's rate limits, and is logged
            try:
                prepared.first, prepared.params = await self.guardrails.check_request(guards, method, prepared.first, prepared.params,  # type: ignore[union-attr]
                                                                                      record)  # fmt: skip
            except (GatewayError, OCIError) as err:
                await meter.settle(status=err.status if isinstance(err, GatewayError) else 503)
                raise
            prepared.checked = True
            worst_case = WorstCase(method, prepared.first, prepared.params, door)  # of what is sent: masks change the texts
        first, params = prepared.first, prepared.params
        if self.observer.log_prompts:
            record.prompt = first
        await self.gate.hold(meter, caller, resolved, deployments, worst_case)
        asked_usage = bool((params.get("stream_options") or {}).get("include_usage")) if stream else False
        if stream and method == "completion":
            params = {**params, "stream_options": {"include_usage": True}}  # tokens and cost come from OCI's usage
        tried: list[Deployment] = []
        held: list[Any] = []  # a stream's deployment ticket, reconciled with its usage at its end
        extra: dict[str, Any] = {"stream": stream} if method in ("completion", "responses") else {}
        if pinned is not None:
            extra["pinned"] = pinned
        tags = getattr(request.state, "tags", None)
        if tags:
            extra["tags"] = tags
        retries = getattr(request.state, "num_retries", None)
        if retries is not None:
            extra["num_retries"] = retries

        def failed(deployment: Deployment, exc: OCIError) -> None:
            self.observer.upstream_failed(record, resolved, deployment.model, exc)

        def traced(deployment: Deployment) -> Any:
            return self.observer.upstream_span(record, deployment.model, "chat" if method == "completion" else method)

        counting = retry_listener.set(lambda _: _count_retry(record))
        try:
            result = await while_connected(request, lambda: self.router.call(
                name, method, first, door=door, tried=tried, worst_case=worst_case, held=held, failed=failed, traced=traced,
                **extra, **params))  # fmt: skip
        except ClientGone:
            # What OCI bills for a call cancelled before its answer is not documented: the prompt
            # was sent, so it is charged as processed (never 0, which a caller could exploit).
            await meter.settle(deployment=tried[-1] if tried else None, status=499,
                               estimated=(_estimated_prompt(worst_case), 0) if tried else None)  # fmt: skip
            raise
        except OCIError as exc:
            await meter.settle(deployment=tried[-1] if tried else None, status=gateway_error_for(exc).status)
            raise
        except GatewayError as err:  # every deployment at its own limit: release the hold now, not at its expiry
            await meter.settle(deployment=tried[-1] if tried else None, status=err.status)
            raise
        finally:
            retry_listener.reset(counting)
            if tried:
                record.deployment, record.fallbacks = tried[-1].model, len(tried) - 1
        record.opc_request_id = getattr(result, "opc_request_id", None)
        notice = getattr(result, "model_retirement_info", None)
        lifecycle = {"model-retirement-info": notice} if notice else {}  # passed on unchanged, never parsed
        if notice:
            self.observer.retirement_notice(resolved, tried[-1].model, notice)
        if not stream:
            if method == "responses" and runs_on(result):  # background: its hold stays until its usage appears
                offered, most_calls = getattr(worst_case, "hosted_tools", (set(), 0))
                worst_tools = tried[-1].price.worst_calls(offered, most_calls) if tried[-1].price is not None else {}
                self.background.track(result["id"], meter, tried[-1], worst_case(tried[-1]), record, worst_tools)
                return Upstream(result, {**meter.rate_headers, **lifecycle}, None, tried[-1])
            usage = responses_usage(result) if method == "responses" else chat_usage(dict.get(result, "usage"))
            if method == "rerank" and usage is None:  # OCI reports none: the query and documents, about four characters a token
                usage = {"prompt_tokens": _estimated_prompt(worst_case), "completion_tokens": 0}
            record.usage(usage)
            record.cost = cost = await meter.settle(deployment=tried[-1], usage=usage)
            if guards:  # post_call: billed already (the model answered), checked before the caller sees it
                await self.guardrails.check_reply(guards, result, record)  # type: ignore[union-attr]
            return Upstream(result, {**meter.rate_headers, **cost_header(cost), **lifecycle}, None, tried[-1])
        watch = StreamWatch(self.gate, meter, tried[-1], worst_case.input_tokens, keep_usage=door or asked_usage or method == "responses", record=record,
                            on_end=lambda: self.observer.finish(record), deployment_ticket=held[0] if held else None,
                            limits=self.router.limits)  # fmt: skip
        record.closes_itself = True  # the relay closes it at its end (no wrapper around every event)
        guard = self.guardrails.stream_guard(guards, record) if guards else None  # type: ignore[union-attr]
        return Upstream(result, {**meter.rate_headers, **lifecycle}, watch, tried[-1], guard)  # a stream's headers go before its first byte


_CONTEXT_WINDOW = ("context length", "context window", "too long", "too many tokens", "maximum context", "exceeds the limit")
_CONTENT_POLICY = ("content policy", "content filter", "safety", "inappropriate")


def fallback_kind(exc: Exception) -> str | None:
    """Which of LiteLLM's fallback lists a failure calls for, or None (the caller's own error)."""
    if isinstance(exc, GatewayError):
        return "fallbacks" if exc.code in ("deployments_cooling", "deployments_full") else None
    if not isinstance(exc, OCIError):
        return None
    if exc.status_code == 400:
        text = exc.message.lower()
        if any(marker in text for marker in _CONTEXT_WINDOW):
            return "context_window_fallbacks"
        if any(marker in text for marker in _CONTENT_POLICY):
            return "content_policy_fallbacks"
        return None
    return "fallbacks" if isinstance(exc, FALLBACK_ERRORS) else None


def next_fallback(config: Any, model: str, exc: Exception, tried: list[str], asked: list[str] | None) -> str | None:
    """The next model to try after ``model`` failed with ``exc`` (never one tried already)."""
    kind = fallback_kind(exc)
    if kind is None:
        return None
    if asked is not None:
        chain = asked if kind == "fallbacks" else []
    else:
        table = config.fallbacks.get(kind) or {}
        if kind != "fallbacks" and model not in table:
            return None  # LiteLLM's rule: a special list without this model raises the error
        chain = table.get(model) or (config.fallbacks.get("fallbacks") or {}).get("*") or []
    return next((candidate for candidate in chain if candidate not in tried), None)


def _tokens_of(usage: Any) -> int:
    value = dict.get(usage, "prompt_tokens") if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _estimated_prompt(worst_case: WorstCase) -> int:
    return max(1, -(-worst_case.input_tokens // 4))  # about four characters a token


def _count_retry(record: RequestRecord) -> None:
    record.retries += 1


class Framing(Protocol):
    """How one route writes a stream: its opening bytes, the bytes for a batch of chunks, its
    closing bytes, and the bytes that tell the client the stream failed after it started."""

    def start(self) -> bytes: ...

    def batch(self, chunks: list[Any]) -> bytes: ...

    def finish(self) -> bytes: ...

    def fail(self, err: GatewayError, exc: OCIError | None) -> bytes: ...


async def relay(upstream: Upstream, framing: Framing, model: str, done: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[bytes]:
    """A metered stream: one write per upstream read; settled before its closing bytes; an
    upstream failure after the start becomes the route's failure bytes (and is settled as
    such); a client that leaves is billed for what it was sent; the upstream is always closed."""
    stream, watch, guard, recorder = upstream.result, upstream.watch, upstream.guard, upstream.recorder
    try:
        opening = framing.start()
        if opening:
            yield opening
        async for batch in stream._batches(plain=True):
            if watch is not None:
                batch = watch.see(batch)
            if guard is not None:
                batch = await guard.see(batch)  # a window's text, held until checked
                if not batch:
                    continue
            if recorder is not None:
                recorder.add(batch)
            body = framing.batch(batch)
            if body:
                yield body
        if guard is not None:
            rest = await guard.finish()
            if rest:
                if recorder is not None:
                    recorder.add(rest)
                yield framing.batch(rest)
        if watch is not None:
            await watch.finish()  # billed (or queued to be) before the client hears the end
        if recorder is not None:
            await recorder.finish(watch.usage if watch is not None else None)  # only a stream that ended well is kept
        if done is not None:
            await done()  # kept (a stored conversation) before the client hears the end, too
        yield framing.finish()
    except OCIError as exc:
        err = gateway_error_for(exc)
        log.warning("stream for %r failed after it started: %s", model, exc)
        if watch is not None:
            await watch.finish(err.status)
        yield framing.fail(err, exc)
    except GatewayError as err:
        yield framing.fail(err, None)
    finally:
        if watch is not None:
            watch.abandon()  # a client that left: what it was sent is billed
        await stream.aclose()
        if watch is not None:
            watch.ended()
