"""Ablation: what the HTTP server and Starlette cost the gateway (issue #12's "measure before switching").

Serves the same ``ocilm serve`` app three ways, each pinned to one core, and loads them in turns
(interleaved) with ``bench/loadgen.py`` on the other core, next to the aiohttp pass-through:

- uvicorn + the whole Starlette app (as ``ocilm serve`` runs it);
- uvicorn + the chat route's own ASGI callable, without Starlette's router and middleware;
- granian (Rust HTTP server) + the whole app.

Usage: .venv/bin/python bench/server_ablation.py [ROUNDS]   (prints a Markdown table)
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402


def serve(kind: str, port: int, config: str) -> None:
    os.environ["OCILM_GATEWAY_CONFIG"] = config
    if kind == "granian":
        from granian import Granian

        Granian("ocilm.gateway._factory:app_from_env", factory=True, address="127.0.0.1", port=port, interface="asgi",
                log_enabled=False).serve()  # fmt: skip
        return
    import uvicorn

    from ocilm.gateway._factory import app_from_env

    app = app_from_env()
    if kind == "route-only":
        app = next(route for route in app.routes if getattr(route, "path", "") == "/v1/chat/completions").app
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="critical", access_log=False, lifespan="off" if kind == "route-only" else "on")


def main(rounds: int) -> str:
    import yaml

    sim, ctx = run.start_simulator()
    procs = []
    try:
        config = Path(ctx["tmp"]) / "gateway.yaml"
        config.write_text(yaml.safe_dump({"model_list": [{"model_name": "llama", "litellm_params": {"model": f"oci/{run.MODEL}", **ctx["creds"]}}],
                                          "general_settings": {"master_key": "sk-bench-master-key"}}))  # fmt: skip
        auth = ["authorization: Bearer sk-bench-master-key"]
        targets = {}
        for kind in ("uvicorn + Starlette (shipped)", "uvicorn + chat route only", "granian + Starlette"):
            port = run.free_port()
            arg = {"uvicorn + Starlette (shipped)": "uvicorn", "uvicorn + chat route only": "route-only", "granian + Starlette": "granian"}[kind]
            procs.append(run.start([__file__, "--serve", arg, str(port), str(config)], f"http://127.0.0.1:{port}/v1/chat/completions", cpu=run.GATEWAY_CPU))
            targets[kind] = (f"http://127.0.0.1:{port}/v1/chat/completions", auth, True)
        port = run.free_port()
        procs.append(run.start([str(HERE / "_servers.py"), "proxy-aiohttp", str(port), ctx["sim"], ctx["key_file"], ctx["key_id"]],
                               f"http://127.0.0.1:{port}/", cpu=run.GATEWAY_CPU))  # fmt: skip
        targets["aiohttp pass-through (limit)"] = (f"http://127.0.0.1:{port}/20231130/actions/chat", [], False)

        def body(openai: bool, stream: bool) -> bytes:
            prompt = run.STREAM_PROMPT if stream else run.PROMPT
            if openai:
                return json.dumps({"model": "llama", "messages": [{"role": "user", "content": prompt}], "stream": stream}).encode()
            return run.oci_body(stream, prompt)

        for url, headers, openai in targets.values():
            run.loadgen(url, body(openai, False), 8, 400, headers)
        lines = ["| cell | " + " | ".join(targets) + " |", "| --- |" + " --- |" * len(targets)]
        for stream in (False, True):
            for concurrency, count in ((1, 1000), (32, 2400)):
                got: dict[str, list[float]] = {name: [] for name in targets}
                for _ in range(rounds):
                    for name, (url, headers, openai) in targets.items():
                        got[name].append(run.loadgen(url, body(openai, stream), concurrency, count // (2 if stream else 1), headers)["rps"])
                cell = f"{'stream' if stream else 'non-stream'} c={concurrency}"
                lines.append(f"| {cell} | " + " | ".join(f"{statistics.median(v):.0f}" for v in got.values()) + " |")
        return "\n".join(lines)
    finally:
        run.stop(procs, sim)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
