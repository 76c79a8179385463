"""What metrics and access logs cost the gateway (issue #16: at most 5% of its req/s): the same
``ocilm serve``, pinned to one core, with Prometheus metrics and a JSON access line per request
(written to a file, as a log shipper would read them) and with both turned off, loaded in turns.

Usage: .venv/bin/python bench/observability.py [ROUNDS]   (prints a Markdown table)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _harness as run  # noqa: E402  (the shared harness, not the full bench: no import circle)

MASTER = "sk-bench-master-key"
VARIANTS = {"metrics and access log off": {"metrics": False, "access_log": False},
            "metrics and access log on (default)": {"metrics": True, "access_log": True}}  # fmt: skip


def main(rounds: int) -> str:
    sim, ctx = run.start_simulator()
    procs: list[subprocess.Popen] = []
    try:
        deployment = {"model_name": "llama", "litellm_params": {"model": f"oci/{run.MODEL}", **ctx["creds"]}}
        urls: dict[str, str] = {}
        for i, (name, general) in enumerate(VARIANTS.items()):
            path = Path(ctx["tmp"]) / f"observe-{i}.yaml"
            path.write_text(yaml.safe_dump({"model_list": [deployment], "general_settings": {"master_key": MASTER, **general}}))
            port = run.free_port()
            access = open(Path(ctx["tmp"]) / f"access-{i}.log", "w")  # noqa: SIM115  # the access lines, as a log shipper would read them
            procs.append(run.start(["-m", "ocilm", "serve", "--config", str(path), "--port", str(port), "--log-level", "error"],
                                   f"http://127.0.0.1:{port}/health/liveliness", cpu=run.GATEWAY_CPU, stdout=access))  # fmt: skip
            urls[name] = f"http://127.0.0.1:{port}/v1/chat/completions"
        bodies = {"non-stream": json.dumps({"model": "llama", "messages": [{"role": "user", "content": run.PROMPT}], "max_tokens": 100}).encode(),
                  "stream": json.dumps({"model": "llama", "messages": [{"role": "user", "content": run.STREAM_PROMPT}], "stream": True}).encode()}  # fmt: skip
        headers = [f"authorization: Bearer {MASTER}"]
        for url in urls.values():
            run.loadgen(url, bodies["non-stream"], 8, 300, headers)
        results: dict[tuple[str, str], list[float]] = {}
        for _ in range(rounds):
            for kind, body in bodies.items():
                for name, url in urls.items():
                    got = run.loadgen(url, body, 8, 1500, headers)
                    assert got["errors"] == 0, got
                    results.setdefault((name, kind), []).append(got["rps"])
        lines = ["| gateway | non-stream req/s (c=8) | stream req/s (c=8) | vs off |", "| --- | --- | --- | --- |"]
        base = {kind: statistics.median(results[(next(iter(VARIANTS)), kind)]) for kind in bodies}
        for name in VARIANTS:
            cells = [statistics.median(results[(name, kind)]) for kind in bodies]
            change = " / ".join(f"{(c / base[kind] - 1) * 100:+.1f}%" for c, kind in zip(cells, bodies, strict=True))
            lines.append(f"| {name} | {cells[0]:.0f} | {cells[1]:.0f} | {change} |")
        return "\n".join(lines)
    finally:
        run.stop(procs, sim)


if __name__ == "__main__":
    print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
