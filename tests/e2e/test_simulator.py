"""The simulator behaves like OCI: signatures, schemas, service rules, streams, faults."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from ocilm.auth import KeySigner, load_private_key
from ocilm.testing import Fault, Simulator

from ..conftest import FIXTURES, TENANCY, TEST_FINGERPRINT, TEST_KEY_PEM, USER, load_vector

KEY_ID = f"{TENANCY}/{USER}/{TEST_FINGERPRINT}"
COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaatestcompartment"


def chat_body(model="meta.llama-3.3-70b-instruct", **request):
    fmt = "COHERE" if model.startswith("cohere.") else "GENERIC"
    base = {"apiFormat": fmt, "maxTokens": 200}
    if fmt == "GENERIC":
        base["messages"] = [{"role": "USER", "content": [{"type": "TEXT", "text": "Hello there"}]}]
    else:
        base["message"] = "Hello there"
    base.update(request)
    return {"compartmentId": COMPARTMENT, "servingMode": {"servingType": "ON_DEMAND", "modelId": model}, "chatRequest": base}


def post(sim, action, payload, *, sign=True, headers=None, mutate=None, key=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = httpx.Request("POST", f"{sim.base_url}/20231130/actions/{action}", content=body,
                            headers={"content-type": "application/json", **(headers or {})})
    if sign:
        KeySigner(KEY_ID, key or load_private_key(TEST_KEY_PEM)).sign(request)
    if mutate:
        mutate(request)
    with httpx.Client() as client:
        return client.send(request)


@pytest.fixture
def sim(oci_simulator, fixture_key_registered):
    return oci_simulator


# ---------------------------------------------------------------- signatures


def test_valid_signature_answers(sim):
    r = post(sim, "chat", chat_body())
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["chatResponse"]["choices"][0]["message"]["content"][0]["text"].endswith("You said: Hello there")
    assert len(r.headers["opc-request-id"].split("/")) == 3


@pytest.mark.parametrize(
    ("case", "mutate", "sign", "why"),
    [
        ("unsigned", None, False, "no Authorization"),
        ("body-tampered", lambda r: setattr(r, "stream", httpx.ByteStream(r.content.replace(b"Hello", b"Jello"))), True, "x-content-sha256"),
        ("hash-header-tampered", lambda r: r.headers.__setitem__("x-content-sha256", "AAAA"), True, "x-content-sha256"),
        ("signature-garbled", lambda r: r.headers.__setitem__("authorization", r.headers["authorization"].replace('signature="', 'signature="AB')), True, "signature"),
        ("old-date", lambda r: r.headers.__setitem__("date", "Mon, 02 Jun 2025 12:00:00 GMT"), True, "signature|5 minutes"),
        ("bearer", lambda r: r.headers.__setitem__("authorization", "Bearer abc"), True, "Signature"),
    ],
)
def test_bad_signatures_are_401(sim, case, mutate, sign, why):
    r = post(sim, "chat", chat_body(), sign=sign, mutate=mutate)
    assert r.status_code == 401
    assert r.json()["code"] == "NotAuthenticated"
    import re

    assert re.search(why, r.json()["message"]), r.json()["message"]


def test_required_header_left_unsigned_is_401(sim):
    key = load_private_key(TEST_KEY_PEM)
    request = httpx.Request("POST", f"{sim.base_url}/20231130/actions/chat", content=json.dumps(chat_body()).encode(),
                            headers={"content-type": "application/json"})
    # Sign as if it were a GET: only date (request-target) host.
    from ocilm.auth import authorization_header, signing_string
    from ocilm.auth._signers import fill_signed_headers, rsa_sign

    names = ("date", "(request-target)", "host")
    fill_signed_headers(request, (*names, "content-length"))
    text = signing_string("POST", "/20231130/actions/chat", request.headers, names)
    request.headers["authorization"] = authorization_header(KEY_ID, names, rsa_sign(key, text))
    with httpx.Client() as client:
        r = client.send(request)
    assert r.status_code == 401
    assert "content-length, content-type, x-content-sha256" in r.json()["message"]


def test_stale_date_with_valid_signature_is_401(sim):
    stale = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() - 600))
    r = post(sim, "chat", chat_body(), headers={"date": stale})
    assert r.status_code == 401 and "5 minutes" in r.json()["message"]


def test_unknown_key_is_401(sim):
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    r = post(sim, "chat", chat_body(), key=other)
    assert r.status_code == 401  # same keyId, different key: the signature does not verify


def test_session_token_key_ids(sim):
    key = load_private_key(TEST_KEY_PEM)
    sim.register_session_token("SIM.SESSION.TOKEN", key.public_key())
    request = httpx.Request("POST", f"{sim.base_url}/20231130/actions/chat", content=json.dumps(chat_body()).encode(),
                            headers={"content-type": "application/json"})
    KeySigner("ST$SIM.SESSION.TOKEN", key).sign(request)
    with httpx.Client() as client:
        assert client.send(request).status_code == 200


def test_fixture_vector_verifies_byte_for_byte():
    """The SDK-made localhost vector, replayed exactly, passes the simulator's verifier."""
    v = load_vector("vector_localhost.json")
    fixed = 1748865600.0  # the vector's date
    with Simulator(max_clock_skew=300) as sim:
        sim.app.clock = lambda: fixed
        sim.register_key(v["key_id"], load_private_key(TEST_KEY_PEM).public_key())
        body = (FIXTURES / v["body_file"]).read_bytes()
        headers = {k: val for k, val in v["output_headers"].items() if k != "content-length"}
        with httpx.Client() as client:
            r = client.post(f"{sim.base_url}{v['path_url']}", content=body, headers=headers)
        assert r.status_code == 200, r.text
        assert len(r.json()["embeddings"][0]) == 1024


