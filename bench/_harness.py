"""What every benchmark shares: starting and stopping servers (pinned to a core where the
machine has two), the simulator with a fresh key, the load generator, and summaries."""

from __future__ import annotations

import base64
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
