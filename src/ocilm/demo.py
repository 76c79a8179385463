"""The demo: OCI models through ocilm, end to end, against the built-in simulator.

Starts the OCI simulator and the gateway on loopback, then:
1. calls a model with ``ocilm.completion`` (signed exactly as OCI requires),
2. streams a reply, 3. runs a tool call round trip, 4. embeds text,
5. streams a reply through the gateway with the official OpenAI SDK,
6. sends a Responses request (as Codex does, over HTTP and its WebSocket mode) and streams a
   Messages reply (as Claude Code does),
7. a team's virtual key with a budget and a rate limit, 8. a team's file answered through file_search.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from typing import Any

import ocilm

MASTER_KEY = "sk-ocilm-demo"


def step(title: str) -> None:
    bold, plain = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
    print(f"\n{bold}== {title}{plain}", flush=True)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def main() -> int:
    if not _installed("uvicorn"):
        print("the demo runs the OCI simulator, which needs the testing extra: pip install 'ocilm[testing]'", file=sys.stderr)
        return 2
    from ocilm.testing import Simulator

    with Simulator() as sim:
        creds = sim.credentials()
        print(f"OCI simulator on {sim.base_url} (it verifies every request signature, as OCI does)")

        step("1. ocilm.completion(model='oci/xai.grok-4', ...)")
        timings = []
        for _ in range(2):
            start = time.perf_counter()
            r = ocilm.completion(model="oci/xai.grok-4", messages=[{"role": "user", "content": "Hey! how's it going?"}], **creds)
            timings.append((time.perf_counter() - start) * 1000)
        print(f"{r.choices[0].message.content}\n  finish_reason={r.choices[0].finish_reason} usage={json.dumps(r.usage)}\n"
              f"  first call {timings[0]:.1f} ms (loads httpx and parses the key, once); next call {timings[1]:.1f} ms")

        step("2. stream=True with a Cohere model")
        for chunk in ocilm.completion(model="oci/cohere.command-latest", messages=[{"role": "user", "content": "Tell me about OCI"}],
                                      stream=True, **creds):
            print(chunk["choices"][0]["delta"]["content"] or "", end="", flush=True)
        print()

        step("3. tool call round trip with Llama")
        tools = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
        messages = [{"role": "user", "content": "What is the weather in Paris?"}]
        r = ocilm.completion(model="oci/meta.llama-3.3-70b-instruct", messages=messages, tools=tools, **creds)
        call = r.choices[0].message.tool_calls[0]
        print(f"model asks: {call.function.name}({call.function.arguments})")
        messages += [r.choices[0].message.model_dump(), {"role": "tool", "tool_call_id": call.id, "content": '{"tempC": 21}'}]
        print("model answers:", ocilm.completion(model="oci/meta.llama-3.3-70b-instruct", messages=messages, tools=tools, **creds)
              .choices[0].message.content)

        step("4. ocilm.embedding(model='oci/cohere.embed-english-v3.0', input=[...200 texts...])")
        e = ocilm.embedding(model="oci/cohere.embed-english-v3.0", input=[f"document {i}" for i in range(200)], **creds)
        print(f"{len(e.data)} embeddings of {len(e.data[0].embedding)} dimensions (sent as 3 batches), usage={json.dumps(e.usage)}")

        step("5. the gateway, used by the official OpenAI SDK")
        missing = [extra for module, extra in (("starlette", "ocilm[gateway]"), ("openai", "openai")) if not _installed(module)]
        if missing:
            print(f"skipped: this step needs {' and '.join(missing)} (pip install {' '.join(repr(m) for m in missing)})")
            return 0
        from ocilm.gateway import create_app, parse_config
        from ocilm.testing import BackgroundServer

        config = parse_config({
            "model_list": [{"model_name": "grok", "litellm_params": {"model": "oci/xai.grok-4", **creds}}],
            "router_settings": {"model_group_alias": {"claude-*": "grok", "gpt-5*": "grok"}},
            "general_settings": {"master_key": MASTER_KEY},
        })  # fmt: skip
        with BackgroundServer(create_app(config)) as gateway:
            import openai

            print(f"gateway on {gateway.base_url}/v1; OpenAI(base_url=..., api_key=<master key>)")
            client = openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=MASTER_KEY)
            stream = client.chat.completions.create(model="grok", stream=True,
                                                    messages=[{"role": "user", "content": "Hello through the gateway"}])
            for event in stream:
                if event.choices:
                    print(event.choices[0].delta.content or "", end="", flush=True)
            print()

            step("6. the agent doors: OpenAI Responses (Codex) and Anthropic Messages (Claude Code)")
            reply = client.responses.create(model="gpt-5-codex", input="Hello from a Responses client")
            print(f"POST /v1/responses, model 'gpt-5-codex' (an alias of grok): {reply.output_text}")
            client.close()
            _responses_over_a_websocket(gateway.base_url)
            if _installed("anthropic"):
                import anthropic

                with anthropic.Anthropic(base_url=gateway.base_url, api_key=MASTER_KEY) as claude, claude.messages.stream(
                    model="claude-sonnet-4-5", max_tokens=200, messages=[{"role": "user", "content": "Hello from a Messages client"}]
                ) as message_stream:
                    print("POST /v1/messages, model 'claude-sonnet-4-5' (an alias of grok): ", end="")
                    for text in message_stream.text_stream:
                        print(text, end="", flush=True)
                print()
            else:
                print("(the Messages step needs the anthropic package: pip install anthropic)")

        step("7. a team's virtual key: budget, rate limit, spend, metrics and the usage console")
        _governed_gateway(creds)

        step("8. OCI's agent platform, one team at a time: a team's file answered through file_search")
        _team_file_search(sim)

        step("9. the MCP gateway: a team's key lists and calls its tools through /mcp, deny by default")
        if _installed("mcp"):
            _mcp_gateway()
        else:
            print("(the MCP step needs the mcp package: pip install 'ocilm[gateway]')")
    print("\ndone: every call above was signed, sent over HTTP and verified by the simulator.")
    return 0


def _responses_over_a_websocket(base_url: str) -> None:
    """Codex's WebSocket mode: a warm-up, then two turns on one socket, the second continuing the
    first with store: false (only the new input is sent)."""
    import json

    from websockets.sync.client import connect

    def turn(ws: Any, **body: Any) -> dict:
        ws.send(json.dumps({"type": "response.create", "model": "gpt-5-codex", "store": False, **body}))
        while True:
            event = json.loads(ws.recv(timeout=60))
            if event["type"] in ("response.completed", "response.failed", "response.incomplete", "error"):
                return event

    with connect(base_url.replace("http://", "ws://") + "/v1/responses", additional_headers={"authorization": f"Bearer {MASTER_KEY}"}) as ws:
        warm = turn(ws, input="You are terse.", generate=False)
        first = turn(ws, input="My name is Ana.", previous_response_id=warm["response"]["id"])
        second = turn(ws, input="What is my name?", previous_response_id=first["response"]["id"])
    texts = [part["text"] for item in second["response"]["output"] if item["type"] == "message" for part in item["content"]]
    print(f"WebSocket /v1/responses (Codex's mode), three frames on one socket, the last continuing the others: {' '.join(texts)}")


def _team_file_search(sim: Any) -> None:
    """A team uploads a file, builds a vector store and answers from it with file_search, through
    the gateway in front of an /openai/v1 deployment; another team cannot see any of it."""
    import tempfile

    import openai

    from ocilm.gateway import create_app, parse_config
    from ocilm.testing import BackgroundServer

    with tempfile.TemporaryDirectory() as folder:
        config = parse_config({
            "model_list": [{"model_name": "grok", "litellm_params": {"model": "oci/xai.grok-4", **sim.api_key_credentials()}}],
            "general_settings": {"master_key": MASTER_KEY, "database_url": f"sqlite:///{folder}/platform.db"},
        })  # fmt: skip
        with BackgroundServer(create_app(config)) as gateway:
            admin = openai.OpenAI(base_url=gateway.base_url, api_key=MASTER_KEY)

            def team_key() -> str:
                team = admin.post("/team/new", body={}, cast_to=dict)["team_id"]
                return str(admin.post("/key/generate", body={"team_id": team}, cast_to=dict)["key"])

            ledger, canteen = (openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=team_key()) for _ in range(2))
            uploaded = ledger.files.create(file=("ledger.txt", b"The ledger port to Rust uses sqlx for the database."), purpose="assistants")
            store = ledger.vector_stores.create(name="ledger notes", file_ids=[uploaded.id])
            answer = ledger.responses.create(model="grok", input="Which database library does the ledger use?",
                                             tools=[{"type": "file_search", "vector_store_ids": [store.id]}])  # fmt: skip
            print(f"team ledger: uploaded {uploaded.filename}, built vector store {store.id}; file_search answered: {answer.output_text}")
            try:
                canteen.vector_stores.retrieve(store.id)
            except openai.NotFoundError:
                print(f"team canteen asking for {store.id}: 404, and nothing reached OCI; it lists {len(canteen.files.list().data)} files")
            for client in (admin, ledger, canteen):
                client.close()


def _mcp_gateway() -> None:
    """Two tool servers (built on the official mcp package) behind one gateway: a team's key sees
    and calls the one its team was granted; the other is not there for it."""
    import asyncio
    import tempfile

    import httpx
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.server.mcpserver import MCPServer

    from ocilm.gateway import create_app, parse_config
    from ocilm.testing import BackgroundServer

    weather, payroll = MCPServer("weather", log_level="WARNING"), MCPServer("payroll", log_level="WARNING")

    @weather.tool()
    def forecast(city: str) -> str:
        """Tomorrow's weather in a city."""
        return f"Sunny in {city} tomorrow, 22 C"

    @payroll.tool()
    def salaries() -> str:
        """Everyone's salary."""
        return "confidential"

    admin = {"authorization": f"Bearer {MASTER_KEY}"}
    with tempfile.TemporaryDirectory() as state, BackgroundServer(weather.streamable_http_app(json_response=True, stateless_http=True)) as w, \
            BackgroundServer(payroll.streamable_http_app(json_response=True, stateless_http=True)) as p:  # fmt: skip
        config = parse_config({
            "mcp_servers": {"weather": {"url": f"{w.base_url}/mcp", "transport": "http",
                                        "mcp_info": {"mcp_server_cost_info": {"default_cost_per_query": 0.001}}},
                            "payroll": {"url": f"{p.base_url}/mcp", "transport": "http", "auth_type": "bearer_token",
                                        "authentication_token": "payroll-service-token"}},
            "general_settings": {"master_key": MASTER_KEY, "database_url": f"sqlite:///{state}/mcp.db"},
        })  # fmt: skip
        with BackgroundServer(create_app(config)) as gateway:
            team = httpx.post(f"{gateway.base_url}/team/new", headers=admin, json={"team_alias": "travel",
                              "object_permission": {"mcp_servers": ["weather"]}}).json()  # fmt: skip
            made = httpx.post(f"{gateway.base_url}/key/generate", headers=admin, json={"team_id": team["team_id"], "max_budget": 1}).json()

            async def session_work() -> tuple[list[str], str, str]:
                async with httpx2.AsyncClient(headers={"authorization": f"Bearer {made['key']}"}) as http, \
                        streamable_http_client(f"{gateway.base_url}/mcp", http_client=http) as streams, \
                        ClientSession(streams[0], streams[1]) as session:  # fmt: skip
                    await session.initialize()
                    tools = [t.name for t in (await session.list_tools()).tools]
                    answer = await session.call_tool("weather-forecast", {"city": "Lisbon"})
                    try:
                        await session.call_tool("payroll-salaries", {})
                        denied = "called (wrong!)"
                    except Exception as exc:  # the gateway's JSON-RPC error
                        denied = str(exc)
                    return tools, " ".join(getattr(part, "text", "") for part in answer.content), denied

            tools, answer, denied = asyncio.run(session_work())
            print(f"tools/list for the travel team's key: {tools} (payroll is not theirs)")
            print(f"tools/call weather-forecast: {answer}")
            print(f"tools/call payroll-salaries: refused ({denied}); the payroll server never saw it")
            rows = httpx.get(f"{gateway.base_url}/spend/logs", headers=admin, params={"api_key": made["token"]}).json()
            print(f"spend log: {[(r['call_type'], r['model'], r['tool_calls'], r['spend']) for r in rows]}")


