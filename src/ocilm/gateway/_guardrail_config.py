"""LiteLLM's ``guardrails:`` section, with OCI's ApplyGuardrails as the engine
(``guardrail: oci_guardrails``). A guardrail the gateway cannot enforce stops start-up naming
the place: a safety setting is never ignored with a warning."""

from __future__ import annotations

from typing import Any

from .._core import CALL_OPTIONS
from .._errors import OCIError
from .._settings import CONNECTION_SETTINGS, resolve_settings
from ._guardrails import ACTIONS, MODES, GuardrailSpec

GUARDRAIL_TYPES = ("oci_guardrails",)
_OWN = frozenset({"guardrail", "mode", "default_on", "pii_entities_config", "content_moderation", "prompt_injection", "guardrail_version",
                  "on_error", "input_cost_per_token"})  # fmt: skip


def guardrail_specs(raw: Any, problems: list[str], check_credentials: bool) -> list[GuardrailSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append("guardrails: expected a list of {guardrail_name, litellm_params}")
        return []
    specs, names = [], set()
    for i, entry in enumerate(raw):
        place = f"guardrails[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("guardrail_name"), str) or not isinstance(entry.get("litellm_params"), dict):
            problems.append(f"{place}: expected {{guardrail_name, litellm_params}}")
            continue
        name, params = entry["guardrail_name"], dict(entry["litellm_params"])
        extra_keys = sorted(set(entry) - {"guardrail_name", "litellm_params", "guardrail_info"})
        if extra_keys:
            problems.append(f"{place}.{extra_keys[0]}: unknown field")
        if name in names:
            problems.append(f"{place}.guardrail_name: {name!r} is defined twice")
        names.add(name)
        place = f"{place}.litellm_params"
        kind = params.get("guardrail")
        if kind not in GUARDRAIL_TYPES:
            problems.append(f"{place}.guardrail: ocilm enforces {', '.join(GUARDRAIL_TYPES)} (OCI's ApplyGuardrails); "
                            "this guardrail cannot be enforced, so the gateway does not start")  # fmt: skip
            continue
        modes = params.get("mode", "pre_call")
        modes = [modes] if isinstance(modes, str) else modes
        if not isinstance(modes, list) or not modes or any(m not in MODES for m in modes):
            problems.append(f"{place}.mode: expected one of {', '.join(MODES)}, or a list of them")
            modes = ["pre_call"]
        pii = params.get("pii_entities_config") or {}
        if not isinstance(pii, dict) or any(not isinstance(k, str) or v not in ACTIONS for k, v in pii.items()):
            problems.append(f"{place}.pii_entities_config: expected {{TYPE: MASK | BLOCK | MONITOR}}, such as {{EMAIL: MASK}}")
            pii = {}
        checks = {}
        for field in ("content_moderation", "prompt_injection"):
            value = params.get(field)
            if value is not None and value not in ("BLOCK", "MONITOR"):
                problems.append(f"{place}.{field}: expected BLOCK or MONITOR")
                value = None
            checks[field] = value
        if not pii and not checks["content_moderation"] and not checks["prompt_injection"]:
            problems.append(f"{place}: turn on at least one check: pii_entities_config, content_moderation or prompt_injection")
        on_error = params.get("on_error", "fail_closed")
        if on_error not in ("fail_closed", "fail_open"):
            problems.append(f"{place}.on_error: expected fail_closed or fail_open")
        version = params.get("guardrail_version")
        if version is not None and not isinstance(version, str):
            problems.append(f"{place}.guardrail_version: expected a version string such as '1.0.1'")
            version = None
        default_on = params.get("default_on", False)
        if not isinstance(default_on, bool):
            problems.append(f"{place}.default_on: expected true or false")
            default_on = False
        price = params.get("input_cost_per_token")
        if price is not None and (isinstance(price, bool) or not isinstance(price, (int, float)) or not 0 <= price < 1):
            problems.append(f"{place}.input_cost_per_token: expected USD per input token, a number from 0 to 1")
            price = None
        oci = {k: v for k, v in params.items() if k not in _OWN}
        unknown = sorted(set(oci) - CONNECTION_SETTINGS - CALL_OPTIONS)
        for key in unknown:
            problems.append(f"{place}.{key}: unknown setting; expected the checks, mode, default_on, on_error, or OCI settings")
        if check_credentials and not unknown:
            try:
                resolve_settings({k: v for k, v in oci.items() if k in CONNECTION_SETTINGS}).require_compartment()
            except OCIError as exc:
                problems.append(f"{place}.{exc.param}: {exc.message}" if exc.param else f"{place}: {exc.message}")
        specs.append(GuardrailSpec(name=name, modes=frozenset(modes), default_on=default_on, pii=dict(pii),
                                   moderation=checks["content_moderation"], injection=checks["prompt_injection"], version=version,
                                   fail_open=on_error == "fail_open", params=oci,
                                   input_cost_per_token=price))  # fmt: skip
    return specs
