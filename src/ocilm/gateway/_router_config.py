"""``router_settings`` and ``litellm_settings``, LiteLLM's names: what ocilm's router does with
each, and a refusal naming the place for each it does not do (never a setting silently ignored)."""

from __future__ import annotations

import math
import urllib.parse
from typing import Any

from ._routing_policy import STRATEGIES, RoutingSettings

FALLBACK_KINDS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")
ERROR_CLASSES = ("BadRequestError", "AuthenticationError", "TimeoutError", "RateLimitError", "ContentPolicyViolationError",
                 "InternalServerError", "ServiceUnavailableError", "NotFoundError")  # fmt: skip
RETRY_POLICY_KEYS = frozenset({*(f"{c}Retries" for c in ERROR_CLASSES), "DefaultRetries"})
ALLOWED_FAILS_KEYS = frozenset(f"{c}AllowedFails" for c in ERROR_CLASSES)
MAX_FALLBACKS = 5
# Settings LiteLLM documents that this router does not implement yet, with what to do instead.
_NOT_YET = {
    "tag_routing_prefix": "not implemented; tags match as they are",
    "retry_after": "ocilm waits as the deployment's Retry-After says, else backs off from 0.5 s",
    "redis_host": "router state is per process (rate limits share theirs through general_settings.redis_url)",
    "redis_port": "router state is per process (rate limits share theirs through general_settings.redis_url)",
    "redis_password": "router state is per process (rate limits share theirs through general_settings.redis_url)",
    "redis_url": "router state is per process (rate limits share theirs through general_settings.redis_url)",
    "default_max_parallel_requests": "use max_parallel_requests on keys and teams, or rpm/tpm on deployments",
    "enable_weighted_failover": "a failed deployment's request already goes to the next deployment by weight",
    "timeout": "set timeout on each deployment's litellm_params",
    "stream_timeout": "set stream_timeout on each deployment's litellm_params",
    "routing_groups": "not implemented",
    "optional_pre_call_checks": "not implemented",
    "enable_health_check_routing": "not implemented",
}
_ROUTER_KEYS = frozenset({"routing_strategy", "routing_strategy_args", "num_retries", "allowed_fails", "cooldown_time", "disable_cooldowns",
                          "enable_tag_filtering", "tag_filtering_match_any", "retry_policy", "model_group_retry_policy",
                          "allowed_fails_policy",
                          "model_group_alias", "enable_pre_call_checks", "max_fallbacks", "default_fallbacks", *FALLBACK_KINDS})  # fmt: skip
_LITELLM_KEYS = frozenset({"model_group_alias", "drop_params", "num_retries", "default_fallbacks", "max_fallbacks", "cache", "cache_params",
                           "mcp_aliases",
                           *FALLBACK_KINDS})  # fmt: skip


def routing_settings(raw: dict, names: set[str], problems: list[str]) -> tuple[RoutingSettings, dict[str, dict[str, list[str]]], int, bool]:
    """(router settings, fallbacks by kind -> {model name (or "*"): [model names]}, max
    fallbacks, drop_params for every call). ``router_settings`` wins over ``litellm_settings``."""
    router = raw.get("router_settings") or {}
    litellm = raw.get("litellm_settings") or {}
    for section, table, known in (("router_settings", router, _ROUTER_KEYS), ("litellm_settings", litellm, _LITELLM_KEYS)):
        if not isinstance(table, dict):
            problems.append(f"{section}: expected a mapping")
            continue
        for key in table:
            if key in _NOT_YET:
                problems.append(f"{section}.{key}: not supported by ocilm's router: {_NOT_YET[key]}")
            elif key not in known:
                problems.append(f"{section}.{key}: unknown or unsupported setting; ocilm reads {', '.join(sorted(known))}")
    router = router if isinstance(router, dict) else {}
    litellm = litellm if isinstance(litellm, dict) else {}
    merged = {**litellm, **router}

    strategy = router.get("routing_strategy", "simple-shuffle")
    if strategy not in STRATEGIES:
        problems.append(f"router_settings.routing_strategy: expected one of {', '.join(STRATEGIES)}")
        strategy = "simple-shuffle"
    args = router.get("routing_strategy_args") or {}
    if not isinstance(args, dict) or set(args) - {"lowest_latency_buffer", "ttl"}:
        problems.append("router_settings.routing_strategy_args: expected {lowest_latency_buffer, ttl}")
        args = {}
    if router.get("enable_pre_call_checks") is False:
        problems.append("router_settings.enable_pre_call_checks: ocilm always checks order and each deployment's rpm/tpm; remove it")
    settings = RoutingSettings(
        strategy=strategy,
        allowed_fails=_whole(merged, "allowed_fails", 3, problems, low=0),
        cooldown_time=_seconds(router, "cooldown_time", 5.0, problems),
        lowest_latency_buffer=_seconds(args, "lowest_latency_buffer", 0.0, problems, place="router_settings.routing_strategy_args"),
        latency_ttl=_seconds(args, "ttl", 3600.0, problems, place="router_settings.routing_strategy_args") or 3600.0,
        num_retries=_whole(merged, "num_retries", None, problems, low=0),
        disable_cooldowns=_flag(router, "disable_cooldowns", False, problems),
        tag_filtering=_flag(router, "enable_tag_filtering", False, problems),
        tags_match_any=_flag(router, "tag_filtering_match_any", True, problems),
        retry_policy=_policy(router.get("retry_policy"), "router_settings.retry_policy", RETRY_POLICY_KEYS, problems),
        model_retry_policy={model: _policy(policy, f"router_settings.model_group_retry_policy.{model}", RETRY_POLICY_KEYS, problems)
                            for model, policy in _table(router.get("model_group_retry_policy"), "router_settings.model_group_retry_policy",
                                                        names, problems).items()},
        allowed_fails_policy=_policy(router.get("allowed_fails_policy"), "router_settings.allowed_fails_policy", ALLOWED_FAILS_KEYS,
                                     problems),
    )  # fmt: skip
    fallbacks: dict[str, dict[str, list[str]]] = {}
    for kind in FALLBACK_KINDS:
        section = "router_settings" if kind in router else "litellm_settings"
        fallbacks[kind] = _fallback_table(merged.get(kind), f"{section}.{kind}", names, problems)
    default = merged.get("default_fallbacks")
    if default is not None:
        if not isinstance(default, list) or not all(isinstance(n, str) and n in names for n in default):
            problems.append("default_fallbacks: expected a list of model names of the model_list")
        else:
            fallbacks["fallbacks"].setdefault("*", list(default))
    most = _whole(merged, "max_fallbacks", MAX_FALLBACKS, problems, low=0)
    drop = litellm.get("drop_params", False)
    if not isinstance(drop, bool):
        problems.append("litellm_settings.drop_params: expected true or false")
        drop = False
    return settings, fallbacks, most if most is not None else MAX_FALLBACKS, drop