def _governed_gateway(creds: dict) -> None:
    import tempfile

    import httpx
    import openai

    from ocilm.gateway import create_app, parse_config
    from ocilm.testing import BackgroundServer

    admin = {"authorization": f"Bearer {MASTER_KEY}"}
    with tempfile.TemporaryDirectory() as state:
        config = parse_config({
            "model_list": [{"model_name": "grok", "litellm_params": {"model": "oci/xai.grok-4", **creds}}],
            "general_settings": {"master_key": MASTER_KEY, "database_url": f"sqlite:///{state}/ocilm.db"},
        })  # fmt: skip
        with BackgroundServer(create_app(config)) as gateway:
            team = httpx.post(f"{gateway.base_url}/team/new", headers=admin, json={"team_alias": "research", "max_budget": 100}).json()
            made = httpx.post(f"{gateway.base_url}/key/generate", headers=admin,
                              json={"team_id": team["team_id"], "key_alias": "ana", "max_budget": 5, "rpm_limit": 60}).json()  # fmt: skip
            print(f"POST /key/generate -> key id {made['token']} (the secret is shown once, stored only as a hash)")
            with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=made["key"]) as client:
                for _ in range(3):
                    raw = client.chat.completions.with_raw_response.create(model="grok", messages=[{"role": "user", "content": "Hi"}])
            print(f"reply headers: cost ${raw.headers['x-litellm-response-cost']}, "
                  f"{raw.headers['x-ratelimit-remaining-requests']} of {raw.headers['x-ratelimit-limit-requests']} requests left this minute")
            info = httpx.get(f"{gateway.base_url}/key/info", headers=admin, params={"key": made["token"]}).json()["info"]
            print(f"GET /key/info -> spend ${info['spend']:.6f} of a ${info['max_budget']:.2f} budget (built-in OCI price of xai.grok-4)")
            metrics = httpx.get(f"{gateway.base_url}/metrics", headers=admin).text
            shown = [line for line in metrics.splitlines() if line.startswith(("ocilm_requests_total", "ocilm_spend_usd_total"))]
            print("GET /metrics ->\n  " + "\n  ".join(shown))
            print(f"usage console: {gateway.base_url}/ui (sign in with the master key); with `ocilm serve` it stays up")


if __name__ == "__main__":
    sys.exit(main())
