"""The documented request shapes of OCI Generative AI (API 20231130), as data, and a checker.

The simulator rejects what the service rejects: unknown fields, wrong types, bad enum
values and missing required fields, each with a message naming the JSON path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class SchemaError(ValueError):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"Invalid request content: {path}: {problem}")
        self.path = path


@dataclass
class Obj:
    fields: dict[str, Any]
    required: frozenset[str] = frozenset()
    open: bool = False  # free-form object (JSON Schema, documents, metadata)


@dataclass
class Union:
    discriminator: str
    variants: dict[str, Obj]


@dataclass
class ListOf:
    item: Any
    max_items: int | None = None


@dataclass
class Enum:
    values: tuple[str, ...]


@dataclass
class MapOf:
    value: Any
    extra: dict = field(default_factory=dict)


STR, INT, NUM, BOOL, ANY_OBJ, ANY = "string", "integer", "number", "boolean", "object", "any"


def obj(required: str = "", **fields: Any) -> Obj:
    return Obj(fields, frozenset(required.split()))


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def check(value: Any, spec: Any, path: str) -> None:
    if spec == ANY:
        return
    if isinstance(spec, str):
        actual = _type_name(value)
        ok = actual == spec or (spec == NUM and actual == "integer")
        if not ok:
            raise SchemaError(path, f"expected {spec}, got {actual}")
        return
    if isinstance(spec, Enum):
        if not isinstance(value, str) or value not in spec.values:
            raise SchemaError(path, f"{value!r} is not one of {', '.join(spec.values)}")
        return
    if isinstance(spec, ListOf):
        if not isinstance(value, list):
            raise SchemaError(path, f"expected array, got {_type_name(value)}")
        if spec.max_items is not None and len(value) > spec.max_items:
            raise SchemaError(path, f"at most {spec.max_items} items allowed, got {len(value)}")
        for i, item in enumerate(value):
            check(item, spec.item, f"{path}[{i}]")
        return
    if isinstance(spec, MapOf):
        if not isinstance(value, dict):
            raise SchemaError(path, f"expected object, got {_type_name(value)}")
        for key, item in value.items():
            check(item, spec.value, f"{path}.{key}")
        return
    if not isinstance(value, dict):
        raise SchemaError(path, f"expected object, got {_type_name(value)}")
    if isinstance(spec, Union):
        tag = value.get(spec.discriminator)
        if tag is None:
            raise SchemaError(f"{path}.{spec.discriminator}", "missing required discriminator")
        if tag not in spec.variants:
            raise SchemaError(f"{path}.{spec.discriminator}", f"{tag!r} is not one of {', '.join(spec.variants)}")
        variant = spec.variants[tag]
        fields = {spec.discriminator: ANY, **variant.fields}
        check(value, Obj(fields, variant.required | {spec.discriminator}, variant.open), path)
        return
    assert isinstance(spec, Obj)
    if spec.open:
        return
    for name in spec.required:
        if name not in value:
            raise SchemaError(f"{path}.{name}", "missing required field")
    for name, item in value.items():
        if name not in spec.fields:
            raise SchemaError(f"{path}.{name}", "unknown field")
        if item is None:
            raise SchemaError(f"{path}.{name}", "null is not allowed (omit the field instead)")
        check(item, spec.fields[name], f"{path}.{name}")


FREE = Obj({}, open=True)
DETAIL = Enum(("AUTO", "HIGH", "LOW"))


def _media(name: str) -> Obj:
    return obj(name, **{name: obj("url", url=STR, detail=DETAIL)})


CONTENT = Union("type", {
    "TEXT": obj("text", text=STR),
    "IMAGE": _media("imageUrl"),
    "AUDIO": _media("audioUrl"),
    "VIDEO": _media("videoUrl"),
    "DOCUMENT": _media("documentUrl"),
})  # fmt: skip
TOOL_CALL = Union("type", {"FUNCTION": obj("id", id=STR, name=STR, arguments=STR)})
MESSAGE = Union("role", {
    "SYSTEM": obj("content", content=ListOf(CONTENT), name=STR),
    "USER": obj("content", content=ListOf(CONTENT), name=STR),
    "DEVELOPER": obj("content", content=ListOf(CONTENT), name=STR),
    "ASSISTANT": obj(
        "", content=ListOf(CONTENT), name=STR, refusal=STR, toolCalls=ListOf(TOOL_CALL),
        annotations=ListOf(FREE), reasoningContent=STR,
    ),
    "TOOL": obj("content toolCallId", content=ListOf(CONTENT), toolCallId=STR),
})  # fmt: skip
TOOL_DEF = Union("type", {"FUNCTION": obj("name", name=STR, description=STR, parameters=FREE)})
TOOL_CHOICE = Union("type", {
    "NONE": obj(), "AUTO": obj(), "REQUIRED": obj(), "FUNCTION": obj("name", name=STR),
})  # fmt: skip
RESPONSE_FORMAT = Union("type", {
    "TEXT": obj(),
    "JSON_OBJECT": obj(),
    "JSON_SCHEMA": obj("jsonSchema", jsonSchema=obj("name", name=STR, description=STR, schema=FREE, isStrict=BOOL)),
})  # fmt: skip
STREAM_OPTIONS = obj(isIncludeUsage=BOOL)

GENERIC_CHAT = obj(
    "",
    messages=ListOf(MESSAGE),
    reasoningEffort=Enum(("NONE", "MINIMAL", "LOW", "MEDIUM", "HIGH")),
    verbosity=Enum(("LOW", "MEDIUM", "HIGH")),
    metadata=MapOf(STR),
    isStream=BOOL,
    streamOptions=STREAM_OPTIONS,
    numGenerations=INT,
    seed=INT,
    isEcho=BOOL,
    topK=INT,
    topP=NUM,
    temperature=NUM,
    frequencyPenalty=NUM,
    presencePenalty=NUM,
    stop=ListOf(STR),
    logProbs=INT,
    maxTokens=INT,
    maxCompletionTokens=INT,
    logitBias=MapOf(NUM),
    prediction=Union("type", {"CONTENT": obj("content", content=ListOf(CONTENT))}),
    responseFormat=RESPONSE_FORMAT,
    toolChoice=TOOL_CHOICE,
    isParallelToolCalls=BOOL,
    tools=ListOf(TOOL_DEF, max_items=128),
    webSearchOptions=obj(
        "", searchContextSize=Enum(("HIGH", "MEDIUM", "LOW")),
        userLocation=obj("", city=STR, region=STR, country=STR, timezone=STR),
    ),
    serviceTier=Enum(("AUTO", "DEFAULT", "PRIORITY")),
)

COHERE_TOOL_CALL = obj("name parameters", name=STR, parameters=FREE)
COHERE_TOOL_RESULT = obj("call outputs", call=COHERE_TOOL_CALL, outputs=ListOf(FREE))
COHERE_MESSAGE = Union("role", {
    "USER": obj("message", message=STR),
    "CHATBOT": obj("", message=STR, toolCalls=ListOf(COHERE_TOOL_CALL)),
    "SYSTEM": obj("message", message=STR),
    "TOOL": obj("toolResults", toolResults=ListOf(COHERE_TOOL_RESULT)),
})  # fmt: skip
COHERE_TOOL = obj(
    "name description", name=STR, description=STR,
    parameterDefinitions=MapOf(obj("type", type=STR, description=STR, isRequired=BOOL)),
)
COHERE_RESPONSE_FORMAT = Union("type", {"TEXT": obj(), "JSON_OBJECT": obj("", schema=FREE)})
COHERE_CHAT = obj(
    "message",
    message=STR,
    chatHistory=ListOf(COHERE_MESSAGE),
    documents=ListOf(FREE),
    responseFormat=COHERE_RESPONSE_FORMAT,
    isSearchQueriesOnly=BOOL,
    preambleOverride=STR,
    isStream=BOOL,
    streamOptions=STREAM_OPTIONS,
    maxTokens=INT,
    maxInputTokens=INT,
    temperature=NUM,
    topK=INT,
    topP=NUM,
    promptTruncation=Enum(("OFF", "AUTO_PRESERVE_ORDER")),
    frequencyPenalty=NUM,
    presencePenalty=NUM,
    seed=INT,
    isEcho=BOOL,
    tools=ListOf(COHERE_TOOL),
    toolResults=ListOf(COHERE_TOOL_RESULT),
    isForceSingleStep=BOOL,
    stopSequences=ListOf(STR),
    isRawPrompting=BOOL,
    citationQuality=Enum(("ACCURATE", "FAST")),
    safetyMode=Enum(("CONTEXTUAL", "STRICT", "OFF")),
)

V2_CONTENT = Union("type", {
    "TEXT": obj("text", text=STR),
    "IMAGE_URL": obj("imageUrl", imageUrl=obj("url", url=STR, detail=DETAIL)),
    "DOCUMENT": obj("document", document=FREE),
    "THINKING": obj("", thinking=STR),
})  # fmt: skip
V2_MESSAGE = Union("role", {
    "SYSTEM": obj("content", content=ListOf(V2_CONTENT)),
    "USER": obj("content", content=ListOf(V2_CONTENT)),
    "ASSISTANT": obj("", content=ListOf(V2_CONTENT), toolPlan=STR, toolCalls=ListOf(FREE), citations=ListOf(FREE)),
    "TOOL": obj("content toolCallId", content=ListOf(V2_CONTENT), toolCallId=STR),
})  # fmt: skip
COHERE_V2_CHAT = obj(
    "messages",
    messages=ListOf(V2_MESSAGE),
    documents=ListOf(ANY),
    citationOptions=obj("", mode=Enum(("FAST", "ACCURATE", "OFF"))),
    toolsChoice=Enum(("REQUIRED", "NONE")),
    tools=ListOf(obj("type function", type=Enum(("FUNCTION",)),
                     function=obj("name parameters", name=STR, description=STR, parameters=FREE))),
    isStrictToolsEnabled=BOOL,
    isLogProbsEnabled=BOOL,
    thinking=obj("type", type=Enum(("ENABLED", "DISABLED")), tokenBudget=INT),
    responseFormat=COHERE_RESPONSE_FORMAT,
    isSearchQueriesOnly=BOOL,
    streamOptions=STREAM_OPTIONS,
    isStream=BOOL,
    maxTokens=INT,
    temperature=NUM,
    topK=INT,
    topP=NUM,
    frequencyPenalty=NUM,
    presencePenalty=NUM,
    seed=INT,
    stopSequences=ListOf(STR),
    priority=INT,
    isRawPrompting=BOOL,
    safetyMode=Enum(("CONTEXTUAL", "STRICT", "OFF")),
)

SERVING_MODE = Union("servingType", {
    "ON_DEMAND": obj("modelId", modelId=STR),
    "DEDICATED": obj("endpointId", endpointId=STR),
})  # fmt: skip
CHAT_DETAILS = obj(
    "compartmentId servingMode chatRequest",
    compartmentId=STR,
    servingMode=SERVING_MODE,
    chatRequest=Union("apiFormat", {"GENERIC": GENERIC_CHAT, "COHERE": COHERE_CHAT, "COHEREV2": COHERE_V2_CHAT}),
)
EMBED_DETAILS = obj(
    "servingMode compartmentId",
    inputs=ListOf(STR),
    embedContents=ListOf(Union("type", {
        "TEXT": obj("text", text=STR),
        "IMAGE": obj("imageUrl", imageUrl=obj("url", url=STR, detail=DETAIL)),
    })),
    servingMode=SERVING_MODE,
    compartmentId=STR,
    isEcho=BOOL,
    embeddingTypes=ListOf(Enum(("float", "int8", "uint8", "binary", "ubinary", "base64"))),
    outputDimensions=INT,
    truncate=Enum(("NONE", "START", "END")),
    inputType=Enum(("SEARCH_DOCUMENT", "SEARCH_QUERY", "CLASSIFICATION", "CLUSTERING", "IMAGE")),
)  # fmt: skip
RERANK_DETAILS = obj(
    "input compartmentId servingMode documents",
    input=STR,
    compartmentId=STR,
    servingMode=SERVING_MODE,
    documents=ListOf(STR),
    topN=INT,
    isEcho=BOOL,
    maxChunksPerDocument=INT,
    maxTokensPerDocument=INT,
)