# ---------------------------------------------------------------- bodies and rules


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (chat_body(bogus=1), r"\$\.chatRequest\.bogus: unknown field"),
        (chat_body(temperature="hot"), r"temperature: expected number, got string"),
        (chat_body(reasoningEffort="EXTREME"), r"reasoningEffort: 'EXTREME' is not one of"),
        ({"servingMode": {"servingType": "ON_DEMAND", "modelId": "x"}, "chatRequest": {"apiFormat": "GENERIC"}}, r"\$\.compartmentId: missing required field"),
        # [Required] in the SDK's CohereMessageV2: an assistant turn that only calls tools still needs content
        ({"compartmentId": "c", "servingMode": {"servingType": "ON_DEMAND", "modelId": "cohere.command-a-03-2025"},
          "chatRequest": {"apiFormat": "COHEREV2", "messages": [{"role": "ASSISTANT", "toolCalls": []}]}},
         r"messages\[0\]\.content: missing required field"),
        (chat_body(messages=[{"role": "ASSISTANT", "toolCalls": [{"type": "FUNCTION", "name": "f", "arguments": "{}"}]}]),
         r"toolCalls\[0\]\.id: missing required field"),
        ({"compartmentId": "c", "servingMode": {"servingType": "ON_DEMAND"}, "chatRequest": {"apiFormat": "GENERIC"}},
         r"servingMode\.modelId: missing required field"),
        (chat_body(messages=[{"role": "USER", "content": [{"type": "HOLOGRAM"}]}]), r"content\[0\]\.type: 'HOLOGRAM' is not one of"),
        (chat_body(messages=[{"role": "ROBOT", "content": []}]), r"role: 'ROBOT' is not one of"),
        (chat_body(toolChoice="auto"), r"toolChoice: expected object, got string"),
        (chat_body(maxTokens=None), r"maxTokens: null is not allowed"),
    ],
)
def test_schema_violations_are_400(sim, payload, message):
    r = post(sim, "chat", payload)
    assert r.status_code == 400
    import re

    assert re.search(message, r.json()["message"]), r.json()["message"]


def test_invalid_json_is_400(sim):
    r = post(sim, "chat", b"{not json")
    assert r.status_code == 400 and r.json()["code"] == "CannotParseRequest"


