"""``ocilm keys`` and ``ocilm db`` from the terminal, on a SQLite store beside the config file
(``database_url: sqlite:///ocilm.db``), and the keys they make used through ``ocilm serve``'s app."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from ocilm.gateway import create_app, load_config
from ocilm.testing import BackgroundServer

MASTER = "sk-master-cli-1234"


def ocilm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ocilm", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def config_file(creds, tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds,
                                                                   "input_cost_per_token": 0.001, "output_cost_per_token": 0.002}}],
        "general_settings": {"master_key": MASTER, "database_url": "sqlite:///ocilm.db"},
    }))  # fmt: skip
    return path


def test_keys_from_the_terminal(config_file):
    made = ocilm("keys", "create", "--config", str(config_file), "--alias", "laptop", "--max-budget", "2", "--models", "llama")
    assert made.returncode == 0, made.stderr
    key = made.stdout.split("shown once, store it now): ", 1)[1].split()[0]
    info = json.loads(made.stdout.split("\n", 1)[1])
    assert (config_file.parent / "ocilm.db").exists()  # a relative SQLite path is beside the config
    assert info["key_alias"] == "laptop" and info["max_budget"] == 2.0 and key not in made.stdout.split("\n", 1)[1]
    listed = ocilm("keys", "list", "--config", str(config_file))
    assert info["token"] in listed.stdout and "alias=laptop" in listed.stdout and key not in listed.stdout
    with BackgroundServer(create_app(load_config(str(config_file)))) as gw:
        r = httpx.post(f"{gw.base_url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                       json={"model": "llama", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}, timeout=30)  # fmt: skip
        assert r.status_code == 200 and float(r.headers["x-litellm-response-cost"]) > 0, r.text
        assert ocilm("keys", "block", info["token"], "--config", str(config_file)).returncode == 0
        blocked = time.monotonic()
        while True:  # the gateway rereads a key at most every 0.5 s: blocked from the terminal, refused within a second
            r = httpx.post(f"{gw.base_url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                           json={"model": "llama", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}, timeout=30)  # fmt: skip
            if r.status_code != 200 or time.monotonic() - blocked > 1.0:
                break
        assert r.status_code == 401, r.text
    shown = json.loads(ocilm("keys", "info", key, "--config", str(config_file)).stdout)
    assert shown["blocked"] is True and shown["spend"] > 0
    assert ocilm("keys", "delete", info["token"], "--config", str(config_file)).returncode == 0
    gone = ocilm("keys", "info", info["token"], "--config", str(config_file))
    assert gone.returncode == 1 and "no key" in gone.stderr


def test_bad_values_are_named(config_file):
    r = ocilm("keys", "create", "--config", str(config_file), "--budget-duration", "forever")
    assert r.returncode == 2 and "budget_duration:" in r.stderr
    r = ocilm("keys", "create", "--config", str(config_file), "--models", "gpt-9")
    assert r.returncode == 2 and "models: not served by this gateway: gpt-9" in r.stderr


def test_a_config_without_a_store_says_what_to_set(creds, tmp_path):
    path = tmp_path / "open.yaml"
    path.write_text(yaml.safe_dump({"model_list": [{"model_name": "m", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds}}]}))
    r = ocilm("keys", "list", "--config", str(path))
    assert r.returncode == 2 and "set general_settings.database_url (sqlite:///ocilm.db" in r.stderr
