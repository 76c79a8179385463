"""Pure translators: OpenAI chat <-> OCI GENERIC, COHERE and COHEREV2 request, response and stream."""
