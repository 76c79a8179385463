"""The gateway's config file: LiteLLM's proxy format, validated at start-up.

Every problem is reported with its place in the file (``model_list[2].litellm_params.oci_region``)
and never with the value that was there, since values may be secrets.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import hashlib
import math
import os
from dataclasses import dataclass, field
from typing import Any

from .._capabilities import DEFAULT_MAX_TOKENS, is_reasoning, model_info
from .._core import CALL_OPTIONS
from .._errors import ConfigurationError, OCIError
from .._settings import CONNECTION_SETTINGS, resolve_settings
from ..formats._common import CHAT_PARAMS
from ._general_settings import general_problems
from ._guardrail_config import guardrail_specs
from ._router_config import cache_settings, routing_settings
from ._routing_policy import RoutingSettings
from .governance._policy import PolicyError, Price, duration_seconds
from .governance._prices import builtin_price
from .governance._tool_calls import DEFAULT_MAX_HOSTED_CALLS, MAX_HOSTED_CALLS
from .governance._tool_calls import parse_prices as parse_tool_prices

ENV_PREFIX = "os.environ/"
# LiteLLM routing keys of litellm_params the router does not act on, and what to do instead.
REFUSED_ROUTING_KEYS = {
    "max_parallel_requests": "use rpm/tpm on the deployment, or max_parallel_requests on keys and teams",
    "region_name": "a deployment's region is its oci_region",
}
_EMBED_DEFAULTS = frozenset({"dimensions", "encoding_format", "input_type", "truncate"})
_KNOWN_TOP_LEVEL = frozenset({"model_list", "general_settings", "litellm_settings", "router_settings", "environment_variables", "guardrails",
                              "mcp_servers"})  # fmt: skip


class GatewayConfigError(ConfigurationError):
    def __init__(self, problems: list[str], source: str) -> None:
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s) in the gateway config:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass
class Deployment:
    """One upstream for a public model name: the OCI model and its call defaults."""

    model_name: str
    model: str  # "oci/<model id>"
    params: dict[str, Any]  # oci_* settings, api_base, timeout, max_retries, default OpenAI params
    place: str  # where in the file it was defined
    stream_timeout: float | None = None  # LiteLLM's name: the longest wait for a stream's first chunk
    max_output_tokens: int | None = None  # model_info.max_output_tokens: the most a door may ask for
    price: Price | None = None  # input_cost_per_token / output_cost_per_token, as LiteLLM writes them
    rpm: int | None = None  # the deployment's own limits: when full, the router tries the next one
    tpm: int | None = None
    # model_info.max_reasoning_tokens: the most a reasoning model thinks beyond its answer (the
    # hold's allowance; OCI does not document whether max_tokens bounds reasoning)
    max_reasoning_tokens: int | None = None
    api_mode: str = "native"  # "openai": served through OCI's /openai/v1 (an API key, or oci_api_mode: openai)
    id: str = ""  # model_info.id, or a stable hash of the deployment's name, place and model (x-litellm-model-id)
    order: int = 1  # litellm_params.order: a lower order is tried first
    weight: float | None = None  # litellm_params.weight: its share of simple-shuffle's picks
    tags: tuple[str, ...] = ()  # litellm_params.tags: requests with these tags go here (router_settings.enable_tag_filtering)
    on_retirement: str = "warn"  # model_info.on_retirement: warn | block_after | alias
    replacement: str | None = None  # model_info.replacement: the model group that answers instead (alias) or is named (block_after)

    @functools.cached_property
    def reasoning_allowance(self) -> int:
        """Output tokens a reasoning model may spend beyond its answer's limit, per choice (0 for
        other models): ``model_info.max_reasoning_tokens``, or the default output limit."""
        if not is_reasoning(self.model):
            return 0
        return self.max_reasoning_tokens or DEFAULT_MAX_TOKENS

    def reasoning_bounded(self, params: dict[str, Any], method: str) -> bool:
        """Whether the output limit this call is sent also bounds its reasoning, so its hold needs
        no thinking allowance: OCI's ``maxCompletionTokens`` (sent for ``max_completion_tokens``
        on the GENERIC format, and always for OpenAI's models there) and ``/openai/v1``'s
        ``max_completion_tokens`` and Responses ``max_output_tokens`` are declared to count visible
        and reasoning tokens together. ``max_tokens`` is not, nor are Cohere's limits."""
        if not self.reasoning_allowance:
            return True
        asked = {**{k: v for k, v in self.params.items() if k in ("max_completion_tokens", "max_tokens")}, **params}
        if self.api_mode == "openai":
            return "max_completion_tokens" in asked or (method == "responses" and "max_output_tokens" in asked)
        info = model_info(self.model.removeprefix("oci/"), self.params.get("oci_api_format"))
        return info.api_format == "GENERIC" and ("max_completion_tokens" in asked or info.uses_max_completion_tokens)

    def deadline_seconds(self, stream: bool) -> float | None:
        """How long a caller may wait for this deployment's answer, retries and fallbacks
        included (for a stream: until its first chunk)."""
        if stream and self.stream_timeout is not None:
            return self.stream_timeout
        timeout = self.params.get("timeout")
        return float(timeout) if isinstance(timeout, (int, float)) else None

    def __repr__(self) -> str:  # params may hold keys and pass phrases
        return f"Deployment(model_name={self.model_name!r}, model={self.model!r}, place={self.place!r})"


