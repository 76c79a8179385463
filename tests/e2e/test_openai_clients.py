"""`ocilm.OpenAI` and `ocilm.AsyncOpenAI`: openai-python's clients on OCI's `/openai/v1` with ocilm's
settings, against the simulator, with a Generative AI API key and with IAM signing of the exact
bytes sent (the simulator checks every signature)."""

from __future__ import annotations

import asyncio

import pytest

import ocilm

openai = pytest.importorskip("openai")


@pytest.fixture(params=["api_key", "iam"])
def settings(request, oci_simulator):
    if request.param == "api_key":
        return oci_simulator.api_key_credentials()
    return {**oci_simulator.credentials(), "oci_project": "ocid1.generativeaiproject.oc1..p1"}


def test_the_clients_resources_reach_oci(settings, oci_simulator):
    with ocilm.OpenAI(**settings, max_retries=0) as client:
        chat = client.chat.completions.create(model="xai.grok-3", messages=[{"role": "user", "content": "hi"}])
        made = client.responses.create(model="xai.grok-3", input="hello")
        assert client.responses.retrieve(made.id).id == made.id
        with client.responses.stream(model="xai.grok-3", input="streamed") as stream:
            final = stream.get_final_response()
    assert chat.choices[0].message.content and made.output_text and final.output_text
    sent = [r for r in oci_simulator.requests if r.path.startswith("/openai/v1/")]
    assert len(sent) == 4 and all(r.status == 200 for r in sent)
    auth = sent[0].headers["authorization"]
    if "oci_api_key" in settings:
        assert auth == f"Bearer {settings['oci_api_key']}"
    else:  # signed, with the project OCI needs, and never openai-python's placeholder key
        assert auth.startswith("Signature ") and all(r.headers["openai-project"] == settings["oci_project"] for r in sent)
    assert "ocilm-signs-each-request" not in str([r.headers for r in sent])


def test_the_async_client(settings):
    async def go() -> str:
        async with ocilm.AsyncOpenAI(**settings, max_retries=0) as client:
            reply = await client.responses.create(model="xai.grok-3", input="hello async")
            return reply.output_text

    assert "hello async" in asyncio.run(go())


def test_a_wrong_key_is_openais_authentication_error_and_never_shown(oci_simulator):
    with ocilm.OpenAI(oci_api_key="sk-wrong-secret-123", oci_region="us-chicago-1", api_base=oci_simulator.base_url, max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError) as refused:
            client.chat.completions.create(model="xai.grok-3", messages=[{"role": "user", "content": "hi"}])
        assert "sk-wrong-secret-123" not in str(refused.value) and "sk-wrong-secret-123" not in repr(client._client.auth)


@pytest.mark.parametrize(("options", "param"), [({"base_url": "http://elsewhere"}, "base_url"), ({"api_key": "sk-x"}, "api_key"),
                                                ({"oci_api_mode": "native"}, "oci_api_mode"), ({"oci_regoin": "x"}, "oci_regoin")])  # fmt: skip
def test_settings_ocilm_owns_are_refused_naming_them(oci_simulator, options, param):
    with pytest.raises(ocilm.ConfigurationError) as refused:
        ocilm.OpenAI(**{**oci_simulator.api_key_credentials(), **options})
    assert refused.value.param == param


def test_the_agent_platform_through_ocilm_openai(settings):
    """Files, vector stores (search and file_search), conversations and containers, through
    ocilm.OpenAI against the simulator: every multipart and JSON body signed as sent."""
    with ocilm.OpenAI(**settings, max_retries=0) as client:
        uploaded = client.files.create(file=("ledger.txt", b"The ledger port to Rust uses sqlx for the database."), purpose="assistants")
        store = client.vector_stores.create(name="ledger", file_ids=[uploaded.id])
        assert client.vector_stores.search(store.id, query="database library").data[0].filename == "ledger.txt"
        conversation = client.conversations.create(items=[{"type": "message", "role": "user", "content": "We port the ledger."}])
        answer = client.responses.create(model="xai.grok-3", input="Which database library?", conversation=conversation.id,
                                         tools=[{"type": "file_search", "vector_store_ids": [store.id]}])  # fmt: skip
        assert "sqlx" in answer.output_text and len(client.conversations.items.list(conversation.id).data) >= 3
        box = client.containers.create(name="analysis", file_ids=[uploaded.id])
        assert client.containers.files.list(box.id).data[0].path == "/mnt/data/ledger.txt"
        assert client.files.content(uploaded.id).read().startswith(b"The ledger")
        client.containers.delete(box.id)
        assert client.vector_stores.delete(store.id).deleted and client.conversations.delete(conversation.id).deleted
        assert client.files.delete(uploaded.id).deleted
