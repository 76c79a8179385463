"""Files through the gateway, one tenant at a time, driven by the official openai SDK: two teams
upload, list, read and delete; every cross-team access is a 404 that never reaches the simulator;
the master key sees all; every call passes the gate (rate limits, the spend log); uploads are
bounded before they are read, and a tenant's bytes by its quota."""

from __future__ import annotations

import socket

import httpx
import pytest

from ocilm.gateway import create_app, parse_config
from ocilm.testing import BackgroundServer

openai = pytest.importorskip("openai")
MASTER = "sk-master-files-1"
ADMIN = {"authorization": f"Bearer {MASTER}"}


@pytest.fixture(scope="module", params=["api_key", "iam"])
def gateway(request, sim, tmp_path_factory):
    creds = sim.api_key_credentials() if request.param == "api_key" else {**sim.credentials(), "oci_api_mode": "openai"}
    config = {
        "model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **sim.credentials()}},
                       {"model_name": "gpt", "litellm_params": {"model": "oci/xai.grok-3", **creds}}],
        "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path_factory.mktemp('files') / 'f.db'}",
                             "file_storage_quota_mb": 1},
    }  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        yield server


def _team_key(gateway, **fields) -> dict:
    team = httpx.post(f"{gateway.base_url}/team/new", headers=ADMIN, json={}, timeout=30).json()["team_id"]
    return httpx.post(f"{gateway.base_url}/key/generate", headers=ADMIN, json={"team_id": team, **fields}, timeout=30).json()


def _client(gateway, key: str):
    return openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=key, max_retries=0, _strict_response_validation=True)


def test_each_team_sees_only_its_own_files_and_nothing_reaches_oci_for_anothers(gateway, sim):
    a, b = _team_key(gateway), _team_key(gateway)
    with _client(gateway, a["key"]) as oa, _client(gateway, b["key"]) as ob, _client(gateway, MASTER) as om:
        mine = oa.files.create(file=("ana.txt", b"Ana likes Rust."), purpose="assistants")
        theirs = ob.files.create(file=("bob.txt", b"Bob likes Go."), purpose="assistants")
        assert [f.id for f in oa.files.list()] == [mine.id] and [f.id for f in ob.files.list()] == [theirs.id]
        assert oa.files.retrieve(mine.id).filename == "ana.txt" and oa.files.content(mine.id).read() == b"Ana likes Rust."
        before = len(sim.requests)
        for attempt in (lambda: oa.files.retrieve(theirs.id), lambda: oa.files.content(theirs.id).read(), lambda: oa.files.delete(theirs.id)):
            with pytest.raises(openai.NotFoundError):
                attempt()
        assert len(sim.requests) == before  # refused by the gateway: nothing reached OCI
        assert {mine.id, theirs.id} <= {f.id for f in om.files.list()}  # the master key sees every tenant's
        assert oa.files.delete(mine.id).deleted and oa.files.list().data == []
        assert ob.files.content(theirs.id).read() == b"Bob likes Go."  # untouched


def test_files_pass_the_gate(gateway):
    made = _team_key(gateway, rpm_limit=2)
    with _client(gateway, made["key"]) as client:
        made_file = client.files.create(file=("a.txt", b"hello"), purpose="assistants")
        client.files.retrieve(made_file.id)
        with pytest.raises(openai.RateLimitError):
            client.files.list()
    rows = httpx.get(f"{gateway.base_url}/spend/logs", headers=ADMIN, params={"api_key": made["token"]}, timeout=30).json()
    assert sorted(r["call_type"] for r in rows) == ["files.create", "files.retrieve"]
    restricted = _team_key(gateway, models=["llama"])  # the files deployment's model group is not this key's
    with _client(gateway, restricted["key"]) as client, pytest.raises(openai.PermissionDeniedError):
        client.files.create(file=("a.txt", b"x"), purpose="assistants")