@dataclass(frozen=True)
class GovernanceSettings:
    database_url: str = field(repr=False)  # may hold a password
    hold_seconds: float = 600.0  # a budget hold outlives its request by this much at most
    strict: bool = True  # refuse a budgeted request whose cost cannot be estimated
    auto_migrate: bool = True  # apply migrations at start-up (the default for SQLite)
    synchronous_commit: bool = False  # PostgreSQL: wait for the disk on each settlement (slower)
    leases: bool = True  # budget leases per replica (a hold written per request when off)
    retention_seconds: float | None = None  # maximum_spend_logs_retention_period: older spend-log rows are deleted
    retention_interval: float = 86400.0  # maximum_spend_logs_retention_interval: how often the sweep runs


@dataclass
class ObservabilitySettings:
    metrics: bool = True  # Prometheus metrics at GET /metrics
    metrics_public: bool = False  # GET /metrics without the master key
    access_log: bool = True  # one JSON line per request on the ocilm.access logger
    log_prompts: bool = False  # include the request's messages in that line
    otel: bool = False  # OpenTelemetry spans (the ocilm[otel] extra)
    budget_alert_webhooks: list[str] = field(default_factory=list, repr=False)  # URLs may hold tokens
    budget_alert_thresholds: tuple[float, ...] = (0.5, 0.8, 1.0)


@dataclass
class GatewayConfig:
    deployments: dict[str, list[Deployment]]
    master_key: str | None = field(default=None, repr=False)
    warnings: list[str] = field(default_factory=list)
    # Other names for a model name (LiteLLM's model_group_alias): e.g. the claude-sonnet-* or
    # gpt-5 names that coding agents send by default.
    aliases: dict[str, str] = field(default_factory=dict)
    governance: GovernanceSettings | None = None  # keys, budgets and spend: on when there is a database
    redis_url: str | None = field(default=None, repr=False)  # shared rate-limit counters (may hold a password)
    rate_limit_failure: str = "closed"  # Redis unreachable: refuse (503) or serve without limits
    rate_limit_window_seconds: float = 60.0  # rpm_limit and tpm_limit count over this sliding window
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    fallbacks: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # kind -> model name (or "*") -> fallbacks
    max_fallbacks: int = 5
    health_check_interval: float | None = None  # general_settings.background_health_checks: probe every deployment this often
    guardrails: list[Any] = field(default_factory=list, repr=False)  # GuardrailSpec: their OCI settings may hold keys
    cache: Any = None  # CacheSettings (litellm_settings.cache: true), or None
    responses_event_names: str = "openai"  # general_settings.responses_event_names: openai | open_responses
    file_storage_quota_bytes: int | None = None  # general_settings.file_storage_quota_mb: what a tenant's files may hold
    max_hosted_tool_calls: int = DEFAULT_MAX_HOSTED_CALLS  # general_settings.max_hosted_tool_calls: bounds a priced request's tools
    mcp_servers: dict[str, Any] = field(default_factory=dict)  # mcp_servers: name -> McpServer (the MCP gateway)
    mcp_aliases: dict[str, str] = field(default_factory=dict)  # litellm_settings.mcp_aliases: alias -> server name
    ui_sso: Any = None  # general_settings.ui_sso: the console's OpenID Connect sign-in (SsoSettings), or None

    @functools.cached_property
    def priced_tools(self) -> frozenset[str]:
        """The hosted tool types some deployment prices: a request offering one is bounded in its
        calls, whichever model (or fallback) answers it."""
        return frozenset(kind for group in self.deployments.values() for d in group if d.price is not None
                         for kind, _ in d.price.per_tool_call)  # fmt: skip

    @functools.cached_property
    def deployment_limits(self) -> bool:
        """Whether any deployment has its own rpm or tpm (asked on every request: worked out once)."""
        return any(d.rpm or d.tpm for group in self.deployments.values() for d in group)


    def resolve(self, name: str) -> str:
        """The model name behind ``name``: itself, an exact alias, or the first alias pattern
        (``claude-sonnet-*``, shell-style) that matches it."""
        if name in self.deployments:
            return name
        found = self.aliases.get(name)
        if found is not None:
            return found
        for pattern, target in self.aliases.items():
            if is_pattern(pattern) and fnmatch.fnmatchcase(name, pattern):
                return target
        return name

    @property
    def model_names(self) -> list[str]:
        return list(self.deployments)


