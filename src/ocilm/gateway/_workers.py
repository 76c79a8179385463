"""``ocilm serve --workers N``: N uvicorn servers, each on a listening socket of its own bound
with ``SO_REUSEPORT``, so the kernel spreads new connections across the workers.

uvicorn's own supervisor shares one listening socket between its workers, and the first worker to
wake accepts every connection waiting (asyncio and libuv accept until the queue is empty): 32
keep-alive connections opened together all landed on one worker, and two workers on two cores
served what one did (``bench/workers.py``). Where ``SO_REUSEPORT`` is missing (not Linux or a BSD),
uvicorn's supervisor runs as before.

The parent binds the address first without ``SO_REUSEPORT`` (so an address in use is an error at
start, as with one worker, and a second gateway cannot silently share the port), then holds it
bound, not listening, with the option set while its workers serve. A worker listens only once its
app has started, so no connection waits on one still starting. A worker that dies is started
again, unless it stopped by itself before it served (it would again: the gateway stops and says
so); SIGTERM or SIGINT stops them all, each finishing its requests (uvicorn's graceful shutdown).
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import threading
import time
from typing import Any

APP = "ocilm.gateway._factory:app_from_env"
RESTART_PAUSE = 0.5  # seconds between checks that every worker still runs


class WorkersFailed(RuntimeError):
    """A worker died as it started (its reason is in its log): the gateway stops rather than loop."""


def spread_by_kernel() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def _bound(family: int, address: tuple) -> socket.socket:
    """A socket bound to the address with SO_REUSEPORT, not listening (uvicorn listens on it)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def _worker(family: int, address: tuple, options: dict[str, Any], serving: Any) -> None:
    import uvicorn

    # Bound, not yet listening: uvicorn listens once the app has started, so no connection waits
    # in the queue of a worker that is still starting (or will fail to).
    sock = _bound(family, address)
    server = uvicorn.Server(uvicorn.Config(APP, factory=True, host=address[0], port=address[1], **options))

    def tell_when_serving() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            serving.set()

    threading.Thread(target=tell_when_serving, daemon=True).start()
    server.run(sockets=[sock])


def run_workers(host: str, port: int, workers: int, options: dict[str, Any]) -> None:
    """Serve the gateway (its config named in the environment, as ``app_from_env`` reads it) on
    ``host:port`` with ``workers`` processes until SIGTERM or SIGINT."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    probe = socket.socket(family, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(address)  # in use (by anything, another gateway too): the error uvicorn would give
        address = probe.getsockname()  # port 0: the one the system chose, for every worker
    finally:
        probe.close()
    holder = _bound(family, address)  # never listens: it keeps the address this gateway's
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()

    served: dict[Any, Any] = {}  # each worker's event, set once its server has started

    def start() -> Any:
        serving = context.Event()
        process = context.Process(target=_worker, args=(family, address, options, serving), daemon=False)
        process.start()
        served[process] = serving
        return process

    def stop(signum: int, frame: Any) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    processes = [start() for _ in range(workers)]
    failed = False
    try:
        while not stopping.wait(RESTART_PAUSE):
            for i, process in enumerate(processes):
                if not process.is_alive():
                    # It stopped by itself before its server started (a config, a store, an import):
                    # it would again, so stop rather than loop. One killed by a signal is started again.
                    if not served.pop(process).is_set() and (process.exitcode or 0) >= 0:
                        failed = True
                        stopping.set()
                        break
                    processes[i] = start()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes what it serves, then exits
        grace = float(options.get("timeout_graceful_shutdown") or 30) + 5
        for process in processes:
            process.join(grace)
            if process.is_alive():
                process.kill()
                process.join()
        holder.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        raise WorkersFailed("a worker stopped as it started (its reason is above); the gateway stops rather than start it again")
