"""The real coding agents, offline, through the gateway to the simulator: Claude Code (`claude -p`,
Anthropic Messages) and Codex (`codex exec`, OpenAI Responses), each through one tool call.

The CLIs come from npm (scripts/test.sh installs pinned versions into .tools/); without them
these tests skip, which CI turns into a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from ocilm.gateway import create_app, parse_config
from ocilm.testing import BackgroundServer

from ..servers import recording_headers

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-agent-cli-key-1"


def _cli(name: str) -> str:
    found = shutil.which(name, path=str(ROOT / ".tools" / "node_modules" / ".bin")) or shutil.which(name)
    if found is None:
        pytest.skip(f"the {name} CLI is not installed (scripts/test.sh installs it with npm into .tools/)")
    return found


@pytest.fixture
def gateway(oci_simulator):
    config = {"model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **oci_simulator.credentials()}}],
              "router_settings": {"model_group_alias": {"claude-sonnet-4-5": "llama", "gpt-5": "llama"}},
              "general_settings": {"master_key": KEY}}  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        yield server


def _run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run an agent CLI in its own process group, which is killed whole if it overruns."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TERM", "TMPDIR")}
    proc = subprocess.Popen(args, env={**keep, **env}, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the CLI and anything it started
        proc.wait()
    assert proc.returncode == 0, f"{args[0]} exited {proc.returncode}:\n{out[-3000:]}\n{err[-3000:]}"
    return out


def _tool_turns(oci_simulator) -> list:
    return [r for r in oci_simulator.requests if r.json and any(m.get("role") == "TOOL" for m in r.json["chatRequest"].get("messages") or [])]


def test_claude_code_through_the_gateway(gateway, oci_simulator, tmp_path):
    claude = _cli("claude")
    (tmp_path / "README").write_text("hello from the readme\n")
    env = {"HOME": str(tmp_path / "home"), "ANTHROPIC_BASE_URL": gateway.base_url, "ANTHROPIC_API_KEY": KEY,
           "ANTHROPIC_MODEL": "claude-sonnet-4-5", "ANTHROPIC_DEFAULT_HAIKU_MODEL": "llama",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}  # fmt: skip
    out = _run([claude, "-p", f"please read the file {tmp_path}/README", "--allowedTools", "Read", "--output-format", "json"], env, tmp_path)
    result = json.loads(out)
    # The simulated model called Read, Claude Code ran it and sent the result back, and the model answered it.
    assert result["is_error"] is False and result["result"].startswith("The tool said:")
    turns = _tool_turns(oci_simulator)
    assert turns, "no request carried a tool result"
    assert any(c.get("name") == "Read" for m in turns[-1].json["chatRequest"]["messages"] for c in m.get("toolCalls") or [])


def _codex(base_url: str, tmp_path: Path, *, websockets: bool = False) -> str:
    """``codex exec`` with a model provider that is the gateway (over a socket with ``websockets``): its output."""
    codex = _cli("codex")
    home = tmp_path / "codex"
    home.mkdir()
    (home / "config.toml").write_text(
        'model = "gpt-5"\nmodel_provider = "ocilm"\n[model_providers.ocilm]\nname = "ocilm"\n'
        f'base_url = "{base_url}/v1"\nenv_key = "OCILM_GATEWAY_KEY"\nwire_api = "responses"\n'
        + ("supports_websockets = true\n" if websockets else "")
    )
    env = {"HOME": str(tmp_path / "home"), "CODEX_HOME": str(home), "OCILM_GATEWAY_KEY": KEY}
    return _run([codex, "exec", "--skip-git-repo-check", "please run the shell command Pwd"], env, tmp_path)


def test_codex_through_the_gateway(gateway, oci_simulator, tmp_path):
    out = _codex(gateway.base_url, tmp_path)
    assert "The tool said:" in out  # the command's output went back through the gateway and was answered
    turns = _tool_turns(oci_simulator)
    assert turns and "Pwd" in json.dumps(turns[-1].json)


def test_codex_through_an_api_key_deployment(oci_simulator, tmp_path):
    """Codex's Responses requests passed through to OCI's /openai/v1 with a Generative AI API key."""
    config = {"model_list": [{"model_name": "gpt-5", "litellm_params": {"model": "oci/openai.gpt-oss-120b", **oci_simulator.api_key_credentials()}}],
              "general_settings": {"master_key": KEY}}  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as gateway:
        out = _codex(gateway.base_url, tmp_path)
    assert "The tool said:" in out
    passed = [r for r in oci_simulator.requests if r.path == "/openai/v1/responses"]
    assert passed and any(item.get("type") == "function_call_output" for item in passed[-1].json["input"] if isinstance(item, dict))
    assert all(r.headers["authorization"].startswith("Bearer ") for r in passed)


def test_codex_over_a_websocket(gateway, oci_simulator, tmp_path, caplog):
    """Codex with `supports_websockets = true`: its turns (the warm-up, the tool call, the answer to
    the tool's output, which carries only the new items) go over the socket, not a fall-back to HTTP."""
    import logging

    caplog.set_level(logging.INFO, logger="ocilm.access")
    out = _codex(gateway.base_url, tmp_path, websockets=True)
    assert "The tool said:" in out
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "ocilm.access"]
    responses = [line for line in lines if line["route"] == "responses"]
    assert responses and all(line["transport"] == "websocket" for line in responses), [(l["transport"], l["status"]) for l in responses]  # noqa: E741
    assert sum(line["stream"] for line in responses) >= 2  # the tool turn and the answer, both over the socket
    assert _tool_turns(oci_simulator)


