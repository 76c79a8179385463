"""The agent front doors: OpenAI Responses and Anthropic Messages onto chat completions (pure)."""