def test_service_rules(sim):
    mismatch = chat_body("cohere.command-latest")
    mismatch["chatRequest"] = chat_body()["chatRequest"]
    r = post(sim, "chat", mismatch)
    assert r.status_code == 400 and "Chat request type does not match serving model" in r.json()["message"]

    cohere = chat_body("cohere.command-latest", toolResults=[{"call": {"name": "f", "parameters": {}}, "outputs": [{"a": 1}]}])
    r = post(sim, "chat", cohere)
    assert r.status_code == 400 and "message must be empty" in r.json()["message"]
    cohere["chatRequest"]["message"] = ""
    assert post(sim, "chat", cohere).status_code == 200

    history = chat_body("cohere.command-latest", chatHistory=[{"role": "TOOL", "toolResults": [{"call": {"name": "f", "parameters": {}}, "outputs": []}]}])
    r = post(sim, "chat", history)
    assert r.status_code == 400 and "last chatHistory entry holds tool results" in r.json()["message"]

    r = post(sim, "chat", chat_body("openai.gpt-4.1"))
    assert r.status_code == 400 and "maxCompletionTokens" in r.json()["message"]
    body = chat_body("openai.gpt-4.1")
    body["chatRequest"]["maxCompletionTokens"] = body["chatRequest"].pop("maxTokens")
    assert post(sim, "chat", body).status_code == 200
    assert post(sim, "chat", chat_body("openai.gpt-oss-120b")).status_code == 200

    r = post(sim, "chat", chat_body("xai.grok-4", reasoningEffort="LOW"))
    assert r.status_code == 400 and "reasoningEffort" in r.json()["message"]
    assert post(sim, "chat", chat_body("xai.grok-3-mini", reasoningEffort="LOW")).status_code == 200

    tool_mismatch = chat_body(messages=[
        {"role": "USER", "content": [{"type": "TEXT", "text": "hi"}]},
        {"role": "ASSISTANT", "toolCalls": [{"type": "FUNCTION", "id": "call_1", "name": "f", "arguments": "{}"}]},
        {"role": "TOOL", "toolCallId": "call_2", "content": [{"type": "TEXT", "text": "x"}]},
    ])
    r = post(sim, "chat", tool_mismatch)
    assert r.status_code == 400 and "'toolCallId' of 'call_2' not found" in r.json()["message"]


def test_unknown_model_and_endpoint_are_404(sim):
    r = post(sim, "chat", chat_body("meta.llama-9"))
    assert r.status_code == 404 and "meta.llama-9" in r.json()["message"]
    body = chat_body()
    body["servingMode"] = {"servingType": "DEDICATED", "endpointId": "ocid1.generativeaiendpoint.oc1..nope"}
    assert post(sim, "chat", body).status_code == 404
    sim.add_endpoint("ocid1.generativeaiendpoint.oc1..mine", "meta.llama-3.3-70b-instruct")
    body["servingMode"]["endpointId"] = "ocid1.generativeaiendpoint.oc1..mine"
    assert post(sim, "chat", body).status_code == 200
    assert post(sim, "launch", chat_body()).status_code == 404


def test_truncation_and_server_default_limit(sim):
    body = chat_body(maxTokens=3)
    choice = post(sim, "chat", body).json()["chatResponse"]["choices"][0]
    assert choice["finishReason"] == "length"
    assert choice["message"]["content"][0]["text"] == "Hello from meta.llama-3.3-70b-instruct! "
    del body["chatRequest"]["maxTokens"]
    body["chatRequest"]["messages"][0]["content"][0]["text"] = "word " * 40
    assert post(sim, "chat", body).json()["chatResponse"]["choices"][0]["finishReason"] == "length"  # ~20-token default


def test_num_generations_and_usage_details(sim):
    body = chat_body("openai.gpt-oss-120b", numGenerations=3,
                     messages=[{"role": "SYSTEM", "content": [{"type": "TEXT", "text": "Be brief please"}]},
                               {"role": "USER", "content": [{"type": "TEXT", "text": "Hi"}]}])
    result = post(sim, "chat", body).json()["chatResponse"]
    assert [c["index"] for c in result["choices"]] == [0, 1, 2]
    assert result["usage"]["promptTokensDetails"]["cachedTokens"] == 3
    assert result["usage"]["completionTokensDetails"]["reasoningTokens"] > 0


