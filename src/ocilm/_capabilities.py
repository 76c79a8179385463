"""What each OCI model family accepts, so unsupported parameters fail before any call.

Known limits only: a model not matched here is sent whatever the caller asked for.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

DEFAULT_MAX_TOKENS = 4000
"""Sent as the output token limit when the caller sets none: OCI's own default cuts
replies at about 20 tokens, and 4,000 is the per-call cap OCI documents for on-demand models."""


@dataclass(frozen=True)
class ModelInfo:
    model: str
    api_format: str
    unsupported: frozenset[str] = frozenset()
    uses_max_completion_tokens: bool = False
    vision: bool | None = None  # None: unknown, do not check


_COHERE_UNSUPPORTED = frozenset({
    "n", "logprobs", "top_logprobs", "logit_bias", "reasoning_effort", "prediction", "verbosity",
    "web_search_options",
})  # fmt: skip
_GROK_REASONING = frozenset({"presence_penalty", "frequency_penalty", "stop"})
_TEXT_ONLY = ("meta.llama-3.3", "meta.llama-3.1", "xai.grok-3", "openai.gpt-oss", "cohere.")
_VISION = ("meta.llama-4", "meta.llama-3.2-90b-vision", "meta.llama-3.2-11b-vision", "xai.grok-4",
           "google.gemini", "openai.gpt-4", "openai.gpt-5", "openai.o")  # fmt: skip


# Cohere models that speak the v2 format, which carries images, thinking and tool call ids:
# they get it by default. Older Command models speak COHERE only.
_COHERE_V2 = ("cohere.command-a",)
_COHERE_VISION = ("cohere.command-a-vision",)
_COHERE_REASONING = ("cohere.command-a-reasoning",)


# Models that think before they answer, and bill for it as output.
_REASONING = ("xai.grok-4", "xai.grok-3-mini", "openai.gpt-oss", "openai.gpt-5", "openai.o", "google.gemini-2.5",
              "cohere.command-a-reasoning")  # fmt: skip


def is_reasoning(model: str) -> bool:
    """Whether ``model`` (an OCI model id, with or without ``oci/``) is a reasoning model."""
    return model.removeprefix("oci/").startswith(_REASONING)


def api_format_for(model: str) -> str:
    if model.startswith(_COHERE_V2):
        return "COHEREV2"
    return "COHERE" if model.startswith("cohere.") else "GENERIC"


@functools.lru_cache(maxsize=512)
def model_info(model: str, api_format: str | None = None) -> ModelInfo:
    """What ``model`` accepts (cached: every call asks, and the answer never changes)."""
    fmt = api_format or api_format_for(model)
    unsupported: set[str] = set()
    if fmt != "GENERIC":
        unsupported |= _COHERE_UNSUPPORTED
        if fmt == "COHEREV2" and model.startswith(_COHERE_REASONING):
            unsupported.discard("reasoning_effort")  # sent as thinking
    if model.startswith("xai.grok-4"):
        unsupported |= _GROK_REASONING | {"reasoning_effort"}
    elif model.startswith("xai.grok-3-mini"):
        unsupported |= _GROK_REASONING
    elif model.startswith("xai.grok") or model.startswith("meta."):
        unsupported.add("reasoning_effort")
    vision: bool | None = None
    if model.startswith((*_VISION, *_COHERE_VISION)):
        vision = True
    elif model.startswith(_TEXT_ONLY):
        vision = False
    return ModelInfo(
        model=model,
        api_format=fmt,
        unsupported=frozenset(unsupported),
        uses_max_completion_tokens=model.startswith("openai.") and not model.startswith("openai.gpt-oss"),
        vision=vision,
    )
