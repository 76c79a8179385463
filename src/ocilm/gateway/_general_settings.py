"""``general_settings``: each key is honoured, refused naming it, or (for LiteLLM's own internals,
which have no meaning in ocilm) accepted for the reason given here and in the README. Nothing is
silently ignored: an unknown key stops start-up, naming it and what is valid."""

from __future__ import annotations

from typing import Any

# ocilm's own keys (the GeneralSettings model validates their values).
OURS = frozenset({
    "master_key", "database_url", "budget_hold_seconds", "budget_strict", "budget_leases", "database_synchronous_commit", "redis_url",
    "rate_limit_failure", "rate_limit_window_seconds", "metrics", "metrics_public", "access_log", "log_prompts", "otel",
    "budget_alert_webhooks", "budget_alert_thresholds", "background_health_checks", "health_check_interval", "responses_event_names",
    "file_storage_quota_mb", "max_hosted_tool_calls", "maximum_spend_logs_retention_period", "maximum_spend_logs_retention_interval", "ui_sso",
})  # fmt: skip

# LiteLLM's keys that only tune LiteLLM's internals: accepted, and why they change nothing here.
INTERNAL = {
    "proxy_batch_write_at": "LiteLLM batches spend writes; ocilm writes each request's spend before its reply",
    "proxy_budget_rescheduler_min_time": "LiteLLM resets budgets with a scheduled job; ocilm's budgets roll over when read",
    "proxy_budget_rescheduler_max_time": "LiteLLM resets budgets with a scheduled job; ocilm's budgets roll over when read",
    "disable_prisma_schema_update": "LiteLLM's Prisma migrations; ocilm migrates with Alembic (ocilm db upgrade)",
    "disable_adding_master_key_hash_to_db": "LiteLLM stores the master key's hash; ocilm never stores the master key",
    "use_redis_transaction_buffer": "LiteLLM's write buffer; ocilm's replicas share limits through Redis and budgets through the store",
    "database_connection_pool_limit": "LiteLLM's Prisma pool; ocilm sizes its SQLAlchemy pool to its workers",
    "database_connection_timeout": "LiteLLM's Prisma timeout; ocilm's store has its own deadlines (a stalled store answers 503)",
    "use_shared_health_check": "LiteLLM coordinates health checks through Redis; ocilm's replicas share cooldowns through redis_url",
    "health_check_details": "LiteLLM's detail in /health; ocilm's /health/deployments always gives it, to the master key only",
    "disable_master_key_return": "LiteLLM may echo the master key in some admin replies; ocilm never returns it",
    "completion_model": "LiteLLM's default model for requests that name none; ocilm requires the model and answers 400 without one",
}

# LiteLLM's boolean switches whose default is what ocilm always does: accepted at that value only.
AT_DEFAULT = {
    "allow_requests_on_db_unavailable": False,  # ocilm fails closed (503) while the store is down
    "disable_spend_logs": False,  # ocilm always writes the spend log
    "store_model_in_db": False,  # models come from the file
    "disable_reset_budget": False,  # budgets always roll over
    "enforce_user_param": False,
    "disable_end_user_cost_tracking": False,
    "infer_model_from_keys": False,
}

# LiteLLM features ocilm does not have: refused, with what to use instead where there is one.
INSTEAD = {
    "alerting": "general_settings.budget_alert_webhooks",
    "alert_to_webhook_url": "general_settings.budget_alert_webhooks",
    "store_prompts_in_spend_logs": "general_settings.log_prompts (prompts in the access log)",
    "global_max_parallel_requests": "max_parallel_requests on keys and teams",
    "max_parallel_requests": "max_parallel_requests on keys and teams",
    "allowed_routes": None,
    "custom_auth": None,
    "enable_jwt_auth": None,
    "litellm_jwtauth": None,
    "key_management_system": None,
    "pass_through_endpoints": None,
    "public_routes": None,
    "admin_only_routes": None,
    "ui_access_mode": None,
    "forward_client_headers_to_llm_api": None,
}


def general_problems(raw: Any) -> list[str]:
    """What ``general_settings`` asks that ocilm cannot do, each naming its key (never its value)."""
    if not isinstance(raw, dict):
        return []
    problems = []
    for key, value in raw.items():
        if key in OURS or key in INTERNAL:
            continue
        place = f"general_settings.{key}"
        if key in AT_DEFAULT:
            if value != AT_DEFAULT[key]:
                problems.append(f"{place}: ocilm always behaves as {str(AT_DEFAULT[key]).lower()}; remove it or set it so")
            continue
        if key in INSTEAD:
            instead = INSTEAD[key]
            problems.append(f"{place}: not supported by ocilm's gateway" + (f"; use {instead}" if instead else "") + " (remove it to start)")
            continue
        problems.append(f"{place}: unknown setting; ocilm's are {', '.join(sorted(OURS))} (LiteLLM's internal ones are listed in the README)")
    return problems