def is_pattern(alias: str) -> bool:
    """Whether an alias is a shell-style pattern (``claude-*``) rather than a name."""
    return any(c in alias for c in "*?[")


def _resolve_env(value: Any, place: str, problems: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_env(v, f"{place}.{k}", problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, f"{place}[{i}]", problems) for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX) :]
        if name not in os.environ:
            problems.append(f"{place}: environment variable {name} is not set")
            return None
        return os.environ[name]
    return value


def _pydantic_models() -> Any:
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    class LiteLLMParams(BaseModel):
        model_config = ConfigDict(extra="allow")
        model: str = Field(min_length=1)
        api_base: str | None = None
        timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
        stream_timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
        max_retries: int | None = Field(default=None, ge=0)
        rpm: int | None = Field(default=None, ge=1)  # the deployment's own requests per minute (routing skips it when full)
        tpm: int | None = Field(default=None, ge=1)

    class ModelEntry(BaseModel):
        model_config = ConfigDict(extra="forbid")
        model_name: str = Field(min_length=1)
        litellm_params: LiteLLMParams
        model_info: dict[str, Any] | None = None

    class GeneralSettings(BaseModel):
        model_config = ConfigDict(extra="allow")
        master_key: str | None = None
        database_url: str | None = None
        budget_hold_seconds: float = Field(default=600.0, gt=0, allow_inf_nan=False)
        budget_strict: bool = True
        budget_leases: bool = True
        database_synchronous_commit: bool = False
        redis_url: str | None = None
        rate_limit_failure: Literal["closed", "open"] = "closed"
        rate_limit_window_seconds: float = Field(default=60.0, gt=0, allow_inf_nan=False)
        metrics: bool = True
        metrics_public: bool = False
        access_log: bool = True
        log_prompts: bool = False
        otel: bool = False
        budget_alert_webhooks: list[str] = Field(default_factory=list)
        budget_alert_thresholds: list[float] = Field(default_factory=lambda: [0.5, 0.8, 1.0])
        background_health_checks: bool = False
        health_check_interval: float = Field(default=300.0, ge=0.1, le=86400, allow_inf_nan=False)
        responses_event_names: Literal["openai", "open_responses"] = "openai"
        file_storage_quota_mb: float | None = Field(default=None, gt=0, allow_inf_nan=False)
        max_hosted_tool_calls: int = Field(default=DEFAULT_MAX_HOSTED_CALLS, ge=1, le=MAX_HOSTED_CALLS)
        maximum_spend_logs_retention_period: str | None = None
        maximum_spend_logs_retention_interval: str = "1d"
        ui_sso: dict[str, Any] | None = None

    class FileModel(BaseModel):
        model_config = ConfigDict(extra="allow")
        model_list: list[ModelEntry] = Field(default_factory=list)  # empty only for an MCP-only gateway (checked below)
        general_settings: GeneralSettings | None = None

    return FileModel