def _fallback_table(value: Any, place: str, names: set[str], problems: list[str]) -> dict[str, list[str]]:
    """LiteLLM's ``[{"grok": ["llama", "gemini"]}]`` as {"grok": ["llama", "gemini"]}."""
    if value is None:
        return {}
    out: dict[str, list[str]] = {}
    if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
        problems.append(f"{place}: expected a list of {{model name: [fallback model names]}}")
        return {}
    for i, entry in enumerate(value):
        for source, targets in entry.items():
            if source != "*" and source not in names:
                problems.append(f"{place}[{i}].{source}: names no model_name of the model_list")
                continue
            if not isinstance(targets, list) or not all(isinstance(t, str) and t in names for t in targets):
                problems.append(f"{place}[{i}].{source}: expected a list of model names of the model_list")
                continue
            out[source] = [t for t in targets if t != source]
    return out


def _whole(table: dict, key: str, default: Any, problems: list[str], low: int = 0) -> Any:
    value = table.get(key, default)
    if value is default:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 1000:
        problems.append(f"{key}: expected a whole number from {low} to 1000")
        return default
    return value


def _seconds(table: dict, key: str, default: float, problems: list[str], place: str = "router_settings") -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 86400:
        problems.append(f"{place}.{key}: expected a number of seconds from 0 to 86400")
        return default
    return float(value)


def _flag(table: dict, key: str, default: bool, problems: list[str]) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        problems.append(f"router_settings.{key}: expected true or false")
        return default
    return value


