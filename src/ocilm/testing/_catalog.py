"""The models the simulator serves, with the service-side rules it enforces for each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServedModel:
    id: str
    kind: str  # "chat" | "embed" | "rerank"
    vendor: str  # meta | xai | cohere | google | openai
    api_formats: tuple[str, ...] = ("GENERIC",)
    reasoning: bool = False
    vision: bool = False
    rejects: frozenset[str] = frozenset()  # request fields the model refuses (400)
    dimensions: int = 0
    output_dimensions: tuple[int, ...] = ()
    images: bool = False
    responses_only: bool = False  # served only by /openai/v1's Responses API (chat refuses it)


_GROK_REASONING_REJECTS = frozenset({"presencePenalty", "frequencyPenalty", "stop"})


def _chat(model_id: str, **kw) -> ServedModel:
    vendor = model_id.split(".", 1)[0]
    if vendor == "openai" and not model_id.startswith("openai.gpt-oss"):
        kw.setdefault("rejects", frozenset({"maxTokens"}))
    return ServedModel(model_id, "chat", vendor, **kw)


CHAT_MODELS = [
    _chat("meta.llama-4-maverick-17b-128e-instruct-fp8", vision=True),
    _chat("meta.llama-4-scout-17b-16e-instruct", vision=True),
    _chat("meta.llama-3.3-70b-instruct"),
    _chat("meta.llama-3.2-90b-vision-instruct", vision=True),
    _chat("meta.llama-3.2-11b-vision-instruct", vision=True),
    _chat("meta.llama-3.1-405b-instruct"),
    _chat("meta.llama-3.1-70b-instruct"),
    _chat("xai.grok-4", reasoning=True, vision=True, rejects=_GROK_REASONING_REJECTS | {"reasoningEffort"}),
    _chat("xai.grok-3", rejects=frozenset({"reasoningEffort"})),
    _chat("xai.grok-3-fast", rejects=frozenset({"reasoningEffort"})),
    _chat("xai.grok-3-mini", reasoning=True, rejects=_GROK_REASONING_REJECTS),
    _chat("xai.grok-3-mini-fast", reasoning=True, rejects=_GROK_REASONING_REJECTS),
    _chat("cohere.command-latest", api_formats=("COHERE",)),
    _chat("cohere.command-plus-latest", api_formats=("COHERE",)),
    _chat("cohere.command-a-03-2025", api_formats=("COHERE", "COHEREV2")),
    _chat("cohere.command-a-vision-07-2025", api_formats=("COHEREV2",), vision=True),
    _chat("cohere.command-a-reasoning-08-2025", api_formats=("COHEREV2",), reasoning=True),
    _chat("cohere.command-r-08-2024", api_formats=("COHERE",)),
    _chat("cohere.command-r-plus-08-2024", api_formats=("COHERE",)),
    _chat("google.gemini-2.5-pro", reasoning=True, vision=True),
    _chat("google.gemini-2.5-flash", reasoning=True, vision=True),
    _chat("google.gemini-2.5-flash-lite", reasoning=True, vision=True),
    _chat("openai.gpt-oss-120b", reasoning=True),
    _chat("openai.gpt-oss-20b", reasoning=True),
    _chat("openai.gpt-4.1", vision=True),
    _chat("openai.gpt-4.1-mini", vision=True),
    _chat("openai.gpt-4o", vision=True),
    _chat("openai.gpt-5", reasoning=True, vision=True),
    _chat("openai.gpt-5-mini", reasoning=True, vision=True),
    _chat("openai.o4-mini", reasoning=True, vision=True),
    _chat("openai.gpt-5.5-pro", reasoning=True, vision=True, responses_only=True),
    # Models on their way out (LIFECYCLE below): one deprecated, still served with OCI's notice; one retired, refused.
    _chat("cohere.command-r-16k", api_formats=("COHERE",)),
    _chat("meta.llama-3-70b-instruct"),
]

EMBED_MODELS = [
    ServedModel("cohere.embed-english-v3.0", "embed", "cohere", dimensions=1024),
    ServedModel("cohere.embed-multilingual-v3.0", "embed", "cohere", dimensions=1024),
    ServedModel("cohere.embed-english-light-v3.0", "embed", "cohere", dimensions=384),
    ServedModel("cohere.embed-multilingual-light-v3.0", "embed", "cohere", dimensions=384),
    ServedModel("cohere.embed-english-image-v3.0", "embed", "cohere", dimensions=1024, images=True),
    ServedModel("cohere.embed-multilingual-image-v3.0", "embed", "cohere", dimensions=1024, images=True),
    ServedModel("cohere.embed-v4.0", "embed", "cohere", dimensions=1536, output_dimensions=(256, 512, 1024, 1536), images=True),
]

RERANK_MODELS = [
    ServedModel("cohere.rerank.3-5", "rerank", "cohere"),
    ServedModel("cohere.rerank-v3.5", "rerank", "cohere"),
    ServedModel("cohere.rerank-v4.0-pro", "rerank", "cohere"),
    ServedModel("cohere.rerank-v4.0-fast", "rerank", "cohere"),
]

MODELS: dict[str, ServedModel] = {m.id: m for m in CHAT_MODELS + EMBED_MODELS + RERANK_MODELS}

DEFAULT_ENDPOINTS = {
    "ocid1.generativeaiendpoint.oc1.us-chicago-1.simllama": "meta.llama-3.3-70b-instruct",
    "ocid1.generativeaiendpoint.oc1.us-chicago-1.simgrok": "xai.grok-4",
    "ocid1.generativeaiendpoint.oc1.us-chicago-1.simcohere": "cohere.command-latest",
    "ocid1.generativeaiendpoint.oc1.us-chicago-1.simembed": "cohere.embed-english-v3.0",
}


@dataclass(frozen=True)
class Lifecycle:
    """When OCI deprecated a model and when it stops serving it on demand and on dedicated
    endpoints (ISO 8601, as ListModels gives them), and its suggested replacement."""

    time_deprecated: str
    time_on_demand_retired: str
    time_dedicated_retired: str
    replacement: str

    def retired(self, dedicated: bool, now: float) -> bool:
        return _epoch(self.time_dedicated_retired if dedicated else self.time_on_demand_retired) <= now

    def notice(self, dedicated: bool) -> str:
        """The ``model-retirement-info`` header OCI sends on every reply of a deprecated model."""
        when = self.time_dedicated_retired if dedicated else self.time_on_demand_retired
        return f"This model is deprecated and will be retired on {when}. Migrate to {self.replacement}."


def _epoch(iso: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


LIFECYCLE: dict[str, Lifecycle] = {
    "cohere.command-r-16k": Lifecycle("2026-06-01T00:00:00Z", "2031-01-15T00:00:00Z", "2031-07-15T00:00:00Z", "cohere.command-a-03-2025"),
    "meta.llama-3-70b-instruct": Lifecycle("2024-11-01T00:00:00Z", "2025-03-01T00:00:00Z", "2025-06-01T00:00:00Z", "meta.llama-3.3-70b-instruct"),
}
