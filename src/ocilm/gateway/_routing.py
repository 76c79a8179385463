"""Which deployment answers: the router over a model name's deployments (shuffled, falling back
on failure, each deployment's own rpm/tpm respected), and how an upstream failure is answered."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any

from .._capabilities import DEFAULT_MAX_TOKENS
from .._client import AsyncClient
from .._core import DEFAULT_TIMEOUT, call_deadline
from .._errors import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    InternalServerError,
    NotFoundError,
    OCIError,
    PermissionDeniedError,
    RateLimitError,
)
from .._retry import error_class_key, retry_counts
from ._config import Deployment, GatewayConfig
from ._errors import GatewayError
from ._http import time_limit
from ._routing_policy import NoDeploymentForTags, RoutingState, by_tags
from .governance._gate import limits_unavailable, rate_limited
from .governance._limits import Limit, LimiterUnavailable, Limits, RateLimited, Ticket
from .governance._worst_case import output_limit_sent
from .observability._ids import new_id

log = logging.getLogger("ocilm.gateway")
FALLBACK_ERRORS = (RateLimitError, InternalServerError, APIConnectionError, APIResponseValidationError)

def _support_note(exc: OCIError) -> str:
    return f" (opc-request-id {exc.opc_request_id})" if exc.opc_request_id else ""


def gateway_error_for(exc: OCIError) -> GatewayError:
    """Map an ocilm error to the status an OpenAI client should see.

    Failures of the gateway's own upstream (5xx, its credentials, its config) get a generic
    message with OCI's request id: the detail, which can name private hosts, paths and
    profiles, goes to the gateway's log, not to the caller.
    """
    upstream = exc.code is not None or exc.opc_request_id is not None
    note = _support_note(exc)
    if isinstance(exc, APITimeoutError):
        return GatewayError(504, f"upstream OCI did not answer in time{note}", kind="timeout_error", code="upstream_timeout")
    if isinstance(exc, (APIConnectionError, APIResponseValidationError)):
        return GatewayError(502, f"upstream OCI failed{note}; see the gateway log", kind="api_error", code="upstream_error")
    if isinstance(exc, RateLimitError):
        headers = {"retry-after": str(max(1, math.ceil(exc.retry_after)))} if exc.retry_after is not None else {}
        return GatewayError(429, f"OCI is rate limiting this model; try again later{note}", kind="rate_limit_error", code="rate_limited", headers=headers)
    if isinstance(exc, ConfigurationError):
        return GatewayError(500, "the gateway's OCI configuration is not usable; see the gateway log", kind="server_error", code="gateway_configuration")
    if isinstance(exc, (AuthenticationError, PermissionDeniedError)) and upstream:
        return GatewayError(502, f"OCI refused the gateway's credentials{note}; see the gateway log", kind="api_error", code="upstream_auth")
    if isinstance(exc, NotFoundError) and upstream:
        return GatewayError(502, f"OCI could not find the model behind this name{note}", kind="api_error", code="upstream_not_found")
    if exc.status_code is not None and exc.status_code >= 500:
        return GatewayError(502, f"upstream OCI error{note}; see the gateway log", kind="api_error", code="upstream_error")
    status = exc.status_code if exc.status_code and 400 <= exc.status_code < 500 else 400
    return GatewayError(status, exc.message, param=exc.param, code=exc.code)


MAX_MODEL_NAME = 256  # what the spend log's column holds


def all_cooling(name: Any, wait: float) -> GatewayError:
    """Every deployment of a model is cooling down: a 429 saying when one is back (not a 500)."""
    seconds = max(1, math.ceil(wait))
    return GatewayError(429, f"every deployment of model {name!r} is cooling down after failures; retry in {seconds} s",
                        kind="rate_limit_error", code="deployments_cooling", headers={"retry-after": str(seconds)})  # fmt: skip


def _deployments_fault(exc: OCIError) -> bool:
    """Whether a failure is the deployment's (it may cool it), not the caller's: 429, 5xx, a
    timeout, no connection, an unreadable reply; never a 400-class refusal of the request."""
    return isinstance(exc, (*FALLBACK_ERRORS, APITimeoutError)) or (exc.status_code is not None and exc.status_code >= 500)


def _retry_after(exc: OCIError) -> float | None:
    return exc.retry_after if isinstance(exc, RateLimitError) and exc.retry_after is not None else None


def chat_usage(usage: Any) -> dict[str, Any] | None:
    """A reply's usage under chat's names: the Responses API's ``input_tokens``/``output_tokens``
    become ``prompt_tokens``/``completion_tokens``; chat usage is returned as it is."""
    if not isinstance(usage, dict):
        return None
    if "input_tokens" in usage and "prompt_tokens" not in usage:
        return {"prompt_tokens": usage.get("input_tokens"), "completion_tokens": usage.get("output_tokens")}
    return usage


def checked_model_name(name: Any) -> str:
    """A model name as asked, or a 400: a string of 1 to 256 characters with no control
    characters (an alias pattern such as ``claude-*`` matches anything, newlines included)."""
    if not isinstance(name, str) or not name:
        raise GatewayError(400, "model: required, the name of a model this gateway serves", param="model")
    if len(name) > MAX_MODEL_NAME or not name.isprintable():
        raise GatewayError(400, f"model: expected a name of at most {MAX_MODEL_NAME} printable characters", param="model",
                           code="invalid_value")  # fmt: skip
    return name


class Router:
    """Picks deployments for a model name: shuffled, falling back to the next on failure.

    The first deployment's ``timeout`` (``stream_timeout`` for a stream's first chunk) is the
    caller's deadline for the whole call. A throttled or failing deployment is left at once
    for the next; only the last one retries, and only while the deadline allows.
    """

    def __init__(self, config: GatewayConfig, client: AsyncClient, limits: Limits | None = None) -> None:
        self.config = config
        self.client = client
        self.limits = limits  # for the deployments' own rpm/tpm
        self.state = RoutingState(config.routing)  # each deployment's in-flight count, latency, failures, cooldown
        self.observer: Any = None  # told of cooldowns (metrics)

    def deployments(self, name: Any) -> list[Deployment]:
        """The deployments behind a model name, shuffled; a name is checked where it enters (it
        is stored, logged and labelled only once resolved, but never trusted before)."""
        found = self.config.deployments.get(self.config.resolve(checked_model_name(name)))
        if not found:
            raise GatewayError(404, f"model {name!r} not found; GET /v1/models lists the models this key may use",
                               param="model", code="model_not_found")  # fmt: skip
        return random.sample(found, len(found))

    def eligible(self, name: Any, tags: tuple[str, ...] | None) -> list[Deployment]:
        """The deployments that may answer a request for ``name`` with these routing tags."""
        return self._tagged(name, self.deployments(name), tags)

    def _tagged(self, name: Any, deployments: list[Deployment], tags: tuple[str, ...] | None) -> list[Deployment]:
        if not self.config.routing.tag_filtering:
            return deployments
        try:
            return by_tags(deployments, tuple(tags or ()), self.config.routing.tags_match_any)
        except NoDeploymentForTags as exc:
            raise GatewayError(400, f"no deployment of model {name!r} serves the tags {exc} (and none is tagged 'default')",
                               param="tags", code="no_deployment_for_tags") from None  # fmt: skip

    async def call(self, name: Any, method: str, *args: Any, stream: bool = False, door: bool = False,
                   tried: list[Deployment] | None = None, worst_case: Callable[[Deployment], tuple[int, int]] | None = None,
                   held: list[Ticket] | None = None, failed: Callable[[Deployment, OCIError], None] | None = None,
                   traced: Callable[[Deployment], Any] | None = None, pinned: str | None = None, tags: tuple[str, ...] | None = None,
                   num_retries: int | None = None, **params: Any) -> Any:  # fmt: skip
        """Call the deployments for ``name`` in turn. ``door``: the request came through an agent
        door, whose clients send what their own vendor's models take: parameters a deployment's
        model cannot take are dropped for it, and the output limit is clamped to its maximum.
        ``tried``: each deployment is appended as it is called (the last one answered).
        ``worst_case``: the request's most tokens on a deployment, reserved against its own tpm.
        ``held``: where a stream's deployment ticket goes, to be reconciled with the stream's
        usage at its end (without it, a stream's ticket is released at its worst case)."""
        deployments = self.deployments(name)
        if pinned is not None:  # a stored response lives on one deployment
            deployments = [d for d in deployments if d.place == pinned]
            if not deployments:
                raise GatewayError(404, "the deployment that stored this response is no longer configured", code="previous_response_not_found")
        deployments = self._tagged(name, deployments, tags)
        deployments, wait = self.state.candidates(deployments, time.monotonic(), stream)
        if not deployments:
            raise all_cooling(name, wait)
        budget = deployments[0].deadline_seconds(stream) or DEFAULT_TIMEOUT
        retries = num_retries if num_retries is not None else self.config.routing.num_retries  # a request's own count wins
        stream_args = {"stream": stream} if method in ("completion", "responses") else {}
        end = time.monotonic() + budget
        token = call_deadline.set(end)
        try:
            last: OCIError | None = None
            full: list[RateLimited] = []
            routing = self.config.routing
            for position, deployment in enumerate(deployments):
                position_left = len(deployments) - 1 - position  # deployments after this one
                if position_left:
                    failover = {"max_retries": 0}  # the next deployment is the retry
                else:
                    failover = {"max_retries": retries} if retries is not None else {}
                own = door_params(deployment, params) if door else params
                left = end - time.monotonic()
                if left <= 0:
                    break
                try:
                    ticket = None
                    if self.limits is not None and (deployment.rpm or deployment.tpm):  # a wait only where there is one
                        async with time_limit(left):
                            ticket = await self._admit(deployment, worst_case)
                except RateLimited as exc:
                    log.info("%s: %s is at its %s limit, trying the next deployment", name, deployment.place, exc.kind)
                    full.append(exc)
                    continue
                except TimeoutError:
                    break
                if tried is not None:
                    tried.append(deployment)
                result = None
                started = time.monotonic()
                # each attempt but the last gets a share of what is left, so a hung one still leaves time to fail over
                share = max(0.0, end - started) / (position_left + 1)
                self.state.started(deployment.id, started)
                outcome = False
                policy = (routing.model_retry_policy.get(deployment.model_name) or routing.retry_policy) if not position_left else None
                counting = retry_counts.set(policy) if policy else None
                try:
                    with traced(deployment) if traced is not None else contextlib.nullcontext():
                        call_args = args[0] if method == "rerank" else args  # (query, documents)
                        try:
                            async with time_limit(share):
                                result = await getattr(self.client, method)(
                                    deployment.model, *call_args, **stream_args, **{**deployment.params, **own, **failover}
                                )
                        except TimeoutError:  # the gateway's own deadline: this deployment did not answer in time
                            raise APITimeoutError(f"{name}: {deployment.place} gave no reply within {share:.3g} s") from None
                    outcome = True
                    self._succeeded(deployment, result, started, stream)
                    return result
                except OCIError as exc:
                    outcome = True
                    cooled = self.state.failed(deployment.id, time.monotonic(), _deployments_fault(exc), _retry_after(exc), error_class_key(exc))
                    if cooled:
                        log.warning("%s: %s cools down for %.1f s after %s", name, deployment.place, cooled, type(exc).__name__)
                        if self.observer is not None:
                            self.observer.cooled(deployment.model_name, deployment.model)
                    if failed is not None:
                        failed(deployment, exc)
                    if not isinstance(exc, (*FALLBACK_ERRORS, APITimeoutError)):
                        raise
                    log.warning("%s: %s failed (%s: %s), trying the next deployment", name, deployment.place, type(exc).__name__, exc)
                    last = exc
                finally:
                    if counting is not None:
                        retry_counts.reset(counting)
                    if not outcome:  # cancelled: the caller left
                        self.state.ended(deployment.id)
                    if ticket is not None:
                        if stream and result is not None and held is not None:
                            held.append(ticket)  # reconciled by the stream's watch with its usage
                        else:
                            await self._release(ticket, result, stream)
            if last is None and full:  # every deployment was at its own limit
                err = rate_limited(min(full, key=lambda exc: exc.retry_after))
                err.code = "deployments_full"
                raise err
            if last is None:
                raise APITimeoutError(f"{name}: no reply within {budget:g} s (the deployment's timeout)")
            raise last
        finally:
            call_deadline.reset(token)


    def _succeeded(self, deployment: Deployment, result: Any, started: float, stream: bool) -> None:
        now = time.monotonic()
        usage = None if stream else chat_usage(dict.get(result, "usage")) if isinstance(result, dict) else None
        tokens = int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0) if usage else 0
        # a stream is open once its first chunk came: the wait so far is its time to first token
        self.state.succeeded(deployment.id, now, now - started, ttft=(now - started) if stream else None, tokens=tokens)

    async def _admit(self, deployment: Deployment, worst_case: Callable[[Deployment], tuple[int, int]] | None) -> Ticket | None:
        if self.limits is None or not (deployment.rpm or deployment.tpm):
            return None
        tokens = sum(worst_case(deployment)) if worst_case is not None else 0
        limit = Limit("deployment", f"deployment:{deployment.model_name}:{deployment.place}", deployment.rpm, deployment.tpm)
        try:
            return await self.limits.admit(new_id("dep"), (limit,), tokens)
        except LimiterUnavailable:
            raise limits_unavailable() from None

    async def _release(self, ticket: Ticket, result: Any, stream: bool) -> None:
        usage = chat_usage(dict.get(result, "usage")) if isinstance(result, dict) and not stream else None
        used = int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0) if usage else (0 if result is None else None)
        assert self.limits is not None
        await self.limits.finish(ticket, used)


