"""What every benchmark shares: starting and stopping servers (pinned to a core where the
machine has two), the simulator with a fresh key, the load generator, and summaries."""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent

MODEL = "meta.llama-3.3-70b-instruct"


STREAM_PROMPT = " ".join(f"s{i}" for i in range(25))  # the simulator streams ~30 events for it
PROMPT = " ".join(f"w{i}" for i in range(45))  # the simulator answers ~50 tokens to it


TENANCY, USER = "ocid1.tenancy.oc1..aaaaaaaabench", "ocid1.user.oc1..aaaaaaaabench"


COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaabench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


GATEWAY_CPU, SUPPORT_CPU = "0", "1"  # the server under test gets a core of its own; upstream and load share the other


def pinned(cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu] if cpu is not None and shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def start(args: list[str], wait_url: str | None = None, cpu: str | None = None, stdout: int | IO[bytes] = subprocess.DEVNULL) -> subprocess.Popen:
    proc = subprocess.Popen([*pinned(cpu), sys.executable, *args], stdout=stdout, stderr=subprocess.DEVNULL)
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(wait_url, timeout=0.5)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{args} did not start")


def stop(procs: list[subprocess.Popen], sim: subprocess.Popen) -> None:
    """Stop the servers a bench started, then its simulator."""
    for proc in procs:
        proc.terminate()
        proc.wait(10)
    sim.terminate()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def summary(samples: list[float]) -> dict:
    samples = sorted(samples)
    return {"median_ms": statistics.median(samples) * 1000, "p95_ms": samples[int(len(samples) * 0.95) - 1] * 1000, "n": len(samples)}


class PlainSigner:
    """The baseline's signer: the OCI algorithm written out inline, key parsed once."""

    def __init__(self, key_file: str, key_id: str, host: str) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        with open(key_file, "rb") as f:
            self.key = load_pem_private_key(f.read(), None)
        self.key_id, self.host = key_id, host

    def headers(self, body: bytes) -> dict[str, str]:
        from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
        from cryptography.hazmat.primitives.hashes import SHA256

        date = email.utils.formatdate(usegmt=True)
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        text = (f"date: {date}\n(request-target): post /20231130/actions/chat\nhost: {self.host}\ncontent-length: {len(body)}\n"
                f"content-type: application/json\nx-content-sha256: {digest}")
        signature = base64.b64encode(self.key.sign(text.encode(), PKCS1v15(), SHA256())).decode()
        return {"date": date, "content-type": "application/json", "x-content-sha256": digest,
                "authorization": f'Signature algorithm="rsa-sha256",headers="date (request-target) host content-length content-type x-content-sha256",keyId="{self.key_id}",signature="{signature}",version="1"'}  # fmt: skip


def loadgen(url: str, body: bytes, concurrency: int, count: int, headers: list[str] = (), pause_ms: float = 0) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        f.write(body)
    out = subprocess.run([*pinned(SUPPORT_CPU), sys.executable, str(HERE / "loadgen.py"), url, f.name, str(concurrency), str(count), *headers],
                         capture_output=True, text=True, check=True, env={**os.environ, "OCILM_LOADGEN_PAUSE_MS": str(pause_ms)}).stdout
    os.unlink(f.name)
    return json.loads(out)