def _place(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_config(raw: Any, source: str = "config", *, check_credentials: bool = True) -> GatewayConfig:
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise GatewayConfigError(["the file must be a YAML mapping with a model_list"], source)
    raw = _resolve_env(raw, "", problems)
    from pydantic import ValidationError

    try:
        parsed = _pydantic_models().model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors(include_input=False, include_url=False):
            problems.append(f"{_place(err['loc'])}: {err['msg']}")
        raise GatewayConfigError(problems, source) from None
    warnings = [f"{key}: not used by ocilm's gateway (ignored)" for key in raw if key not in _KNOWN_TOP_LEVEL]
    deployments: dict[str, list[Deployment]] = {}
    retirements: list[tuple[int, str | None]] = []  # (entry, its replacement): checked once every name is known
    for i, entry in enumerate(parsed.model_list):
        place = f"model_list[{i}].litellm_params"
        params = entry.litellm_params.model_dump(exclude_none=True)
        model = params.pop("model")
        stream_timeout = params.pop("stream_timeout", None)
        rpm, tpm = params.pop("rpm", None), params.pop("tpm", None)
        price_fields = {k: params.pop(k) for k in PRICE_KEYS if k in params}
        price = _price(price_fields or entry.model_info or {}, place if price_fields else f"model_list[{i}].model_info", problems)
        if not model.startswith("oci/"):
            problems.append(f"{place}.model: ocilm serves OCI models only; expected 'oci/<model id>'")
            continue
        for key in sorted(set(params) & set(REFUSED_ROUTING_KEYS)):
            problems.append(f"{place}.{key}: not supported on a deployment: {REFUSED_ROUTING_KEYS[key]}")
            params.pop(key)
        order, weight = params.pop("order", 1), params.pop("weight", None)
        tags = params.pop("tags", None)
        if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) and 0 < len(t) <= 64 for t in tags)):
            problems.append(f"{place}.tags: expected a list of tags (strings of 1 to 64 characters)")
            tags = None
        if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= 1000:
            problems.append(f"{place}.order: expected a whole number from 1 (tried first) to 1000")
            order = 1
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1e6):
            problems.append(f"{place}.weight: expected a number from 0 to 1000000")
            weight = None
        allowed = CONNECTION_SETTINGS | CALL_OPTIONS | CHAT_PARAMS | _EMBED_DEFAULTS
        for key in sorted(set(params) - allowed):
            problems.append(f"{place}.{key}: unknown setting; expected oci_* settings, api_base, timeout, max_retries or OpenAI parameters")
        api_mode = "openai" if params.get("oci_api_key") or str(params.get("oci_api_mode", "")).lower() == "openai" else "native"
        if check_credentials:
            oci = {k: v for k, v in params.items() if k in CONNECTION_SETTINGS}
            try:
                settings = resolve_settings(oci)
                api_mode = settings.api_mode
                if not (settings.api_key or (api_mode == "openai" and settings.project)):
                    settings.require_compartment()
            except OCIError as exc:
                where = f"{place}.{exc.param}" if exc.param else place
                problems.append(f"{where}: {exc.message}")
        if api_mode == "openai" and model[4:].startswith("cohere."):
            problems.append(f"{place}.model: Cohere models (chat, embeddings and rerank) are not served on OCI's OpenAI-compatible API, "
                            "which an API key (or oci_api_mode: openai) reaches; use IAM credentials for this deployment")  # fmt: skip
        if price is None and str(params.get("oci_serving_mode", "ON_DEMAND")).upper() != "DEDICATED":
            price = builtin_price(model)
        tool_prices = parse_tool_prices(entry.model_info or {}, f"model_list[{i}].model_info", problems)
        if tool_prices:
            price = dataclasses.replace(price or Price(0.0, 0.0), per_tool_call=tool_prices)
        counts = {}
        for info_field in ("max_output_tokens", "max_reasoning_tokens"):
            value = (entry.model_info or {}).get(info_field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1):
                problems.append(f"model_list[{i}].model_info.{info_field}: expected a whole number from 1 to {2**31 - 1}")
                value = None
            counts[info_field] = value
        on_retirement = (entry.model_info or {}).get("on_retirement", "warn")
        replacement = (entry.model_info or {}).get("replacement")
        if on_retirement not in ("warn", "block_after", "alias"):
            problems.append(f"model_list[{i}].model_info.on_retirement: expected warn, block_after or alias")
        if replacement is not None and not (isinstance(replacement, str) and replacement):
            problems.append(f"model_list[{i}].model_info.replacement: expected a model name of this config")
            replacement = None
        if on_retirement == "alias" and replacement is None:
            problems.append(f"model_list[{i}].model_info.replacement: required with on_retirement: alias (the model that answers instead)")
        retirements.append((i, replacement))
        given_id = (entry.model_info or {}).get("id")
        deployment_id = str(given_id) if given_id is not None else hashlib.sha256(f"{entry.model_name}|{place}|{model}".encode()).hexdigest()[:16]
        deployments.setdefault(entry.model_name, []).append(
            Deployment(entry.model_name, model, params, place, stream_timeout, counts["max_output_tokens"], price, rpm, tpm,
                       counts["max_reasoning_tokens"], api_mode, deployment_id, order, float(weight) if weight is not None else None,
                       tuple(tags or ()), str(on_retirement), replacement))  # fmt: skip
    if not parsed.model_list and not raw.get("mcp_servers"):
        problems.append("model_list: expected at least one model (or mcp_servers, for a gateway to MCP servers only)")
    aliases = _aliases(raw, deployments, problems)
    for i, replacement in retirements:
        if replacement is not None and aliases.get(replacement, replacement) not in deployments:
            problems.append(f"model_list[{i}].model_info.replacement: {replacement[:64]!r} is no model name of this config")
    from .mcp._config import mcp_settings

    mcp_servers, mcp_aliases = mcp_settings(raw, problems)
    routing, fallbacks, max_fallbacks, drop_params = routing_settings(raw, set(deployments), problems)
    guardrails = guardrail_specs(raw.get("guardrails"), problems, check_credentials)
    cache = cache_settings(raw, parsed.general_settings.redis_url if parsed.general_settings else None, problems)
    if drop_params:
        for group in deployments.values():
            for deployment in group:
                deployment.params["drop_params"] = True
    problems += general_problems(raw.get("general_settings"))
    master_key = parsed.general_settings.master_key if parsed.general_settings else None
    if master_key is not None and len(master_key) < 8:
        problems.append("general_settings.master_key: too short; use at least 8 characters")
    governance = _governance(parsed.general_settings, source, master_key, problems)
    from .console._sso import sso_settings

    ui_sso = sso_settings(parsed.general_settings.ui_sso if parsed.general_settings else None, problems)
    if ui_sso is not None and master_key is None:
        problems.append("general_settings.ui_sso: needs general_settings.master_key (sessions are signed with a secret derived from it)")
    general = parsed.general_settings
    redis_url = general.redis_url if general else None
    if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        problems.append("general_settings.redis_url: expected redis://host:port/db, rediss://... or unix://...")
    observability = _observability(general, governance, problems)
    if problems:  # every problem of the file at once
        raise GatewayConfigError(problems, source)
    return GatewayConfig(deployments=deployments, master_key=master_key, warnings=warnings, aliases=aliases, governance=governance,
                         redis_url=redis_url, rate_limit_failure=general.rate_limit_failure if general else "closed",
                         rate_limit_window_seconds=general.rate_limit_window_seconds if general else 60.0,
                         observability=observability, routing=routing, fallbacks=fallbacks, max_fallbacks=max_fallbacks,
                         health_check_interval=general.health_check_interval if general and general.background_health_checks else None,
                         guardrails=guardrails, cache=cache,
                         responses_event_names=general.responses_event_names if general else "openai",
                         file_storage_quota_bytes=int(general.file_storage_quota_mb * 1024 * 1024) if general and general.file_storage_quota_mb else None,
                         max_hosted_tool_calls=general.max_hosted_tool_calls if general else DEFAULT_MAX_HOSTED_CALLS,
                         mcp_servers=mcp_servers, mcp_aliases=mcp_aliases, ui_sso=ui_sso)  # fmt: skip