def door_params(deployment: Deployment, params: dict[str, Any]) -> dict[str, Any]:
    """A door request's parameters for one deployment: what its model cannot take is dropped
    (``drop_params``, the capability table decides), and the output limit is clamped (Claude
    Code asks for 32,000 and more; OCI's on-demand cap is far lower) by the same function the
    request's worst case is computed with."""
    if isinstance(params.get("max_tokens"), int):
        params = {**params, "max_tokens": output_limit_sent(params, deployment.max_output_tokens, DEFAULT_MAX_TOKENS, door=True)}
    return {**params, "drop_params": True}



def probe_kind(deployment: Deployment) -> str:
    """The kind of call that says whether a deployment is healthy: its own (an embedding model
    answers embeddings, a rerank model rerank, a Responses-only model on /openai/v1 a response)."""
    model = deployment.model.removeprefix("oci/")
    if "embed" in model:
        return "embedding"
    if "rerank" in model:
        return "rerank"
    if deployment.api_mode == "openai" and model.split(".", 1)[0] == "openai" and model.endswith("-pro"):
        return "responses"  # OpenAI's -pro models are served by the Responses API only
    return "completion"


async def _probe(router: Router, deployment: Deployment) -> None:
    params = {**deployment.params, "max_retries": 0}
    kind = probe_kind(deployment)
    if kind == "embedding":
        await router.client.embedding(deployment.model, ["ping"], **params)
    elif kind == "rerank":
        await router.client.rerank(deployment.model, "ping", ["ping"], **params)
    elif kind == "responses":
        await router.client.responses(deployment.model, "ping", **{**params, "max_output_tokens": 16, "store": False})
    else:
        await router.client.completion(deployment.model, [{"role": "user", "content": "ping"}], **{**params, "max_tokens": 1})


async def check_health_forever(router: Router, interval: float) -> None:
    """general_settings.background_health_checks: one small call of each deployment's own kind
    (``probe_kind``) each ``interval`` seconds, so a failing one cools before a caller meets it
    (and a cooled one that answers again is closed). The calls cost tokens: off by default."""
    while True:
        await asyncio.sleep(interval)
        for group in list(router.config.deployments.values()):
            for deployment in group:
                started = time.monotonic()
                router.state.started(deployment.id, started)
                try:
                    await _probe(router, deployment)
                except OCIError as exc:
                    router.state.failed(deployment.id, time.monotonic(), _deployments_fault(exc), _retry_after(exc), error_class_key(exc))
                except asyncio.CancelledError:
                    router.state.ended(deployment.id)
                    raise
                else:
                    now = time.monotonic()
                    router.state.succeeded(deployment.id, now, now - started)
