"""``Simulator``: the OCI stand-in served on loopback in a background thread."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
import uuid
from typing import Any

from ._app import RecordedRequest, SimulatorApp
from ._faults import Fault

SIM_TENANCY = "ocid1.tenancy.oc1..aaaaaaaasimulatortenancy"
SIM_USER = "ocid1.user.oc1..aaaaaaaasimulatoruser"
SIM_COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaasimulatorcompartment"


class BackgroundServer:
    """Serves an ASGI app with uvicorn on a loopback port, in a daemon thread."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, ssl_certfile: str | None = None, ssl_keyfile: str | None = None,
                 keep_alive: float = 5.0) -> None:  # fmt: skip
        self.app, self.host, self.port = app, host, port
        self.keep_alive = keep_alive  # seconds an idle keep-alive connection stays open
        self.ssl_certfile, self.ssl_keyfile = ssl_certfile, ssl_keyfile
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def start(self) -> BackgroundServer:
        import uvicorn

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on connections from such sockets,
        # and without it every reply written in two parts waits ~40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(512)
        self.port = sock.getsockname()[1]
        self._sock = sock
        config = uvicorn.Config(self.app, log_level="critical", lifespan="auto", access_log=False, timeout_graceful_shutdown=1,
                                timeout_keep_alive=self.keep_alive,  # type: ignore[arg-type]  # a float works: it is a timer delay
                                ssl_certfile=self.ssl_certfile, ssl_keyfile=self.ssl_keyfile)
        config.load()  # builds the TLS context when certificate files were given
        self._server = uvicorn.Server(config)
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            task = loop.create_task(self._server.serve(sockets=[sock]))

            async def watch() -> None:
                while not self._server.started and not task.done():
                    await asyncio.sleep(0.005)
                ready.set()

            loop.run_until_complete(asyncio.gather(task, watch()))
            loop.close()

        self._thread = threading.Thread(target=run, name=f"ocilm-server-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(10) or not self._server.started:
            raise RuntimeError(f"the server on {self.host}:{self.port} did not start")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.ssl_certfile else 'http'}://{host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Simulator:
    """A local OCI Generative AI endpoint for tests and demos.

    >>> with Simulator() as sim:
    ...     creds = sim.credentials()      # throwaway key, registered; kwargs for completion()
    ...     ocilm.completion(model="oci/xai.grok-4", messages=[...], **creds)

    ``base_url`` is the ``api_base`` to use; ``requests`` lists what it received;
    ``inject(Fault(...))`` makes the next request(s) misbehave.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, max_clock_skew: float | None = 300.0) -> None:
        self.app = SimulatorApp(max_clock_skew=max_clock_skew)
        self._server = BackgroundServer(self.app, host, port)
        self._credentials: dict[str, str] | None = None

    def start(self) -> Simulator:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------- use

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received, oldest first (a snapshot; the newest 10,000 are kept)."""
        return list(self.app.requests)

    def register_key(self, key_id: str, public_key: Any) -> None:
        self.app.register_key(key_id, public_key)

    def register_session_token(self, token: str, public_key: Any) -> None:
        self.app.register_session_token(token, public_key)

    def register_api_key(self, secret: str, *, policy: bool = True) -> None:
        """Accept a Generative AI API key on /openai/v1 (``policy=False``: one that answers 401)."""
        self.app.register_api_key(secret, policy=policy)

    def api_key_credentials(self) -> dict[str, Any]:
        """Keyword arguments for ocilm calls with a Generative AI API key, registered here: the
        /openai/v1 API, no RSA key."""
        secret = "sk-sim" + uuid.uuid4().hex + uuid.uuid4().hex[:16]
        self.app.register_api_key(secret)
        return {"oci_api_key": secret, "oci_region": "us-chicago-1", "api_base": self.base_url}

    def add_endpoint(self, endpoint_id: str, model_id: str) -> None:
        """Serve ``model_id`` as the DEDICATED endpoint ``endpoint_id``."""
        self.app.endpoints[endpoint_id] = model_id

    def inject(self, fault: Fault) -> None:
        self.app.inject(fault)

    def reset(self) -> None:
        """Forget recorded requests, queued faults and attempt counts (keys and endpoints stay)."""
        self.app.reset()

    def credentials(self) -> dict[str, Any]:
        """Keyword arguments for ocilm calls: a fresh throwaway key, registered here.

        Includes ``api_base``, ``oci_region`` and ``oci_compartment_id`` too.
        """
        if self._credentials is None:
            self._credentials = make_credentials(self.app)
        return {**self._credentials, "api_base": self.base_url}

    def view(self, tag: str | None = None) -> SimulatorView:
        """This simulator as one test (or one tenant of it) sees it: credentials whose ``api_base``
        carries a ``/t/<tag>`` prefix (the simulator strips it), ``requests`` holding only what
        came under that prefix, and faults that only its requests meet. Many tests can then share
        one simulator without seeing each other's stragglers."""
        return SimulatorView(self, tag or uuid.uuid4().hex[:12])

    def __repr__(self) -> str:
        return f"Simulator(base_url={self.base_url!r})"


