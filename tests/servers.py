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


class TcpRelay:
    """A TCP relay (to PostgreSQL or Redis) that a test can cut and restore (the server "goes away": every
    connection is reset), or freeze and thaw (a partition: connections stay open, nothing is
    forwarded and nothing is refused, as when a host dies or packets are dropped)."""

    def __init__(self, target_port: int) -> None:
        import threading

        self.target_port = target_port
        self.port = free_port()
        self.open = threading.Event()
        self.open.set()
        self.flowing = threading.Event()
        self.flowing.set()
        self._conns: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self.open.is_set():
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                self.flowing.wait()  # frozen: held, neither sent nor refused
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):  # shutdown, not only close: the other pipe thread still holds the socket
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def cut(self) -> None:
        self.open.clear()
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._conns.clear()

    def restore(self) -> None:
        self.open.set()

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self.thaw()
        self.cut()
        self._server.close()


class OwnRedis:
    """A redis-server of the test's own on a free port, to stop and start."""

    def __init__(self, tmp_path) -> None:
        self.port, self.dir = free_port(), tmp_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                      "--dir", str(self.dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def recording_headers(app: Any, seen: list[dict[str, str]]) -> Any:
    """``app`` (an MCP server's, say) with every HTTP request's headers appended to ``seen``: what
    a test asserts on to show whose credentials arrived."""

    async def recording(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
        await app(scope, receive, send)

    return recording
