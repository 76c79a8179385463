"""OCI's OpenAI-compatible API (``/openai/v1``) from the SDK, over real HTTP to the simulator:
both credentials (a Generative AI API key, and IAM signing with ``oci_api_mode="openai"``),
chat and Responses streamed and not, stored responses, background mode, and the refusals made
before any request. The simulator's replies are read with openai-python's types too."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

import ocilm
from ocilm import AuthenticationError, ConfigurationError, NotFoundError
from ocilm.testing import Simulator

openai = pytest.importorskip("openai")
HI = [{"role": "user", "content": "Hello there"}]
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}  # fmt: skip


@pytest.fixture(scope="module")
def sim():
    with Simulator() as server:
        yield server


@pytest.fixture(params=["api key", "signed"])
def creds(request, sim):
    """Both ways onto /openai/v1: a Generative AI API key, or IAM signing."""
    if request.param == "api key":
        return sim.api_key_credentials()
    return {**sim.credentials(), "oci_api_mode": "openai"}


def _last(sim, path: str):
    return next(r for r in reversed(sim.requests) if r.path.split("?")[0].endswith(path))


def test_chat_passes_through_with_either_credential(sim, creds):
    reply = ocilm.completion("oci/meta.llama-3.3-70b-instruct", HI, max_tokens=30, **creds)
    assert reply.choices[0].message.content.startswith("Hello from meta.llama-3.3-70b-instruct") and reply.usage.total_tokens > 0
    openai.types.chat.ChatCompletion.model_validate(dict(reply))
    sent = _last(sim, "/openai/v1/chat/completions")
    assert sent.json == {"model": "meta.llama-3.3-70b-instruct", "messages": HI, "max_tokens": 30}  # untranslated
    assert "zstd" not in sent.headers.get("accept-encoding", "")
    if "oci_api_key" in creds:
        assert sent.headers["authorization"] == f"Bearer {creds['oci_api_key']}" and "opc-compartment-id" not in sent.headers
    else:
        assert sent.headers["authorization"].startswith("Signature ") and sent.headers["opc-compartment-id"] == creds["oci_compartment_id"]


def test_chat_streams_and_calls_tools(sim, creds):
    chunks = list(ocilm.completion("oci/xai.grok-4", [{"role": "user", "content": "What is the weather in Paris?"}], tools=[WEATHER],
                                   stream=True, stream_options={"include_usage": True}, **creds))  # fmt: skip
    calls = [tc for c in chunks for choice in c.choices for tc in (choice.delta.tool_calls or [])]
    assert calls and calls[0].function.name == "get_weather" and chunks[-1].usage.completion_tokens > 0
    for chunk in chunks:
        openai.types.chat.ChatCompletionChunk.model_validate(dict(chunk))


def test_responses_are_stored_chained_listed_and_deleted(sim, creds):
    first = ocilm.responses("oci/xai.grok-4", "My name is Ana.", **creds)
    assert first.status == "completed" and first.output_text and first.usage.input_tokens > 0
    openai.types.responses.Response.model_validate(dict(first))
    second = ocilm.responses("oci/xai.grok-4", "What is my name?", previous_response_id=first.id, **creds)
    assert second.status == "completed" and second.usage.input_tokens > first.usage.input_tokens  # the stored conversation came along
    assert ocilm.get_responses(first.id, **creds).id == first.id
    items = ocilm.list_input_items(first.id, **creds)
    assert items.object == "list" and items.data[0]["content"][0]["text"] == "My name is Ana."
    assert ocilm.delete_responses(first.id, **creds).deleted is True
    with pytest.raises(NotFoundError):
        ocilm.get_responses(first.id, **creds)


def test_a_response_streams_typed_events(sim, creds):
    events = list(ocilm.responses("oci/openai.gpt-oss-120b", "Say hi", stream=True, **creds))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert any(e.type == "response.output_text.delta" for e in events)
    final = events[-1].response
    assert final.output_text and ocilm.get_responses(final.id, **creds).status == "completed"  # stored as it streamed


def test_a_background_response_completes_shortly_after(sim, creds):
    queued = ocilm.responses("oci/xai.grok-4", "Take your time", background=True, **creds)
    assert queued.status == "queued"
    deadline = time.monotonic() + 10
    while (polled := ocilm.get_responses(queued.id, **creds)).status != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert polled.output_text


def test_stored_responses_are_isolated_between_keys(sim):
    mine, theirs = sim.api_key_credentials(), sim.api_key_credentials()
    made = ocilm.responses("oci/xai.grok-4", "secret", **mine)
    with pytest.raises(NotFoundError):
        ocilm.get_responses(made.id, **theirs)
    with pytest.raises(NotFoundError):
        ocilm.responses("oci/xai.grok-4", "what was it?", previous_response_id=made.id, **theirs)


def test_async_twins(sim, creds):
    async def go():
        async with ocilm.AsyncClient(**creds) as client:
            chat = await client.completion("oci/meta.llama-3.3-70b-instruct", HI)
            made = await client.responses("oci/xai.grok-4", "hi")
            got = await client.get_responses(made.id)
            stream = await client.responses("oci/xai.grok-4", "hi", stream=True)
            kinds = [event.type async for event in stream]
            return chat, made, got, kinds

    chat, made, got, kinds = asyncio.run(go())
    assert chat.choices[0].message.content and got.id == made.id and kinds[-1] == "response.completed"


# ---------------------------------------------------------------- refusals and secrets


def test_a_key_without_a_policy_is_a_401_that_says_why_without_the_key(sim):
    secret = "sk-nopolicy" + "x" * 40
    sim.register_api_key(secret, policy=False)
    with pytest.raises(AuthenticationError) as refused:
        ocilm.completion("oci/meta.llama-3.3-70b-instruct", HI, oci_api_key=secret, api_base=sim.base_url, max_retries=3)
    assert secret not in str(refused.value) and secret not in repr(refused.value)
    assert "policy" in refused.value.message  # says why a fresh key may be refused
    assert sum(r.path.endswith("chat/completions") and r.headers.get("authorization", "").endswith(secret) for r in sim.requests) == 1  # not retried


@pytest.mark.parametrize(("call", "param"), [
    (lambda c: ocilm.embedding("oci/cohere.embed-v4.0", ["hi"], **c), "oci_api_mode"),
    (lambda c: ocilm.rerank("oci/cohere.rerank-v3.5", "q", ["a"], **c), "oci_api_mode"),
    (lambda c: ocilm.completion("oci/cohere.command-a-03-2025", HI, **c), "model"),
    (lambda c: ocilm.completion("oci/meta.llama-3.3-70b-instruct", HI, oci_api_mode="native", **c), "oci_api_mode"),
])  # fmt: skip
def test_what_the_api_key_cannot_reach_is_a_local_error(sim, call, param):
    creds = sim.api_key_credentials()
    before = len(sim.requests)
    with pytest.raises(ConfigurationError) as refused:
        call(creds)
    assert refused.value.param == param and len(sim.requests) == before  # before any request
    assert creds["oci_api_key"] not in str(refused.value)


def test_native_mode_responses_are_translated_and_stateless(sim):
    creds = sim.credentials()
    reply = ocilm.responses("oci/meta.llama-3.3-70b-instruct", "Hello there", **creds)
    assert reply.status == "completed" and reply.output_text.startswith("Hello from meta.llama-3.3-70b-instruct")
    assert _last(sim, "/actions/chat").json["chatRequest"]["apiFormat"] == "GENERIC"
    events = list(ocilm.responses("oci/meta.llama-3.3-70b-instruct", "Hello there", stream=True, **creds))
    assert events[-1].type == "response.completed" and events[-1].response.usage.output_tokens > 0
    with pytest.raises(ocilm.BadRequestError, match="previous_response_id"):
        ocilm.responses("oci/meta.llama-3.3-70b-instruct", "again", previous_response_id="resp_x", **creds)


def test_the_key_never_shows(sim):
    creds = sim.api_key_credentials()
    client = ocilm.Client(**creds)
    assert creds["oci_api_key"] not in repr(client)
    settings = client._settings.resolve(creds)
    assert creds["oci_api_key"] not in repr(settings) and creds["oci_api_key"] not in json.dumps(repr(settings.signer))


def test_an_explicit_key_wins_over_the_environment(sim, monkeypatch):
    monkeypatch.setenv("OCI_GENAI_API_KEY", "sk-from-env-not-registered")
    creds = sim.api_key_credentials()
    assert ocilm.completion("oci/meta.llama-3.3-70b-instruct", HI, **creds).choices[0].message.content
    with pytest.raises(AuthenticationError):
        ocilm.completion("oci/meta.llama-3.3-70b-instruct", HI, api_base=sim.base_url)


def test_errors_in_openais_shape_are_read_too():
    from ocilm._errors import error_from_response

    err = error_from_response(400, b'{"error": {"message": "bad input", "type": "invalid_request_error", "code": "invalid_value"}}', "rid")
    assert err.message == "bad input" and err.code == "invalid_value" and err.opc_request_id == "rid"


def test_xais_hosted_web_search_runs_on_ocis_side(sim):
    reply = ocilm.responses("oci/xai.grok-4", "latest news on OCI", tools=[{"type": "web_search"}], **sim.api_key_credentials())
    assert reply.output[0].type == "web_search_call" and reply.output_text
    openai.types.responses.Response.model_validate(dict(reply))


def test_a_responses_only_model_answers_responses_and_refuses_chat(sim):
    creds = sim.api_key_credentials()
    assert ocilm.responses("oci/openai.gpt-5.5-pro", "hi", **creds).output_text
    with pytest.raises(ocilm.BadRequestError, match="only supported on the Responses API"):
        ocilm.completion("oci/openai.gpt-5.5-pro", HI, **creds)