def make_credentials(app: SimulatorApp) -> dict[str, str]:
    """Generate a throwaway API key, register it with ``app``, return ocilm keyword arguments."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from ..auth._keys import fingerprint

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    fp = fingerprint(key)
    app.register_key(f"{SIM_TENANCY}/{SIM_USER}/{fp}", key.public_key())
    return {
        "oci_user": SIM_USER, "oci_tenancy": SIM_TENANCY, "oci_fingerprint": fp, "oci_key": pem,
        "oci_region": "us-chicago-1", "oci_compartment_id": SIM_COMPARTMENT,
    }  # fmt: skip


def write_profile(credentials: dict[str, str], directory: str) -> str:
    """Write ``credentials`` as an OCI config profile (with its key file); return the config path."""
    import os

    os.makedirs(directory, exist_ok=True)
    key_path = os.path.join(directory, "simulator_key.pem")
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(credentials["oci_key"])
    config_path = os.path.join(directory, "config")
    with open(config_path, "w", encoding="utf-8") as f:
        f.write(
            "[DEFAULT]\n"
            f"user={credentials['oci_user']}\n"
            f"fingerprint={credentials['oci_fingerprint']}\n"
            f"tenancy={credentials['oci_tenancy']}\n"
            f"region={credentials['oci_region']}\n"
            f"key_file={key_path}\n"
        )
    return config_path


class SimulatorView:
    """One test's view of a shared ``Simulator`` (see ``Simulator.view``)."""

    def __init__(self, simulator: Simulator, tag: str) -> None:
        self.simulator, self.tag = simulator, tag

    @property
    def base_url(self) -> str:
        return f"{self.simulator.base_url}/t/{self.tag}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """What this view's credentials sent, oldest first."""
        return [r for r in self.simulator.app.requests if r.tag == self.tag]

    def credentials(self) -> dict[str, Any]:
        return {**self.simulator.credentials(), "api_base": self.base_url}

    def api_key_credentials(self) -> dict[str, Any]:
        return {**self.simulator.api_key_credentials(), "api_base": self.base_url}

    def inject(self, fault: Fault) -> None:
        """Make this view's next request(s) misbehave (no other view's)."""
        self.simulator.inject(dataclasses.replace(fault, tag=self.tag))

    def reset(self) -> None:
        """Forget this view's recorded requests and queued faults (other views keep theirs)."""
        app = self.simulator.app
        with app._lock:
            kept = [r for r in app.requests if r.tag != self.tag]
            app.requests.clear()
            app.requests.extend(kept)
            app.queued_faults[:] = [f for f in app.queued_faults if f.tag != self.tag]

    def __getattr__(self, name: str) -> Any:  # keys, endpoints, ports: the simulator's own
        return getattr(self.simulator, name)

    def __repr__(self) -> str:
        return f"SimulatorView(base_url={self.base_url!r})"
