"""What `pip install ocilm` brings, and what works with only that (review P1, P2)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import ocilm

ROOT = Path(__file__).resolve().parents[1]
# A meta-path finder that makes the gateway's and the demo's dependencies uninstalled.
BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
sys.meta_path.insert(0, Block())
"""
GATEWAY_ONLY = ["starlette", "uvicorn", "yaml", "pydantic", "httptools", "uvloop", "openai"]


def _requirements() -> tuple[set[str], dict[str, set[str]]]:
    base: set[str] = set()
    extras: dict[str, set[str]] = {}
    for line in importlib.metadata.requires("ocilm") or []:
        name = line.split(";")[0].split("[")[0]
        for sep in "<>=!~ ":
            name = name.split(sep)[0]
        if "extra ==" in line:
            extras.setdefault(line.split("extra ==")[1].strip().strip("'\""), set()).add(name.lower())
        else:
            base.add(name.lower())
    return base, extras


def test_sdk_installs_httpx_and_cryptography_only():
    base, extras = _requirements()
    assert base == {"httpx", "cryptography"}
    assert {"starlette", "uvicorn", "pydantic", "pyyaml"} <= extras["gateway"]
    assert extras["fast"] == {"aiohttp", "orjson"} and extras["fast"] <= extras["gateway"]  # the gateway runs fast
    assert {"sqlalchemy", "alembic", "aiosqlite", "asyncpg", "redis", "prometheus-client"} <= extras["gateway"]  # governance needs nothing else
    assert "mcp" in extras["gateway"]  # the MCP gateway's server and client sides
    assert extras["otel"] == {"opentelemetry-api", "opentelemetry-sdk"}  # traces are optional
    assert "uvicorn" in extras["testing"]
    assert not {"ruff", "mypy", "oci", "pytest"} & set().union(*extras.values())  # contributors' tools are a dev group


def test_one_version_and_a_license():
    assert importlib.metadata.version("ocilm") == ocilm.__version__
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    assert 'license-files = ["LICENSE"]' in (ROOT / "pyproject.toml").read_text()


def _run(code: str, *, blocked: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    script = BLOCKER.format(blocked=set(blocked)) + code
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


def test_sdk_works_without_the_gateway_stack(creds):
    code = """
import json, os, ocilm
creds = json.loads(os.environ["CREDS"])
print(ocilm.completion("oci/xai.grok-4", [{"role": "user", "content": "sdk only"}], **creds).choices[0].message.content)
print(len(ocilm.embedding("oci/cohere.embed-english-v3.0", ["a", "b"], **creds).data))
print(sorted(m for m in __import__("sys").modules if m.split(".")[0] in {"starlette", "uvicorn", "yaml", "pydantic"}))
"""
    done = _run(code, blocked=GATEWAY_ONLY, env={"CREDS": json.dumps(creds)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Hello from xai.grok-4! You said: sdk only", "2", "[]"]


def test_demo_runs_without_openai_and_says_what_it_skipped():
    done = _run("import runpy; runpy.run_module('ocilm.demo', run_name='__main__')", blocked=["openai"])
    assert "skipped: this step needs openai" in done.stdout, done.stdout + done.stderr
    assert "1. ocilm.completion" in done.stdout and done.returncode == 0
    done = _run("import runpy; runpy.run_module('ocilm.demo', run_name='__main__')", blocked=["uvicorn"])
    assert done.returncode == 2 and "pip install 'ocilm[testing]'" in done.stderr