@pytest.fixture
def weather_tools():
    """An MCP server (the official package) with one tool, recording the headers that reach it."""
    mcpserver = pytest.importorskip("mcp.server.mcpserver")
    server = mcpserver.MCPServer("weather")
    calls: list[str] = []
    headers: list[dict[str, str]] = []

    @server.tool()
    def lookup_weather(city: str) -> str:
        """Today's weather in a city."""
        calls.append(city)
        return f"Sunny in {city}, 21 C"

    with BackgroundServer(recording_headers(server.streamable_http_app(json_response=True), headers)) as running:
        running.calls, running.headers = calls, headers
        yield running


@pytest.fixture
def mcp_gateway(oci_simulator, weather_tools, tmp_path):
    """The model and the MCP tools behind one gateway; a team key granted the weather server."""
    import httpx

    config = {"model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **oci_simulator.credentials()}}],
              "router_settings": {"model_group_alias": {"claude-sonnet-4-5": "llama", "gpt-5": "llama"}},
              "mcp_servers": {"weather": {"url": f"{weather_tools.base_url}/mcp", "transport": "http"}},
              "general_settings": {"master_key": KEY, "database_url": f"sqlite:///{tmp_path / 'agents.db'}"}}  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        made = httpx.post(f"{server.base_url}/key/generate", headers={"authorization": f"Bearer {KEY}"},
                          json={"object_permission": {"mcp_servers": ["weather"]}}, timeout=30).json()  # fmt: skip
        server.team_key = made["key"]
        yield server


def _mcp_answered(weather_tools, key: str) -> None:
    assert weather_tools.calls == ["Lisbon"]  # the agent's call reached the tool server through the gateway
    assert not any(key in value for seen in weather_tools.headers for value in seen.values())  # its gateway key did not


def test_claude_code_calls_an_mcp_tool_through_the_gateway(mcp_gateway, weather_tools, oci_simulator, tmp_path):
    claude = _cli("claude")
    key = mcp_gateway.team_key
    mcp_config = tmp_path / "mcp.json"
    mcp_config.write_text(json.dumps({"mcpServers": {"gw": {"type": "http", "url": f"{mcp_gateway.base_url}/mcp",
                                                            "headers": {"Authorization": f"Bearer {key}"}}}}))  # fmt: skip
    env = {"HOME": str(tmp_path / "home"), "ANTHROPIC_BASE_URL": mcp_gateway.base_url, "ANTHROPIC_API_KEY": key,
           "ANTHROPIC_MODEL": "claude-sonnet-4-5", "ANTHROPIC_DEFAULT_HAIKU_MODEL": "llama", "ENABLE_TOOL_SEARCH": "false",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}  # fmt: skip
    out = _run([claude, "-p", "please lookup_weather for Lisbon", "--mcp-config", str(mcp_config), "--strict-mcp-config",
                "--allowedTools", "mcp__gw__weather-lookup_weather", "--output-format", "json"], env, tmp_path)  # fmt: skip
    result = json.loads(out)
    assert result["is_error"] is False and "Sunny in Lisbon" in result["result"]
    _mcp_answered(weather_tools, key)


def test_codex_calls_an_mcp_tool_through_the_gateway(mcp_gateway, weather_tools, oci_simulator, tmp_path):
    codex = _cli("codex")
    key = mcp_gateway.team_key
    home = tmp_path / "codex"
    home.mkdir()
    (home / "config.toml").write_text(
        'model = "gpt-5"\nmodel_provider = "ocilm"\napproval_policy = "never"\n'
        f'[model_providers.ocilm]\nname = "ocilm"\nbase_url = "{mcp_gateway.base_url}/v1"\nenv_key = "OCILM_GATEWAY_KEY"\nwire_api = "responses"\n'
        f'[mcp_servers.gw]\nurl = "{mcp_gateway.base_url}/mcp"\nhttp_headers = {{ authorization = "Bearer {key}" }}\ndefault_tools_approval_mode = "approve"\n'
    )
    env = {"HOME": str(tmp_path / "home"), "CODEX_HOME": str(home), "OCILM_GATEWAY_KEY": key}
    out = _run([codex, "exec", "--skip-git-repo-check", "please lookup_weather for Lisbon"], env, tmp_path)
    assert "Sunny in Lisbon" in out
    _mcp_answered(weather_tools, key)
