"""OCI's ApplyGuardrails (``/20231130/actions/applyGuardrails``): content moderation, personal
information with offsets, and prompt injection, on one text (no I/O here).

``ocilm.apply_guardrails(text, ...)`` returns OCI's result as it is (``results.contentModeration
.categories``, ``results.personallyIdentifiableInformation`` spans, ``results.promptInjection``),
readable as attributes; the gateway's guardrails are built on it.
"""

from __future__ import annotations

from typing import Any

from ._core import PreparedCall, base_headers, call_arguments, encode
from ._endpoint import action_url
from ._openai_api import refuse_on_openai_api
from ._settings import SettingsCache
from ._types import OpenAIObject
from .formats._common import bad

GUARDRAIL_PARAMS = frozenset({"content_moderation", "pii", "prompt_injection", "guardrail_version", "language_code"})
MODERATION_CATEGORIES = ("OVERALL", "BLOCKLIST")
PII_TYPES = ("PERSON", "ADDRESS", "AGE", "DATE_TIME", "SSN_OR_TAXPAYER", "EMAIL", "PASSPORT_NUMBER_US", "TELEPHONE_NUMBER", "DRIVER_ID_US",
             "BANK_ACCOUNT_NUMBER", "BANK_SWIFT", "BANK_ROUTING", "CREDIT_DEBIT_NUMBER", "IP_ADDRESS", "MAC_ADDRESS")  # fmt: skip


class GuardrailsResult(OpenAIObject):
    """OCI's ApplyGuardrailsResult: ``results`` and ``guardrailVersion``."""

    __slots__ = ()
    _fields = frozenset(["guardrailVersion", "results"])


def prepare_guardrails(cache: SettingsCache, text: Any, params: dict) -> PreparedCall:
    """``content_moderation`` (True, or a list of categories), ``pii`` (True, or a list of types),
    ``prompt_injection`` (True): at least one; ``guardrail_version`` pins one (``"1.0.1"``)."""
    _, oci, rest, (timeout, retries, extra), _drop = call_arguments("guardrails", params, GUARDRAIL_PARAMS, "a guardrails")
    if not isinstance(text, str) or not text:
        raise bad("input", "expected a non-empty string")
    configs: dict[str, Any] = {}
    moderation = rest.get("content_moderation", True)
    if moderation:
        configs["contentModerationConfig"] = {"categories": _names(moderation, MODERATION_CATEGORIES, "content_moderation")}
    pii = rest.get("pii", True)
    if pii:
        configs["personallyIdentifiableInformationConfig"] = {"types": _names(pii, PII_TYPES, "pii")}
    if rest.get("prompt_injection", True):
        configs["promptInjectionConfig"] = {}
    if not configs:
        raise bad("content_moderation", "turn on at least one of content_moderation, pii and prompt_injection")
    settings = cache.resolve(oci)
    refuse_on_openai_api(settings, "ApplyGuardrails")
    text_input: dict[str, Any] = {"type": "TEXT", "content": text}
    if rest.get("language_code"):
        text_input["languageCode"] = str(rest["language_code"])
    body: dict[str, Any] = {"input": text_input, "guardrailConfigs": configs, "compartmentId": settings.require_compartment()}
    version = rest.get("guardrail_version")
    if version is not None:
        if not isinstance(version, str) or not version:
            raise bad("guardrail_version", "expected a version such as '1.0.1'")
        body["guardrailVersionConfig"] = {"guardrailVersion": version}
    return PreparedCall(
        url=action_url("applyGuardrails", region=settings.region, api_base=settings.api_base), body=encode(body),
        headers=base_headers("application/json", extra), signer=settings.signer, stream=False, timeout=timeout, max_retries=retries,
        parse=lambda data, rid: GuardrailsResult(data), context="applyGuardrails",
    )  # fmt: skip


def _names(value: Any, default: tuple[str, ...], field: str) -> list[str]:
    if value is True:
        return list(default)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return list(value)
    raise bad(field, "expected True, False, or a non-empty list of names")
