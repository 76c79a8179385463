# Sourced by scripts/test.sh: the coding-agent CLIs that the end-to-end tests drive (Claude Code
# and Codex, pinned) and the MCP conformance suite with its reference server (0.1.13 is the last
# that runs on Node 20), installed from npm into .tools/ once. Without npm the tests that need
# them skip, and CI (OCILM_NO_SKIPS=1) fails.
tools="$root/.tools"
agents="@anthropic-ai/claude-code@2.1.197 @openai/codex@0.171.0 @modelcontextprotocol/conformance@0.1.13 @modelcontextprotocol/server-everything@2026.8.31"
if command -v npm >/dev/null 2>&1 && [ "$(cat "$tools/.installed" 2>/dev/null || true)" != "$agents" ]; then
  mkdir -p "$tools"
  # shellcheck disable=SC2086
  if npm install --silent --no-audit --no-fund --prefix "$tools" $agents >/dev/null 2>&1; then
    echo "$agents" > "$tools/.installed"
  else
    echo "scripts/test.sh: could not install the agent CLIs with npm ($agents)" >&2
  fi
fi
