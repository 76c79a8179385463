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