PRICE_KEYS = ("input_cost_per_token", "output_cost_per_token")


def _price(fields: dict[str, Any], place: str, problems: list[str]) -> Price | None:
    values = {}
    for key in PRICE_KEYS:
        value = fields.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            problems.append(f"{place}.{key}: expected a number of US dollars per token >= 0")
            return None
        values[key] = float(value)
    if not values:
        return None
    return Price(values.get("input_cost_per_token", 0.0), values.get("output_cost_per_token", 0.0))


def _governance(general: Any, source: str, master_key: str | None, problems: list[str]) -> GovernanceSettings | None:
    """On when ``general_settings.database_url`` is set: ``sqlite:///ocilm.db`` keeps everything in
    a file (a relative path is beside the config file), ``postgresql://...`` serves replicas."""
    url = general.database_url if general else None
    if url is None:
        return None
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        problems.append("general_settings.database_url: expected sqlite:///<file> or postgresql://user@host/db")
        return None
    if url.startswith("sqlite:///") and not os.path.isabs(url[len("sqlite:///"):]) and os.path.isfile(source):
        url = "sqlite:///" + os.path.join(os.path.dirname(os.path.abspath(source)), url[len("sqlite:///"):])
    if master_key is None:
        problems.append("general_settings.master_key: required with a database (it guards the admin API that makes keys)")
        return None
    retention, interval = None, 86400.0
    for name in ("maximum_spend_logs_retention_period", "maximum_spend_logs_retention_interval"):
        value = getattr(general, name)
        if value is None:
            continue
        try:
            seconds = duration_seconds(value, f"general_settings.{name}")
        except PolicyError as exc:
            problems.append(str(exc))
            continue
        if name.endswith("period"):
            retention = seconds
        else:
            interval = seconds
    return GovernanceSettings(database_url=url, hold_seconds=general.budget_hold_seconds, strict=general.budget_strict,
                              auto_migrate=url.startswith("sqlite:///"), synchronous_commit=general.database_synchronous_commit,
                              leases=general.budget_leases, retention_seconds=retention, retention_interval=interval)  # fmt: skip