def test_uploads_are_bounded_before_they_are_read(gateway, sim):
    made = _team_key(gateway)
    before = len(sim.requests)
    host, port = gateway.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as raw:  # 600 MB announced (over OpenAI's 512), none of it sent
        raw.sendall(f"POST /v1/files HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {made['key']}\r\n"
                    f"content-type: multipart/form-data; boundary=x\r\ncontent-length: {600 * 1024 * 1024}\r\n\r\n".encode())  # fmt: skip
        assert raw.recv(65536).split(b"\r\n", 1)[0] == b"HTTP/1.1 413 Request Entity Too Large"
    with _client(gateway, made["key"]) as client:
        client.files.create(file=("a.bin", b"x" * 700_000), purpose="assistants")
        with pytest.raises(openai.RateLimitError) as over:  # 1 MB a tenant: 700 KB held, 700 KB more refused
            client.files.create(file=("b.bin", b"y" * 700_000), purpose="assistants")
        assert "quota" in str(over.value)
    info = httpx.get(f"{gateway.base_url}/key/info", headers=ADMIN, params={"key": made["token"]}, timeout=30).json()["info"]
    team = httpx.get(f"{gateway.base_url}/team/info", headers=ADMIN, params={"team_id": info["team_id"]}, timeout=30).json()["team_info"]
    assert info["file_bytes_held"] == team["file_bytes_held"] == 700_000
    with _client(gateway, made["key"]) as client, pytest.raises(openai.BadRequestError):  # OCI's own rule, passed on: batch files are .jsonl
        client.files.create(file=("c.txt", b"z"), purpose="batch")
    assert len([r for r in sim.requests[before:] if r.path == "/openai/v1/files"]) == 2  # the first upload and the .txt batch


def test_two_teams_build_search_and_answer_from_their_own_vector_stores(gateway, sim):
    """The issue's proof: each team uploads a file, builds a store, searches it and answers with
    file_search; every cross-team access is a 404 that never reaches the simulator."""
    a, b = _team_key(gateway), _team_key(gateway)
    with _client(gateway, a["key"]) as oa, _client(gateway, b["key"]) as ob, _client(gateway, MASTER) as om:
        a_file = oa.files.create(file=("ledger.txt", b"The ledger port to Rust uses sqlx for the database."), purpose="assistants")
        b_file = ob.files.create(file=("menu.txt", b"The canteen serves lentil soup on Fridays."), purpose="assistants")
        a_store = oa.vector_stores.create(name="ledger", file_ids=[a_file.id])
        b_store = ob.vector_stores.create(name="canteen")
        ob.vector_stores.files.create(b_store.id, file_id=b_file.id)
        found = oa.vector_stores.search(a_store.id, query="which database library")
        assert found.data and found.data[0].filename == "ledger.txt"
        answer = oa.responses.create(model="gpt", input="Which database library does the ledger use?",
                                     tools=[{"type": "file_search", "vector_store_ids": [a_store.id]}])  # fmt: skip
        assert answer.output[0].type == "file_search_call" and "sqlx" in answer.output_text
        assert [s.id for s in oa.vector_stores.list()] == [a_store.id] and [s.id for s in ob.vector_stores.list()] == [b_store.id]
        assert {a_store.id, b_store.id} <= {s.id for s in om.vector_stores.list(limit=100)}
        before = len(sim.requests)
        for attempt in (lambda: ob.vector_stores.retrieve(a_store.id), lambda: ob.vector_stores.search(a_store.id, query="database"),
                        lambda: ob.vector_stores.files.list(a_store.id), lambda: ob.vector_stores.delete(a_store.id),
                        lambda: ob.vector_stores.files.create(b_store.id, file_id=a_file.id),
                        lambda: ob.vector_stores.create(name="theft", file_ids=[a_file.id]),
                        lambda: ob.vector_stores.file_batches.create(b_store.id, file_ids=[a_file.id]),
                        lambda: ob.responses.create(model="gpt", input="database?", tools=[{"type": "file_search", "vector_store_ids": [a_store.id]}]),
                        lambda: ob.responses.create(model="gpt", input=[{"role": "user", "content": [{"type": "input_file", "file_id": a_file.id}]}])):  # fmt: skip
            with pytest.raises(openai.NotFoundError):
                attempt()
        assert len(sim.requests) == before  # not one of them reached OCI
        assert oa.vector_stores.delete(a_store.id).deleted and oa.vector_stores.list().data == []


@pytest.mark.parametrize("tool", [{"type": "file_search", "vector_store_ids": ["vs_x"]}, {"type": "code_interpreter", "container": {"type": "auto"}},
                                  {"type": "mcp", "server_label": "s", "server_url": "http://127.0.0.1:1/mcp"}])  # fmt: skip