def test_generic_stream_shape(sim):
    r = post(sim, "chat", chat_body(isStream=True, streamOptions={"isIncludeUsage": True}))
    assert r.headers["content-type"] == "text/event-stream"
    events = [line[6:] for line in r.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    parsed = [json.loads(e) for e in events[:-1]]
    assert any("pad" in e for e in parsed)
    assert "usage" in parsed[-1] and "finishReason" in parsed[-2]
    text = "".join(e["message"]["content"][0]["text"] for e in parsed if "message" in e)
    assert text.endswith("You said: Hello there")


def test_cohere_stream_restates_text_and_has_no_done(sim):
    r = post(sim, "chat", chat_body("cohere.command-latest", isStream=True))
    events = [json.loads(line[6:]) for line in r.text.split("\n\n") if line]
    deltas = "".join(e["text"] for e in events if "finishReason" not in e)
    terminal = events[-1]
    assert terminal["finishReason"] == "COMPLETE" and terminal["text"] == deltas
    assert "usage" in terminal and terminal["chatHistory"][-1]["role"] == "CHATBOT"


@pytest.mark.parametrize("vendor_model", ["openai.gpt-4.1", "xai.grok-3", "google.gemini-2.5-flash"])
def test_streamed_tool_call_patterns(sim, vendor_model):
    tools = [{"type": "FUNCTION", "name": "get_weather", "description": "d",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    body = chat_body(vendor_model, isStream=True, tools=tools,
                     messages=[{"role": "USER", "content": [{"type": "TEXT", "text": "Weather in Paris?"}]}])
    if vendor_model.startswith("openai"):
        body["chatRequest"]["maxCompletionTokens"] = body["chatRequest"].pop("maxTokens")
    r = post(sim, "chat", body)
    events = [json.loads(line[6:]) for line in r.text.split("\n\n") if line and line != "data: [DONE]"]
    calls = [tc for e in events for tc in (e.get("message") or {}).get("toolCalls", [])]
    if vendor_model.startswith("openai"):
        assert calls[0]["id"] and all("id" not in c for c in calls[1:])
    elif vendor_model.startswith("xai"):
        assert sum(1 for c in calls if "name" in c) == 2  # the opening chunk is re-sent
    else:
        assert len(calls) == 1 and "id" not in calls[0]
    assert json.loads("".join(c.get("arguments", "") for c in calls)) == {"city": "Paris"}


def test_embeddings_rules(sim):
    base = {"servingMode": {"servingType": "ON_DEMAND", "modelId": "cohere.embed-v4.0"}, "compartmentId": COMPARTMENT}
    r = post(sim, "embedText", {**base, "inputs": ["a", "b"], "outputDimensions": 256})
    assert r.status_code == 200 and [len(v) for v in r.json()["embeddings"]] == [256, 256]
    r = post(sim, "embedText", {**base, "inputs": ["a"] * 97})
    assert r.status_code == 400 and "at most 96" in r.json()["message"]
    r = post(sim, "embedText", {**base, "inputs": ["a"], "outputDimensions": 300})
    assert r.status_code == 400 and "256, 512, 1024, 1536" in r.json()["message"]
    v3 = {**base, "servingMode": {"servingType": "ON_DEMAND", "modelId": "cohere.embed-english-light-v3.0"}}
    assert len(post(sim, "embedText", {**v3, "inputs": ["a"]}).json()["embeddings"][0]) == 384
    assert post(sim, "embedText", {**v3, "inputs": ["data:image/png;base64,AA=="], "inputType": "IMAGE"}).status_code == 400


def test_rerank(sim):
    body = {"input": "cats", "compartmentId": COMPARTMENT, "servingMode": {"servingType": "ON_DEMAND", "modelId": "cohere.rerank-v3.5"},
            "documents": ["dogs", "cats are great", "fish"], "topN": 2, "isEcho": True}
    ranks = post(sim, "rerankText", body).json()["documentRanks"]
    assert [r["index"] for r in ranks] == [1, 0]
    assert ranks[0]["document"] == {"text": "cats are great"}


# ---------------------------------------------------------------- faults


def test_fault_429_with_retry_after_and_per_call_counting(sim):
    fault = Fault(status=429, retry_after="3", times=2).header()
    headers = {"x-ocilm-sim-fault": fault, "opc-retry-token": "call-one"}
    statuses = [post(sim, "chat", chat_body(), headers=headers) for _ in range(3)]
    assert [r.status_code for r in statuses] == [429, 429, 200]
    assert statuses[0].headers["retry-after"] == "3"
    assert statuses[0].json()["code"] == "TooManyRequests"
    other_call = post(sim, "chat", chat_body(), headers={"x-ocilm-sim-fault": fault, "opc-retry-token": "call-two"})
    assert other_call.status_code == 429


def test_queued_faults(sim):
    sim.inject(Fault(status=503, times=1))
    assert post(sim, "chat", chat_body()).status_code == 503
    assert post(sim, "chat", chat_body()).status_code == 200
    sim.inject(Fault(malformed=True))
    r = post(sim, "chat", chat_body())
    assert r.status_code == 200
    with pytest.raises(ValueError):
        json.loads(r.text)


def test_fault_stream_cut_and_slow_first_byte(sim):
    with pytest.raises(httpx.RemoteProtocolError):
        post(sim, "chat", chat_body(isStream=True), headers={"x-ocilm-sim-fault": "cut_after=2"})
    start = time.monotonic()
    assert post(sim, "chat", chat_body(), headers={"x-ocilm-sim-fault": "delay=0.3"}).status_code == 200
    assert time.monotonic() - start >= 0.3


# ---------------------------------------------------------------- the official OCI SDK as a peer


@pytest.fixture
def sdk_client(sim, tmp_path):
    oci = pytest.importorskip("oci")
    config = {"user": USER, "fingerprint": TEST_FINGERPRINT, "tenancy": TENANCY, "region": "us-chicago-1",
              "key_file": str(FIXTURES / "test_key.pem")}
    return oci.generative_ai_inference.GenerativeAiInferenceClient(
        config, service_endpoint=sim.base_url, retry_strategy=oci.retry.NoneRetryStrategy()
    )


def test_sdk_chat_generic_and_cohere(sdk_client, sim):
    from oci.generative_ai_inference import models as m

    generic = m.ChatDetails(
        compartment_id=COMPARTMENT,
        serving_mode=m.OnDemandServingMode(model_id="meta.llama-3.3-70b-instruct"),
        chat_request=m.GenericChatRequest(
            messages=[m.UserMessage(content=[m.TextContent(text="Weather in Paris?")])], max_tokens=100, temperature=0.0,
            tools=[m.FunctionDefinition(name="get_weather", description="d",
                                        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})],
            response_format=m.TextResponseFormat(), tool_choice=m.ToolChoiceAuto(), num_generations=1, top_k=-1, top_p=0.9,
        ),
    )
    result = sdk_client.chat(generic).data
    assert isinstance(result, m.ChatResult)
    assert isinstance(result.chat_response, m.GenericChatResponse)
    call = result.chat_response.choices[0].message.tool_calls[0]
    assert isinstance(call, m.FunctionCall) and json.loads(call.arguments) == {"city": "Paris"}
    assert result.chat_response.usage.total_tokens > 0

    cohere = m.ChatDetails(
        compartment_id=COMPARTMENT,
        serving_mode=m.OnDemandServingMode(model_id="cohere.command-latest"),
        chat_request=m.CohereChatRequest(
            message="Hi there", max_tokens=50, preamble_override="Be brief.",
            chat_history=[m.CohereUserMessage(message="Earlier"), m.CohereChatBotMessage(message="Ok")],
            tools=[m.CohereTool(name="lookup", description="d", parameter_definitions={"q": m.CohereParameterDefinition(type="str", is_required=True)})],
        ),
    )
    result = sdk_client.chat(cohere).data
    assert isinstance(result.chat_response, m.CohereChatResponse)
    assert result.chat_response.text.endswith("You said: Hi there")
    assert result.chat_response.finish_reason == "COMPLETE"


def test_sdk_chat_stream(sdk_client):
    from oci.generative_ai_inference import models as m

    details = m.ChatDetails(
        compartment_id=COMPARTMENT,
        serving_mode=m.OnDemandServingMode(model_id="meta.llama-3.3-70b-instruct"),
        chat_request=m.GenericChatRequest(
            messages=[m.UserMessage(content=[m.TextContent(text="Stream please")])], max_tokens=100,
            is_stream=True, stream_options=m.StreamOptions(is_include_usage=True),
        ),
    )
    events = [e.data for e in sdk_client.chat(details).data.events()]
    assert events[-1] == "[DONE]"
    text = "".join(json.loads(e)["message"]["content"][0]["text"] for e in events[:-1] if "message" in json.loads(e))
    assert text.endswith("You said: Stream please")


def test_sdk_dedicated_embed_and_rerank(sdk_client):
    from oci.generative_ai_inference import models as m

    embed = sdk_client.embed_text(m.EmbedTextDetails(
        inputs=["hello", "world"], compartment_id=COMPARTMENT, truncate="END", input_type="SEARCH_QUERY",
        serving_mode=m.DedicatedServingMode(endpoint_id="ocid1.generativeaiendpoint.oc1.us-chicago-1.simembed"),
    )).data
    assert isinstance(embed, m.EmbedTextResult) and len(embed.embeddings) == 2 and len(embed.embeddings[0]) == 1024
    ranks = sdk_client.rerank_text(m.RerankTextDetails(
        input="cats", compartment_id=COMPARTMENT, documents=["dogs", "cats"], top_n=1,
        serving_mode=m.OnDemandServingMode(model_id="cohere.rerank-v3.5"),
    )).data
    assert isinstance(ranks, m.RerankTextResult) and ranks.document_ranks[0].index == 1


def test_sdk_error_parsing(sdk_client):
    import oci
    from oci.generative_ai_inference import models as m

    details = m.ChatDetails(compartment_id=COMPARTMENT, serving_mode=m.OnDemandServingMode(model_id="meta.nope"),
                            chat_request=m.GenericChatRequest(messages=[m.UserMessage(content=[m.TextContent(text="x")])]))
    with pytest.raises(oci.exceptions.ServiceError) as err:
        sdk_client.chat(details)
    assert err.value.status == 404 and err.value.request_id


def test_sdk_chat_cohere_v2(sdk_client):
    from oci.generative_ai_inference import models as m

    details = m.ChatDetails(
        compartment_id=COMPARTMENT,
        serving_mode=m.OnDemandServingMode(model_id="cohere.command-a-03-2025"),
        chat_request=m.CohereChatRequestV2(
            messages=[m.CohereSystemMessageV2(content=[m.CohereTextContentV2(text="Be brief.")]),
                      m.CohereUserMessageV2(content=[m.CohereTextContentV2(text="Hi v2")])],
            max_tokens=50, citation_options=m.CitationOptionsV2(mode="FAST"),
        ),
    )
    result = sdk_client.chat(details).data
    assert isinstance(result.chat_response, m.CohereChatResponseV2)
    assert result.chat_response.message.content[0].text.endswith("You said: Hi v2")
    assert result.chat_response.finish_reason == "COMPLETE"


def test_listening_socket_lets_asyncio_disable_nagle(oci_simulator):
    """asyncio sets TCP_NODELAY only on connections accepted from an IPPROTO_TCP socket; without it
    each reply written in two parts stalls ~40 ms on a delayed ACK (seen: 44 ms a call)."""
    import socket

    assert oci_simulator._server._sock.proto == socket.IPPROTO_TCP


def test_each_view_sees_only_its_own_requests_and_faults(_oci_simulator_session):
    """Tests share one simulator; a straggler of another test (a gateway draining, a background
    poll) never shows in a view's requests, nor meets its queued faults."""
    import ocilm
    from ocilm.testing import Fault

    mine, other = _oci_simulator_session.view(), _oci_simulator_session.view()
    other.inject(Fault(status=500, times=1))
    reply = ocilm.completion("oci/meta.llama-3.3-70b-instruct", [{"role": "user", "content": "hi"}], max_retries=0, **mine.credentials())
    assert reply.choices[0].message.content and [r.status for r in mine.requests] == [200] and other.requests == []
    with pytest.raises(ocilm.InternalServerError):
        ocilm.completion("oci/meta.llama-3.3-70b-instruct", [{"role": "user", "content": "hi"}], max_retries=0, **other.credentials())
    assert len(mine.requests) == 1 and [r.status for r in other.requests] == [500]
    assert mine.requests[0].path == "/20231130/actions/chat"  # routed without the view's prefix, signed with it