def _observability(general: Any, governance: GovernanceSettings | None, problems: list[str]) -> ObservabilitySettings:
    if general is None:
        return ObservabilitySettings()
    for i, url in enumerate(general.budget_alert_webhooks):
        if not url.startswith(("http://", "https://")):
            problems.append(f"general_settings.budget_alert_webhooks[{i}]: expected an http:// or https:// URL")
    thresholds = sorted(set(general.budget_alert_thresholds))
    if not thresholds or not all(0 < t <= 1 for t in thresholds):
        problems.append("general_settings.budget_alert_thresholds: expected fractions of a budget in (0, 1], such as [0.5, 0.8, 1.0]")
    if general.budget_alert_webhooks and governance is None:
        problems.append("general_settings.budget_alert_webhooks: budgets need general_settings.database_url")
    if general.otel:
        try:
            import opentelemetry.trace  # noqa: F401
        except ImportError:
            problems.append("general_settings.otel: OpenTelemetry is not installed; pip install 'ocilm[otel]'")
    return ObservabilitySettings(general.metrics, general.metrics_public, general.access_log, general.log_prompts, general.otel,
                                 list(general.budget_alert_webhooks), tuple(thresholds))  # fmt: skip


def _aliases(raw: dict, deployments: dict[str, list[Deployment]], problems: list[str]) -> dict[str, str]:
    """``model_group_alias`` from router_settings or litellm_settings: alias -> model name (or
    ``{"model": name}``, LiteLLM's long form)."""
    out: dict[str, str] = {}
    for section in ("router_settings", "litellm_settings"):
        table = (raw.get(section) or {}).get("model_group_alias") if isinstance(raw.get(section), dict) else None
        if table is None:
            continue
        if not isinstance(table, dict):
            problems.append(f"{section}.model_group_alias: expected a mapping of alias -> model name")
            continue
        for alias, target in table.items():
            name = target.get("model") if isinstance(target, dict) else target
            if not isinstance(name, str) or name not in deployments:
                problems.append(f"{section}.model_group_alias.{alias}: names no model_name of the model_list")
                continue
            out[str(alias)] = name
    return out


def load_config(path: str, *, check_credentials: bool = True) -> GatewayConfig:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise GatewayConfigError([f"no file at {path!r}"], path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise GatewayConfigError([f"not valid YAML{where}"], path) from None
    return parse_config(raw, path, check_credentials=check_credentials)