def test_a_hosted_tool_on_a_native_deployment_is_a_400_naming_it(gateway, tool):
    r = httpx.post(f"{gateway.base_url}/v1/responses", headers=ADMIN, json={"model": "llama", "input": "hi", "tools": [tool]}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools[0]" and tool["type"] in r.json()["error"]["message"]


def test_conversations_are_a_tenants_own_and_carry_file_search_answers(gateway, sim):
    """The issue's proof, end to end: a team answers with file_search in a conversation; another
    team cannot read, extend, continue or delete that conversation, and none of it reaches OCI."""
    a, b = _team_key(gateway), _team_key(gateway)
    with _client(gateway, a["key"]) as oa, _client(gateway, b["key"]) as ob:
        a_file = oa.files.create(file=("ledger.txt", b"The ledger port to Rust uses sqlx for the database."), purpose="assistants")
        a_store = oa.vector_stores.create(name="ledger", file_ids=[a_file.id])
        conversation = oa.conversations.create(items=[{"type": "message", "role": "user", "content": "We are porting the ledger."}])
        answer = oa.responses.create(model="gpt", input="Which database library does the ledger use?", conversation=conversation.id,
                                     tools=[{"type": "file_search", "vector_store_ids": [a_store.id]}])  # fmt: skip
        assert "sqlx" in answer.output_text
        kept = oa.conversations.items.list(conversation.id)
        assert len(kept.data) >= 3  # the first message, the question, the search and the answer
        before = len(sim.requests)
        for attempt in (lambda: ob.conversations.retrieve(conversation.id), lambda: ob.conversations.items.list(conversation.id),
                        lambda: ob.conversations.items.create(conversation.id, items=[{"type": "message", "role": "user", "content": "hi"}]),
                        lambda: ob.conversations.delete(conversation.id),
                        lambda: ob.responses.create(model="gpt", input="and then?", conversation=conversation.id),
                        lambda: ob.conversations.create(items=[{"type": "message", "role": "user", "content": [
                            {"type": "input_file", "file_id": a_file.id}]}])):  # fmt: skip
            with pytest.raises(openai.NotFoundError):
                attempt()
        assert len(sim.requests) == before
        assert oa.conversations.delete(conversation.id).deleted
        with pytest.raises(openai.NotFoundError):
            oa.conversations.retrieve(conversation.id)


def test_the_openai_agents_sdk_runs_an_agent_with_file_search_through_the_gateway(gateway):
    """The OpenAI Agents SDK (openai-agents), pointed at the gateway with a team's key, answers from
    the team's own vector store with its FileSearchTool."""
    import asyncio

    agents = pytest.importorskip("agents")
    agents.set_tracing_disabled(True)  # offline: no traces leave for OpenAI
    made = _team_key(gateway)
    with _client(gateway, made["key"]) as setup:
        uploaded = setup.files.create(file=("ledger.txt", b"The ledger port to Rust uses sqlx for the database."), purpose="assistants")
        store = setup.vector_stores.create(name="ledger", file_ids=[uploaded.id])

    async def run() -> str:
        client = openai.AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=made["key"], max_retries=0)
        agent = agents.Agent(name="ledger", instructions="Answer from the team's files.",
                             model=agents.OpenAIResponsesModel(model="gpt", openai_client=client),
                             tools=[agents.FileSearchTool(vector_store_ids=[store.id], max_num_results=3)])  # fmt: skip
        result = await agents.Runner.run(agent, "Which database library does the ledger use?")
        await client.close()
        return str(result.final_output)

    assert "sqlx" in asyncio.run(run())


def test_containers_and_code_interpreter_belong_to_their_tenant(gateway, sim):
    """A team's container (made by it, or by OCI for its code_interpreter with {"type": "auto"}) is
    its own: another team gets 404 for it everywhere, and nothing of that reaches OCI."""
    a, b = _team_key(gateway), _team_key(gateway)
    with _client(gateway, a["key"]) as oa, _client(gateway, b["key"]) as ob:
        data = oa.files.create(file=("data.csv", b"x,y\n1,2\n"), purpose="assistants")
        box = oa.containers.create(name="analysis", file_ids=[data.id])
        added = oa.containers.files.create(box.id, file=("notes.txt", b"hello"))
        assert oa.containers.files.content.retrieve(added.id, container_id=box.id).read() == b"hello"
        ran = oa.responses.create(model="gpt", input="sum the column", tools=[{"type": "code_interpreter", "container": {"type": "auto"}}])
        auto = next(item for item in ran.output if item.type == "code_interpreter_call").container_id
        again = oa.responses.create(model="gpt", input="and again", tools=[{"type": "code_interpreter", "container": auto}])
        assert any(item.type == "code_interpreter_call" for item in again.output)
        assert {c.id for c in oa.containers.list()} == {box.id, auto} and ob.containers.list().data == []
        before = len(sim.requests)
        for attempt in (lambda: ob.containers.retrieve(box.id), lambda: ob.containers.files.list(box.id),
                        lambda: ob.containers.files.create(box.id, file=("x.txt", b"x")), lambda: ob.containers.delete(auto),
                        lambda: ob.containers.create(name="theft", file_ids=[data.id]),
                        lambda: ob.responses.create(model="gpt", input="hi", tools=[{"type": "code_interpreter", "container": auto}])):  # fmt: skip
            with pytest.raises(openai.NotFoundError):
                attempt()
        assert len(sim.requests) == before
        oa.containers.delete(box.id)
        assert {c.id for c in oa.containers.list()} == {auto}