def start_simulator() -> tuple[subprocess.Popen, dict]:
    """The simulator in its own process with a fresh key, and what the benchmarks need to reach it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from ocilm.auth import fingerprint

    tmp = tempfile.mkdtemp(prefix="ocilm-bench-")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = os.path.join(tmp, "key.pem")
    Path(key_file).write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_id = f"{TENANCY}/{USER}/{fingerprint(key)}"
    port = free_port()
    sim = start([str(HERE / "_servers.py"), "simulator", str(port), key_file, key_id], f"http://127.0.0.1:{port}/", cpu=SUPPORT_CPU)
    ctx = {
        "tmp": tmp, "key_file": key_file, "key_id": key_id, "sim": f"http://127.0.0.1:{port}",
        "signer": PlainSigner(key_file, key_id, f"127.0.0.1:{port}"),
        "creds": {"oci_user": USER, "oci_tenancy": TENANCY, "oci_fingerprint": fingerprint(key), "oci_key_file": key_file,
                  "oci_compartment_id": COMPARTMENT, "api_base": f"http://127.0.0.1:{port}"},
    }  # fmt: skip
    return sim, ctx


# ---------------------------------------------------------------- gateway CPU, interleaved


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user and system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve_config(config: dict, path: Path) -> tuple[subprocess.Popen, int]:
    """``ocilm serve`` on this config (written to ``path``), started and answering."""
    import yaml

    path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = start([*("-m", "ocilm", "serve", "--config", str(path), "--port", str(port), "--log-level", "error")],
                 f"http://127.0.0.1:{port}/health/liveliness")  # fmt: skip
    return proc, port


def route_cpu(proc: subprocess.Popen, port: int, routes: dict[str, tuple[str, dict]], auth: list[str], rounds: int, count: int) -> dict[str, float]:
    """The gateway's median CPU per request on each route (name: (path, body)), the routes
    taking turns for ``rounds`` rounds after a warm-up, four callers at a time."""
    samples: dict[str, list[float]] = {}
    for path, body in routes.values():
        loadgen(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(), 4, 200, auth)
    for _ in range(rounds):
        for name, (path, body) in routes.items():
            before = cpu_seconds(proc.pid)
            got = loadgen(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(), 4, count, auth)
            assert got["errors"] == 0, got
            samples.setdefault(name, []).append((cpu_seconds(proc.pid) - before) / got["requests"])
    return {name: statistics.median(values) for name, values in samples.items()}


def gateway_rounds(gateways: dict[str, tuple[subprocess.Popen, int]], path: str, body: bytes, auth: list[str], rounds: int,
                   count: int) -> dict[str, dict[str, float]]:  # fmt: skip
    """The same request to each gateway in turn, one caller at a time, ``rounds`` rounds after a
    warm-up: the median CPU per request (s), p50 and p99 (ms) of each."""
    samples: dict[str, dict[str, list[float]]] = {}
    for _, port in gateways.values():
        loadgen(f"http://127.0.0.1:{port}{path}", body, 4, 200, auth)
    for _ in range(rounds):
        for name, (proc, port) in gateways.items():
            before = cpu_seconds(proc.pid)
            got = loadgen(f"http://127.0.0.1:{port}{path}", body, 1, count, auth)
            assert got["errors"] == 0, got
            row = samples.setdefault(name, {"cpu": [], "p50": [], "p99": []})
            row["cpu"].append((cpu_seconds(proc.pid) - before) / got["requests"])
            row["p50"].append(got["p50_ms"])
            row["p99"].append(got["p99_ms"])
    return {name: {k: statistics.median(v) for k, v in row.items()} for name, row in samples.items()}


@contextlib.contextmanager
def serving(configs: dict[str, dict], tmp: str) -> Iterator[dict[str, tuple[subprocess.Popen, int]]]:
    """One ``ocilm serve`` per named config, all answering; stopped however the block ends."""
    gateways: dict[str, tuple[subprocess.Popen, int]] = {}
    try:
        for i, (name, config) in enumerate(configs.items()):
            gateways[name] = serve_config(config, Path(tmp) / f"gateway-{i}.yaml")
        yield gateways
    finally:
        for proc, _ in gateways.values():
            proc.terminate()
            proc.wait(10)


def with_simulator(report: Callable[[dict], str]) -> int:
    """A bench's main: the simulator started, ``report(ctx)`` printed, the simulator stopped."""
    sim, ctx = start_simulator()
    try:
        print(report(ctx))
    finally:
        sim.terminate()
    return 0


def modes_cpu(config: dict, ctx: dict, bodies: Callable[[bool], dict[str, tuple[str, dict]]], rounds: int, count: int) -> dict[str, float]:
    """``route_cpu`` on one gateway for its routes' bodies unstreamed, then streamed (``mode|route``
    keys); the config's master key is ``sk-bench-master-key``."""
    with serving({"gateway": config}, ctx["tmp"]) as gateways:
        proc, port = gateways["gateway"]
        auth = ["authorization: Bearer sk-bench-master-key"]
        return {f"{'stream' if stream else 'non-stream'}|{name}": cpu
                for stream in (False, True) for name, cpu in route_cpu(proc, port, bodies(stream), auth, rounds, count).items()}  # fmt: skip