def _table(value: Any, place: str, names: set[str], problems: list[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{place}: expected a mapping of model name -> policy")
        return {}
    for model in value:
        if model not in names:
            problems.append(f"{place}.{model}: names no model_name of the model_list")
    return {m: p for m, p in value.items() if m in names}


def _policy(value: Any, place: str, keys: frozenset[str], problems: list[str]) -> dict[str, int]:
    """A LiteLLM policy: {"RateLimitErrorRetries": 3, ...} (counts from 0 to 100)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{place}: expected a mapping such as {{{sorted(keys)[0]}: 2}}")
        return {}
    out = {}
    for key, count in value.items():
        if key not in keys:
            problems.append(f"{place}.{key}: expected one of {', '.join(sorted(keys))}")
        elif isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 100:
            problems.append(f"{place}.{key}: expected a whole number from 0 to 100")
        else:
            out[key] = count
    return out


# LiteLLM's call types, by the route they name here
_CALL_TYPES = {"completion": "chat", "acompletion": "chat", "embedding": "embeddings", "aembedding": "embeddings", "rerank": "rerank",
               "arerank": "rerank", "responses": "responses", "aresponses": "responses", "anthropic_messages": "messages"}  # fmt: skip
_CACHE_KEYS = frozenset({"type", "host", "port", "password", "url", "namespace", "ttl", "supported_call_types", "mode", "scope", "max_entries",
                         "max_bytes"})  # fmt: skip


def cache_settings(raw: dict, redis_url: str | None, problems: list[str]) -> Any:
    """``litellm_settings.cache: true`` with ``cache_params`` (LiteLLM's names), or None."""
    from ._cache import CacheSettings

    found = raw.get("litellm_settings")
    litellm: dict = found if isinstance(found, dict) else {}
    on = litellm.get("cache", False)
    params: Any = litellm.get("cache_params") or {}
    if not isinstance(on, bool):
        problems.append("litellm_settings.cache: expected true or false")
        return None
    if not isinstance(params, dict):
        problems.append("litellm_settings.cache_params: expected a mapping")
        return None
    if params and not on:
        problems.append("litellm_settings.cache_params: set litellm_settings.cache: true to use it")
    for key in sorted(set(params) - _CACHE_KEYS):
        problems.append(f"litellm_settings.cache_params.{key}: unknown; ocilm reads {', '.join(sorted(_CACHE_KEYS))}")
    if not on:
        return None
    place = "litellm_settings.cache_params"
    kind = params.get("type", "local")
    if kind not in ("local", "redis"):
        problems.append(f"{place}.type: expected local or redis (ocilm keeps no disk, s3 or semantic cache)")
        kind = "local"
    url = _cache_redis_url(params, kind, redis_url, problems, place)
    for key in sorted(_REDIS_ONLY & set(params) if kind == "local" else _LOCAL_ONLY & set(params)):
        problems.append(f"{place}.{key}: applies to type: {'redis' if kind == 'local' else 'local'} only; this cache is type: {kind}")
    mode = params.get("mode", "default_on")
    if mode not in ("default_on", "default_off"):
        problems.append(f"{place}.mode: expected default_on or default_off")
    scope = params.get("scope", "team")
    if scope not in ("team", "key", "global"):
        problems.append(f"{place}.scope: expected team, key or global")
        scope = "team"
    types = params.get("supported_call_types", list(_CALL_TYPES))
    if not isinstance(types, list) or any(t not in _CALL_TYPES for t in types):
        problems.append(f"{place}.supported_call_types: expected a list of {', '.join(_CALL_TYPES)}")
        types = list(_CALL_TYPES)
    ttl = params.get("ttl", 600.0)
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl <= 365 * 86400:
        problems.append(f"{place}.ttl: expected a number of seconds above 0, at most 31536000")
        ttl = 600.0
    namespace = params.get("namespace", "ocilm")
    if not isinstance(namespace, str) or not namespace or "{" in namespace or "}" in namespace:
        problems.append(f"{place}.namespace: expected a name without braces")
        namespace = "ocilm"
    return CacheSettings(kind=kind, url=url, namespace=namespace, ttl=float(ttl), default_on=mode != "default_off", scope=scope,
                         call_types=frozenset(_CALL_TYPES[t] for t in types),
                         max_entries=_count(params, "max_entries", 10_000, problems), max_bytes=_count(params, "max_bytes", 256 << 20, problems))  # fmt: skip


_REDIS_ONLY = frozenset({"url", "host", "port", "password", "namespace"})
_LOCAL_ONLY = frozenset({"max_entries", "max_bytes"})  # Redis bounds itself (maxmemory)


def _cache_redis_url(params: dict, kind: str, redis_url: str | None, problems: list[str], place: str) -> str | None:
    """The cache's Redis: ``url``, else ``host``/``port``/``password``, else the gateway's
    ``general_settings.redis_url``. Problems name the setting, never its value."""
    if kind != "redis":
        return None
    url = params.get("url")
    if url is not None:
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            problems.append(f"{place}.url: expected redis://host:port/db, rediss://... or unix://...")
        elif "host" in params or "port" in params or "password" in params:
            problems.append(f"{place}.url: give url or host/port/password, not both")
        return url if isinstance(url, str) else None
    if "host" in params:
        host, port, password = params["host"], params.get("port", 6379), params.get("password")
        if not isinstance(host, str) or not host or any(c in host for c in "/@:"):
            problems.append(f"{place}.host: expected a host name or address")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            problems.append(f"{place}.port: expected a whole number from 1 to 65535")
        if password is not None and not isinstance(password, str):
            problems.append(f"{place}.password: expected a string")
        secret = f":{urllib.parse.quote(password, safe='')}@" if isinstance(password, str) and password else ""
        return f"redis://{secret}{host}:{port}/0"
    if "port" in params or "password" in params:
        problems.append(f"{place}.host: required with port or password")
    if not redis_url:
        problems.append(f"{place}.type: redis needs url (or host/port/password), or general_settings.redis_url")
    return redis_url


def _count(params: dict, key: str, default: int, problems: list[str]) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1 << 40:
        problems.append(f"litellm_settings.cache_params.{key}: expected a whole number from 1")
        return default
    return value
