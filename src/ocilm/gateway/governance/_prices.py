"""OCI Generative AI on-demand prices, built in so that spend and budgets work without a price in
every deployment (``input_cost_per_token`` / ``output_cost_per_token`` in the config win).

Source: Oracle's price list for the Generative AI service,
https://www.oracle.com/artificial-intelligence/generative-ai/generative-ai-service/pricing
(on-demand, US dollars, commercial realm), as collected on 2026-12-02. It was not read from
Oracle's page directly on that date but from a public price map that cites it; check the figures
against your own contract and override them per deployment where they differ.

Two units, as Oracle publishes them:

- ``TOKENS``: xAI Grok, Google Gemini and OpenAI models, priced in USD per million input and per
  million output tokens. Stored as published; converted by dividing by 1,000,000.
- ``CHARACTERS``: Meta Llama and Cohere models (chat and embeddings), priced in USD per 10,000
  "transactions", where one transaction is one character of input or output. OCI's usage reports
  tokens, not characters, so a character price becomes a token price at 4 characters per token
  (the ratio OCI's own documentation uses for English text):
  ``per_token = per_10k_characters / 10_000 * 4``. Input and output cost the same.

Dedicated AI clusters are billed by the hour, not per request: a dedicated endpoint has no
per-request price unless its deployment sets one.
"""

from __future__ import annotations

from ._policy import Price

CHARACTERS_PER_TOKEN = 4
PRICES_COLLECTED = "2026-12-02"

# model id: USD per million tokens (input, output)
_PER_MILLION_TOKENS: dict[str, tuple[float, float]] = {
    "xai.grok-4": (3.00, 15.00),
    "xai.grok-3": (3.00, 15.00),
    "xai.grok-3-fast": (5.00, 25.00),
    "xai.grok-3-mini": (0.30, 0.50),
    "xai.grok-3-mini-fast": (0.60, 4.00),
    "xai.grok-code-fast-1": (5.00, 25.00),
    "google.gemini-2.5-pro": (1.25, 10.00),
    "google.gemini-2.5-flash": (0.15, 0.60),
    "google.gemini-2.5-flash-lite": (0.075, 0.30),
    "openai.gpt-5": (1.25, 10.00),
    "openai.gpt-5-mini": (0.25, 2.00),
    "openai.gpt-5-nano": (0.05, 0.40),
}

# model id: USD per 10,000 characters (one price for input and output)
_PER_10K_CHARACTERS: dict[str, float] = {
    "meta.llama-4-maverick-17b-128e-instruct-fp8": 0.0018,
    "meta.llama-4-scout-17b-16e-instruct": 0.0018,
    "meta.llama-3.3-70b-instruct": 0.0018,
    "meta.llama-3.2-90b-vision-instruct": 0.0050,
    "meta.llama-3.2-11b-vision-instruct": 0.0050,
    "meta.llama-3.1-405b-instruct": 0.0267,
    "meta.llama-3.1-70b-instruct": 0.0018,
    "cohere.command-latest": 0.0039,
    "cohere.command-plus-latest": 0.0039,
    "cohere.command-a-03-2025": 0.0039,
    "cohere.command-a-vision-07-2025": 0.0039,
    "cohere.command-a-reasoning-08-2025": 0.0039,
    "cohere.command-a-translate-08-2025": 0.000225,
    "cohere.command-r-08-2024": 0.000375,
    "cohere.command-r-plus-08-2024": 0.0039,
    "cohere.embed-english-v3.0": 0.00025,
    "cohere.embed-multilingual-v3.0": 0.00025,
    "cohere.embed-english-light-v3.0": 0.00025,
    "cohere.embed-multilingual-light-v3.0": 0.00025,
    "cohere.embed-english-image-v3.0": 0.00025,
    "cohere.embed-multilingual-image-v3.0": 0.00025,
    "cohere.embed-v4.0": 0.0003,
}


def builtin_price(model_id: str) -> Price | None:
    """The built-in on-demand price of an OCI model id (``oci/`` prefix optional), or None."""
    model_id = model_id.removeprefix("oci/")
    per_million = _PER_MILLION_TOKENS.get(model_id)
    if per_million is not None:
        return Price(per_million[0] / 1_000_000, per_million[1] / 1_000_000, source="built-in")
    per_10k_chars = _PER_10K_CHARACTERS.get(model_id)
    if per_10k_chars is not None:
        per_token = per_10k_chars / 10_000 * CHARACTERS_PER_TOKEN
        return Price(per_token, per_token, source="built-in")
    return None


def priced_models() -> list[str]:
    return sorted({*_PER_MILLION_TOKENS, *_PER_10K_CHARACTERS})
