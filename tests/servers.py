"""Starting real ``ocilm serve`` processes for tests: a free loopback port, and a gateway with
``--workers N`` that is up before the test goes on."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(config: str, *args: str, stdout: Any = subprocess.DEVNULL, seconds: float = 60) -> tuple[subprocess.Popen, str]:
    """``ocilm serve`` (with any more ``args``, such as ``--workers 2``) on a free port; returns
    the process and its base URL once it answers."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ocilm", "serve", "--config", config, "--port", str(port), *args, "--log-level", "error"],
                            stdout=stdout, stderr=subprocess.PIPE, text=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ocilm serve exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(f"{base}/health/liveliness", timeout=0.5).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("ocilm serve did not start")