def _peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


@pytest.mark.parametrize("credential", ["api_key", "iam"])
def test_a_file_streams_through_both_ways_with_memory_bounded_by_a_buffer_not_the_file(credential, sim, tmp_path):
    """64 MB uploaded through a real ``ocilm serve``: the gateway's peak memory grows by a small part
    of the file (it held the whole body twice before), the simulator checks the IAM signature's
    digest of the streamed bytes; and the file's content passes back whole, in pieces, with the
    same bound."""
    import hashlib

    import yaml

    from tests.servers import serve

    creds = sim.api_key_credentials() if credential == "api_key" else {**sim.credentials(), "oci_api_mode": "openai"}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"model_list": [{"model_name": "gpt", "litellm_params": {"model": "oci/xai.grok-3", **creds}}],
                                    "general_settings": {"master_key": MASTER}}))  # fmt: skip
    proc, base = serve(str(path))
    try:
        with _client(type("G", (), {"base_url": base}), MASTER) as client:
            client.files.create(file=("warm.txt", b"x" * 200_000), purpose="assistants")  # every code path loaded once
        before = _peak_rss_kb(proc.pid)
        size = 64 * 1024 * 1024
        piece = hashlib.sha256(b"seed").digest() * 2048  # 64 KB
        head = (b'--b0undary\r\ncontent-disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
                b'--b0undary\r\ncontent-disposition: form-data; name="file"; filename="big.bin"\r\n'
                b"content-type: application/octet-stream\r\n\r\n")  # fmt: skip
        tail = b"\r\n--b0undary--\r\n"

        def body():
            yield head
            for _ in range(size // len(piece)):
                yield piece
            yield tail

        made = httpx.post(f"{base}/v1/files", content=body(), timeout=120,
                          headers={"authorization": f"Bearer {MASTER}", "content-type": "multipart/form-data; boundary=b0undary",
                                   "content-length": str(len(head) + size + len(tail))})  # fmt: skip
        assert made.status_code == 200, made.text
        grown_mb = (_peak_rss_kb(proc.pid) - before) / 1024
        assert made.json()["bytes"] == size and grown_mb < 24, f"the gateway's peak memory grew {grown_mb:.0f} MB for a 64 MB upload"
        before = _peak_rss_kb(proc.pid)
        read = hashlib.sha256()
        with httpx.stream("GET", f"{base}/v1/files/{made.json()['id']}/content", headers={"authorization": f"Bearer {MASTER}"}, timeout=120) as back:
            assert back.status_code == 200
            for chunk in back.iter_bytes():
                read.update(chunk)
        assert read.digest() == hashlib.sha256(piece * (size // len(piece))).digest()
        grown_mb = (_peak_rss_kb(proc.pid) - before) / 1024
        assert grown_mb < 24, f"the gateway's peak memory grew {grown_mb:.0f} MB passing on a 64 MB file's content"
    finally:
        proc.kill()
        proc.wait(10)


def test_a_streamed_reply_is_retried_and_its_errors_raised_before_any_byte_is_passed_on(sim):
    """``AsyncClient.openai_resource_stream`` (what passes a file's content on): a 503 first is
    retried, the reply's bytes come in pieces whole, and an error reply is the SDK's error."""
    import asyncio

    import ocilm
    from ocilm.testing import Fault

    creds = sim.api_key_credentials()

    async def run() -> tuple[bytes, str]:
        async with ocilm.AsyncClient(**creds) as client:
            made = (await client.openai_resource("POST", "files", b'--x\r\ncontent-disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
                                                 b'--x\r\ncontent-disposition: form-data; name="file"; filename="s.txt"\r\n\r\n' + b"s" * 100_000 +
                                                 b"\r\n--x--\r\n", "multipart/form-data; boundary=x")).json()  # fmt: skip
            sim.inject(Fault(status=503, times=1))
            stream = await client.openai_resource_stream("GET", f"files/{made['id']}/content", max_retries=1)
            try:
                got = b"".join([piece async for piece in stream.chunks()])
            finally:
                await stream.aclose()
            with pytest.raises(ocilm.NotFoundError):
                await client.openai_resource_stream("GET", "files/file-none/content")
            return got, stream.content_type

    before = len(sim.requests)
    got, content_type = asyncio.run(run())
    assert got == b"s" * 100_000 and content_type
    fetched = [r for r in sim.requests[before:] if r.path.endswith("/content") and "file-none" not in r.path]
    assert len(fetched) == 2  # the 503, then the retry
