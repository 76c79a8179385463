"""The simulator's OCI OpenAI-compatible API (``/openai/v1``), as the reference describes it:
Chat Completions and Responses (streamed and not), stored responses (retrieve, delete, input
items, ``previous_response_id``), background responses that complete shortly after, Generative
AI API keys (one without a policy answers 401 exactly as a wrong key), IAM signing that needs
``opc-compartment-id`` or ``OpenAI-Project``, Cohere refused, ``/models`` a 404, unknown request
fields refused as OpenAI refuses them. Answers come from the same deterministic engine as the
native API, so a test can compare both.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from . import _engine
from ._catalog import MODELS
from ._containers import Containers
from ._mcp_client import MCPError, MCPSession
from ._vector_stores import StoreError, VectorStores, page

PREFIX = "/openai/v1/"
PLACEHOLDER_KEYS = frozenset({"not-used", "<NOTUSED>", "OCI", "none", ""})
# Chat Completions fields OpenAI documents; anything else is refused. OCI refuses store there.
CHAT_FIELDS = frozenset({
    "model", "messages", "stream", "stream_options", "temperature", "top_p", "max_tokens", "max_completion_tokens", "n", "stop",
    "seed", "frequency_penalty", "presence_penalty", "logprobs", "top_logprobs", "logit_bias", "tools", "tool_choice",
    "parallel_tool_calls", "response_format", "reasoning_effort", "metadata", "verbosity", "service_tier", "prediction",
    "web_search_options", "user", "modalities", "safety_identifier", "prompt_cache_key",
})  # fmt: skip
BACKGROUND_SECONDS = 0.3  # a background response completes this long after it was created


class APIError(Exception):
    """An error reply: OCI's flat ``{"code", "message"}`` with its status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class RawBody:
    """A reply that is not JSON (a file's content)."""

    content: bytes
    content_type: str = "application/octet-stream"


FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
JSONL_ONLY = ("batch", "fine-tune", "evals")
VISION_TYPES = (".gif", ".jpeg", ".jpg", ".png", ".webp")
MAX_FILE_BYTES = 512 * 1024 * 1024  # OpenAI's cap (Oracle states none)


@dataclass
class StoredFile:
    owner: str
    meta: dict
    content: bytes


@dataclass
class StoredConversation:
    owner: str
    meta: dict
    items: list[dict] = field(default_factory=list)


@dataclass
class Stored:
    owner: str
    response: dict
    input_items: list[dict]
    history: list[dict]
    ready_at: float = 0.0  # a background response completes at this time
    final: dict | None = None  # ...as this


@dataclass
class OpenAIv1:
    """State and handlers of /openai/v1 (the SimulatorApp routes to it and sends the replies)."""

    api_keys: dict[str, bool] = field(default_factory=dict)  # secret -> has a policy
    stored: dict[str, Stored] = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)
    conversations: dict[str, StoredConversation] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    clock: Any = time.time

    def __post_init__(self) -> None:
        self.vector_stores = VectorStores(self._file_text, lambda: self.clock())
        self.containers = Containers(self._file_bytes, lambda: self.clock())

    def _file_bytes(self, file_id: Any, owner: str) -> tuple[str, bytes]:
        try:
            found = self._file(str(file_id), owner)
        except APIError:
            raise StoreError(404, "NotAuthorizedOrNotFound", f"No such File object: {file_id}") from None
        return found.meta["filename"], found.content

    def _file_text(self, file_id: str, owner: str) -> tuple[str, str]:
        try:
            found = self._file(file_id, owner)
        except APIError:
            raise StoreError(404, "NotAuthorizedOrNotFound", f"No such File object: {file_id}") from None
        return found.meta["filename"], found.content.decode("utf-8", "replace")

    # ---------------------------------------------------------------- who

    def principal(self, headers: dict[str, str], signed: bool) -> str:
        """Who is calling (stored responses are isolated by it): the project, else the key or
        the compartment. An IAM-signed call must say its compartment or project."""
        project = headers.get("openai-project")
        if project is not None and not project.startswith("ocid1.generativeaiproject."):
            raise APIError(400, "InvalidParameter", "OpenAI-Project must be a Generative AI project OCID")
        if signed:
            compartment = headers.get("opc-compartment-id")
            if not project and not compartment:
                raise APIError(400, "InvalidParameter", "a signed request to /openai/v1 needs the opc-compartment-id header "
                                                        "(or OpenAI-Project)")  # fmt: skip
            return f"project:{project}" if project else f"compartment:{compartment}"
        secret = headers.get("authorization", "")[7:]
        return f"project:{project}" if project else "apikey:" + hashlib.sha256(secret.encode()).hexdigest()[:16]

    def bearer_ok(self, secret: str) -> bool:
        """A key that exists and whose compartment has a policy (the two failures look alike)."""
        return secret not in PLACEHOLDER_KEYS and self.api_keys.get(secret) is True

    # ---------------------------------------------------------------- routing

    def handle(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes, signed: bool) -> tuple[int, Any]:
        """(status, a JSON value or a list of SSE frames as bytes)."""
        rest = path[len(PREFIX):]
        owner = self.principal(headers, signed)
        if rest == "vector_stores" or rest.startswith("vector_stores/"):
            params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
            try:
                return 200, self.vector_stores.route(method, rest.split("/")[1:], params, _json(body) if method == "POST" else {}, owner)
            except StoreError as exc:
                raise APIError(exc.status, exc.code, exc.message) from None
        if rest == "containers" or rest.startswith("containers/"):
            params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
            upload, payload = None, {}
            if method == "POST" and headers.get("content-type", "").lower().startswith("multipart/form-data"):
                upload = _multipart(headers["content-type"], body)[1]
            elif method == "POST":
                payload = _json(body)
            try:
                result = self.containers.route(method, rest.split("/")[1:], params, payload, upload, owner)
            except StoreError as exc:
                raise APIError(exc.status, exc.code, exc.message) from None
            return 200, RawBody(result) if isinstance(result, bytes) else result
        if rest == "conversations" or rest.startswith("conversations/"):
            params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
            return 200, self.conversations_route(method, rest.split("/")[1:], params, _json(body) if method == "POST" else {}, owner)
        if rest == "files" or rest.startswith("files/"):
            return self.files_route(method, rest.split("/")[1:], query, headers, body, owner)
        if rest == "chat/completions" and method == "POST":
            return 200, self.chat(_json(body))
        if rest == "responses" and method == "POST":
            return 200, self.create_response(_json(body), owner)
        if rest.startswith("responses/"):
            parts = rest.split("/")
            if len(parts) == 2 and method == "GET":
                return 200, self.get_response(parts[1], owner)
            if len(parts) == 2 and method == "DELETE":
                return 200, self.delete_response(parts[1], owner)
            if len(parts) == 3 and parts[2] == "input_items" and method == "GET":
                return 200, self.input_items(parts[1], owner, query)
            if len(parts) == 3 and parts[2] == "cancel" and method == "POST":
                return 200, self.cancel_response(parts[1], owner)
        raise APIError(404, "NotAuthorizedOrNotFound", f"No route for {method} {path}")

    # ---------------------------------------------------------------- chat

    def _model(self, body: dict) -> str:
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise APIError(400, "InvalidParameter", "model: required")
        if name.startswith("cohere."):
            raise APIError(400, "InvalidParameter", f"Unsupported OpenAI operation for model {name}")
        served = MODELS.get(name)
        if served is None or served.kind != "chat":
            raise APIError(404, "NotAuthorizedOrNotFound", f"Authorization failed or requested resource not found: model {name!r}")
        return name

    def chat(self, body: dict) -> Any:
        name = self._model(body)
        if MODELS[name].responses_only:
            raise APIError(400, "InvalidParameter", f"Model {name} is only supported on the Responses API, not on chat completions")
        if "store" in body:
            raise APIError(400, "InvalidParameter", "Unrecognized request argument supplied: store")
        unknown = sorted(set(body) - CHAT_FIELDS)
        if unknown:
            raise APIError(400, "InvalidParameter", f"Unrecognized request argument supplied: {unknown[0]}")
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            raise APIError(400, "InvalidParameter", "messages: expected a non-empty array")
        stream = body.get("stream") is True
        params = {k: v for k, v in body.items() if k not in ("model", "messages", "stream")}
        if stream:
            include = bool((params.get("stream_options") or {}).get("include_usage"))
            return [_data(chunk) for chunk in _chat_chunks(name, body["messages"], params, include)] + [b"data: [DONE]\n\n"]
        return _chat_completion(name, body["messages"], params)

    # ---------------------------------------------------------------- responses

    # ---------------------------------------------------------------- conversations

    def _conversation(self, conversation_id: Any, owner: str) -> StoredConversation:
        found = self.conversations.get(conversation_id) if isinstance(conversation_id, str) else None
        if found is None or found.owner != owner:
            raise APIError(404, "NotAuthorizedOrNotFound", f"Conversation with id '{conversation_id}' not found.")
        return found

    def conversations_route(self, method: str, parts: list[str], query: dict[str, str], body: dict, owner: str) -> Any:
        if not parts and method == "POST":
            unknown = sorted(set(body) - {"items", "metadata"})
            if unknown:
                raise APIError(400, "InvalidParameter", f"Unrecognized request argument supplied: {unknown[0]}")
            conversation_id = f"conv_{uuid.uuid4().hex[:32]}"
            meta = {"id": conversation_id, "object": "conversation", "created_at": int(self.clock()), "metadata": body.get("metadata") or {}}
            conversation = StoredConversation(owner, meta, _input_items(body.get("items") or []))
            with self.lock:
                self.conversations[conversation_id] = conversation
            return meta
        if not parts:
            raise APIError(404, "NotAuthorizedOrNotFound", "No such route for conversations")
        conversation = self._conversation(parts[0], owner)
        if len(parts) == 1:
            if method == "GET":
                return conversation.meta
            if method == "POST":
                conversation.meta["metadata"] = body.get("metadata") or {}
                return conversation.meta
            if method == "DELETE":
                with self.lock:
                    del self.conversations[parts[0]]
                return {"id": parts[0], "object": "conversation.deleted", "deleted": True}
        if parts[1] == "items":
            if len(parts) == 2 and method == "GET":
                return page([{**item, "created_at": index} for index, item in enumerate(conversation.items)], query)
            if len(parts) == 2 and method == "POST":
                added = _input_items(body.get("items") or [])
                conversation.items += added
                return {"object": "list", "data": added, "first_id": added[0]["id"] if added else None,
                        "last_id": added[-1]["id"] if added else None, "has_more": False}  # fmt: skip
            found = next((item for item in conversation.items if item.get("id") == parts[2]), None) if len(parts) == 3 else None
            if found is None:
                raise APIError(404, "NotAuthorizedOrNotFound", "No such item in this conversation")
            if method == "GET":
                return found
            if method == "DELETE":
                conversation.items.remove(found)
                return conversation.meta
        raise APIError(404, "NotAuthorizedOrNotFound", "No such route for conversations")

    def create_response(self, body: dict, owner: str) -> Any:
        """A response, in a conversation when ``conversation`` names one: its items come first, and
        the request's input and the response's output are added to it."""
        named = body.pop("conversation", None)
        if named is None:
            return self._create_response(body, owner)
        conversation = self._conversation(named.get("id") if isinstance(named, dict) else named, owner)
        if body.get("previous_response_id") is not None:
            raise APIError(400, "InvalidParameter", "conversation and previous_response_id cannot both be given")
        added = _input_items(body.get("input"))
        prior = [{k: v for k, v in item.items() if k not in ("id", "status")} for item in conversation.items]
        result = self._create_response({**body, "input": [*prior, *added]}, owner)
        if isinstance(result, list):  # a stream: its output is the final event's
            final = next(json.loads(frame.split(b"data: ", 1)[1]) for frame in reversed(result) if b'"response.completed"' in frame[:80])
            output = final["response"]["output"]
        else:
            output = result["output"]
            result = {**result, "conversation": {"id": conversation.meta["id"]}}
        conversation.items += added + [dict(item) for item in output]
        return result

    def _create_response(self, body: dict, owner: str) -> Any:
        from ..doors import responses as door
        from ..doors._common import DoorError

        name = self._model(body)
        most_calls = body.get("max_tool_calls")
        if most_calls is not None and (isinstance(most_calls, bool) or not isinstance(most_calls, int) or most_calls < 1):
            raise APIError(400, "InvalidParameter", "max_tool_calls: expected an integer of at least 1")
        searched = self._file_search(body, owner)  # OCI runs the hosted tool itself: its call comes first in the output
        coded = self._code_interpreter(body, owner) + self._mcp(body)
        if most_calls is not None:  # the hosted tools' calls stop at the request's bound
            left = most_calls - (searched is not None)
            kept = []
            for item in coded:
                if item["type"] in ("code_interpreter_call", "mcp_call"):
                    if left <= 0:
                        continue
                    left -= 1
                kept.append(item)
            coded = kept

        def history(response_id: str) -> list[dict] | None:
            found = self.stored.get(response_id)
            return found.history if found is not None and found.owner == owner else None

        try:
            call = door.parse_request({k: v for k, v in body.items() if k != "background"}, history)  # OCI runs background itself
        except DoorError as exc:
            raise APIError(exc.status, "InvalidParameter" if exc.status == 400 else "NotAuthorizedOrNotFound", exc.message) from None
        chat = dict(call.chat)
        messages = chat.pop("messages")
        store = body.get("store") is not False
        items = _input_items(body.get("input"))
        if body.get("stream") is True and (searched is not None or coded):  # the hosted tools' calls, then the answer, as events
            final = door.from_completion(call, _chat_completion(name, messages, chat))
            final = _answered_from_files(final, searched) if searched is not None else final
            final = _answered_by_tools({**final, "output": [*coded, *final["output"]]})
            if store:
                self._store(owner, final, items, door.history_after(call, _chat_completion(name, messages, chat)))
            return _events_of(final)
        if body.get("stream") is True:
            machine = door.ResponsesStream(call)
            frames = list(machine.start())
            for chunk in _chat_chunks(name, messages, {**chat, "stream_options": {"include_usage": True}}, True):
                frames += machine.feed(chunk)
            frames += machine.finish()
            if store:
                self._store(owner, door.from_completion(call, machine.completion()), items, door.history_after(call, machine.completion()))
            return frames
        completion = _chat_completion(name, messages, chat)
        response = door.from_completion(call, completion)
        if searched is not None:
            response = _answered_from_files(response, searched)
        if coded:
            response = _answered_by_tools({**response, "output": [*coded, *response["output"]]})
        if name.startswith("xai.") and any(isinstance(t, dict) and t.get("type") == "web_search" for t in body.get("tools") or []):
            # xAI's hosted web search runs on OCI's side: its call comes first in the output
            query = body["input"] if isinstance(body.get("input"), str) else "search"
            search = {"type": "web_search_call", "id": f"ws_{uuid.uuid4().hex[:24]}", "status": "completed",
                      "action": {"type": "search", "query": query}}  # fmt: skip
            response = {**response, "output": [search, *response["output"]]}
        if body.get("background") is True:
            if not store:
                raise APIError(400, "InvalidParameter", "background responses must be stored (store: true)")
            queued = {**response, "status": "queued", "output": [], "usage": None, "completed_at": None, "background": True}
            self._store(owner, queued, items, door.history_after(call, completion), final={**response, "background": True})
            return queued
        if store:
            self._store(owner, response, items, door.history_after(call, completion))
        return response

    def _mcp(self, body: dict) -> list[dict]:
        """The ``mcp`` hosted tool, as OCI runs it: the named remote server's tools listed, and the
        one the request mentions called (``require_approval: never``) or put up for approval."""
        serving = _take_tools(body, "mcp")
        if not serving:
            return []
        prompt = body["input"] if isinstance(body.get("input"), str) else json.dumps(body.get("input"))
        items: list[dict] = []
        for tool in serving:
            url, label = tool.get("server_url"), tool.get("server_label")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise APIError(400, "InvalidParameter", "tools[].server_url: an http(s) URL of a remote MCP server")
            if not isinstance(label, str) or not label:
                raise APIError(400, "InvalidParameter", "tools[].server_label: required")
            allowed = tool.get("allowed_tools")
            names = allowed.get("tool_names") if isinstance(allowed, dict) else allowed
            listing: dict[str, Any] = {"type": "mcp_list_tools", "id": f"mcpl_{uuid.uuid4().hex[:24]}", "server_label": label, "tools": [], "error": None}
            items.append(listing)
            try:
                with MCPSession(url, tool.get("headers") if isinstance(tool.get("headers"), dict) else None) as session:
                    listed = [t for t in session.tools() if names is None or t.get("name") in names]
                    listing["tools"] = [{"name": t.get("name"), "description": t.get("description"), "input_schema": t.get("inputSchema") or {},
                                         "annotations": None} for t in listed]  # fmt: skip
                    chosen = next((t for t in listed if _engine._mentions(str(t.get("name")), prompt)), None)
                    if chosen is None:
                        continue
                    arguments = _engine._tool_arguments(chosen.get("inputSchema") or {}, prompt, None)
                    if tool.get("require_approval", "always") != "never":
                        items.append({"type": "mcp_approval_request", "id": f"mcpr_{uuid.uuid4().hex[:24]}", "server_label": label,
                                      "name": chosen["name"], "arguments": json.dumps(arguments)})  # fmt: skip
                        continue
                    output, failed = session.call(chosen["name"], arguments)
                    items.append({"type": "mcp_call", "id": f"mcp_{uuid.uuid4().hex[:24]}", "server_label": label, "name": chosen["name"],
                                  "arguments": json.dumps(arguments), "output": None if failed else output,
                                  "error": output if failed else None, "status": "failed" if failed else "completed"})  # fmt: skip
            except (MCPError, httpx.HTTPError, ValueError) as exc:
                listing["error"] = f"the MCP server could not be used: {type(exc).__name__}"
        return items

    def _code_interpreter(self, body: dict, owner: str) -> list[dict]:
        """The ``code_interpreter`` hosted tool, as OCI runs it: in the container it names, or in one
        made for the request (``{"type": "auto"}``); its call (with the container's id) first."""
        coding = _take_tools(body, "code_interpreter")
        if not coding:
            return []
        prompt = body["input"] if isinstance(body.get("input"), str) else "the request"
        calls = []
        for tool in coding:
            try:
                container = self.containers.for_code(tool, owner)
            except StoreError as exc:
                raise APIError(exc.status, exc.code, exc.message) from None
            calls.append({"type": "code_interpreter_call", "id": f"ci_{uuid.uuid4().hex[:24]}", "status": "completed",
                          "container_id": container.meta["id"], "code": f"print({json.dumps(prompt)})",
                          "outputs": [{"type": "logs", "logs": prompt}]})  # fmt: skip
        return calls

    def _file_search(self, body: dict, owner: str) -> tuple[dict, list[dict]] | None:
        """The ``file_search`` hosted tool, as OCI runs it: the request's text searched in the named
        stores (the caller's own), its tool taken out of what the model sees."""
        searching = _take_tools(body, "file_search")
        if not searching:
            return None
        query = body["input"] if isinstance(body.get("input"), str) else json.dumps(body.get("input"))
        hits: list[dict] = []
        for tool in searching:
            ids = tool.get("vector_store_ids")
            if not isinstance(ids, list) or not ids:
                raise APIError(400, "InvalidParameter", "tools[].vector_store_ids: required for file_search")
            for store_id in ids:
                try:
                    store = self.vector_stores._store(store_id, owner)
                except StoreError as exc:
                    raise APIError(exc.status, exc.code, exc.message) from None
                hits += VectorStores.hits(store, query, int(tool.get("max_num_results") or 10))
        hits.sort(key=lambda h: -h["score"])
        call = {"type": "file_search_call", "id": f"fs_{uuid.uuid4().hex[:24]}", "status": "completed", "queries": [query[:200]],
                "results": None}  # fmt: skip
        return call, hits

    # ---------------------------------------------------------------- files

    def files_route(self, method: str, parts: list[str], query: str, headers: dict[str, str], body: bytes, owner: str) -> tuple[int, Any]:
        if not parts and method == "POST":
            return 200, self.upload_file(headers, body, owner)
        if not parts and method == "GET":
            return 200, self.list_files(owner, query)
        if len(parts) == 1 and method == "GET":
            return 200, self._file(parts[0], owner).meta
        if len(parts) == 1 and method == "DELETE":
            self._file(parts[0], owner)
            with self.lock:
                del self.files[parts[0]]
            return 200, {"id": parts[0], "object": "file", "deleted": True}
        if len(parts) == 2 and parts[1] == "content" and method == "GET":
            return 200, RawBody(self._file(parts[0], owner).content)
        raise APIError(404, "NotAuthorizedOrNotFound", "No such route for files")

    def _file(self, file_id: str, owner: str) -> StoredFile:
        found = self.files.get(file_id)
        if found is None or found.owner != owner or (found.meta["expires_at"] and found.meta["expires_at"] <= self.clock()):
            raise APIError(404, "NotAuthorizedOrNotFound", f"No such File object: {file_id}")
        return found

    def upload_file(self, headers: dict[str, str], body: bytes, owner: str) -> dict:
        """OpenAI's multipart upload, as OCI documents it: purpose and file type checked."""
        fields, upload = _multipart(headers.get("content-type", ""), body)
        purpose = fields.get("purpose")
        if purpose not in FILE_PURPOSES:
            raise APIError(400, "InvalidParameter", f"purpose: expected one of {', '.join(FILE_PURPOSES)}")
        if upload is None:
            raise APIError(400, "InvalidParameter", "file: required, a multipart file part")
        filename, content = upload
        lowered = filename.lower()
        if purpose in JSONL_ONLY and not lowered.endswith(".jsonl"):
            raise APIError(400, "InvalidParameter", f"files with purpose {purpose} must be .jsonl")
        if purpose == "vision" and not lowered.endswith(VISION_TYPES):
            raise APIError(400, "InvalidParameter", f"files with purpose vision must be one of {', '.join(VISION_TYPES)}")
        if len(content) > MAX_FILE_BYTES:
            raise APIError(413, "RequestEntityTooLarge", "file exceeds 512 MB")
        now = int(self.clock())
        expires_at = None
        if "expires_after[seconds]" in fields or "expires_after[anchor]" in fields:
            seconds = fields.get("expires_after[seconds]", "")
            if fields.get("expires_after[anchor]") != "created_at" or not seconds.isdigit() or not 3600 <= int(seconds) <= 2_592_000:
                raise APIError(400, "InvalidParameter", "expires_after: anchor created_at and seconds from 3600 to 2592000")
            expires_at = now + int(seconds)
        file_id = f"file-ord-{uuid.uuid4()}"
        meta = {"id": file_id, "object": "file", "bytes": len(content), "created_at": now, "expires_at": expires_at,
                "filename": filename, "purpose": purpose, "status": "processed", "status_details": None}  # fmt: skip
        with self.lock:
            self.files[file_id] = StoredFile(owner, meta, content)
        return meta

    def list_files(self, owner: str, query: str) -> dict:
        params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
        now = self.clock()
        mine = [f.meta for f in self.files.values() if f.owner == owner and not (f.meta["expires_at"] and f.meta["expires_at"] <= now)
                and (not params.get("purpose") or f.meta["purpose"] == params["purpose"])]  # fmt: skip
        mine.sort(key=lambda m: (m["created_at"], m["id"]), reverse=params.get("order", "desc") != "asc")
        if params.get("after"):
            ids = [m["id"] for m in mine]
            mine = mine[ids.index(params["after"]) + 1 :] if params["after"] in ids else []
        limit = int(params["limit"]) if params.get("limit", "").isdigit() else 10_000
        if not 1 <= limit <= 10_000:
            raise APIError(400, "InvalidParameter", "limit: from 1 to 10000")
        page = mine[:limit]
        return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None,
                "has_more": len(mine) > limit}  # fmt: skip

    def _store(self, owner: str, response: dict, items: list[dict], history: list[dict], final: dict | None = None) -> None:
        with self.lock:
            ready = self.clock() + BACKGROUND_SECONDS if final is not None else 0.0
            self.stored[response["id"]] = Stored(owner, response, items, history, ready, final)

    def _owned(self, response_id: str, owner: str) -> Stored:
        found = self.stored.get(response_id)
        if found is None or found.owner != owner:  # another owner's id reads as unknown
            raise APIError(404, "NotAuthorizedOrNotFound", f"Response with id '{response_id}' not found.")
        return found

    def get_response(self, response_id: str, owner: str) -> dict:
        found = self._owned(response_id, owner)
        if found.final is not None and self.clock() >= found.ready_at:
            found.response, found.final = found.final, None
        elif found.final is not None:
            found.response = {**found.response, "status": "in_progress"}
        return found.response

    def cancel_response(self, response_id: str, owner: str) -> dict:
        """OpenAI's rule: only a background response can be cancelled; one that ended is returned as it is."""
        found = self._owned(response_id, owner)
        if not found.response.get("background"):
            raise APIError(400, "InvalidParameter", "Only responses created with background=true can be cancelled.")
        if found.final is not None and self.clock() < found.ready_at:  # still running: cancelled, with what it used so far (nothing)
            found.response, found.final = {**found.response, "status": "cancelled"}, None
        elif found.final is not None:
            found.response, found.final = found.final, None
        return found.response

    def delete_response(self, response_id: str, owner: str) -> dict:
        self._owned(response_id, owner)
        with self.lock:
            del self.stored[response_id]
        return {"id": response_id, "object": "response", "deleted": True}

    def input_items(self, response_id: str, owner: str, query: str) -> dict:
        items = self._owned(response_id, owner).input_items
        params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
        if params.get("order") == "desc":
            items = items[::-1]
        limit = int(params["limit"]) if params.get("limit", "").isdigit() else 20
        page = items[:limit]
        return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None,
                "has_more": len(items) > limit}  # fmt: skip


# -------------------------------------------------------------------- helpers


def _events_of(response: dict) -> list[bytes]:
    """A finished response as the events of its stream (each item added and done, text in one delta)."""
    frames: list[bytes] = []

    def event(kind: str, **fields: Any) -> None:
        payload = {"type": kind, "sequence_number": len(frames), **fields}
        frames.append(f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode())

    opening = {**response, "status": "in_progress", "output": [], "usage": None, "completed_at": None}
    event("response.created", response=opening)
    event("response.in_progress", response=opening)
    for index, item in enumerate(response["output"]):
        if item.get("type") == "message":
            text = item["content"][0]["text"]
            event("response.output_item.added", output_index=index, item={**item, "status": "in_progress", "content": []})
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            event("response.content_part.added", item_id=item["id"], output_index=index, content_index=0, part=part)
            event("response.output_text.delta", item_id=item["id"], output_index=index, content_index=0, delta=text, logprobs=[])
            event("response.output_text.done", item_id=item["id"], output_index=index, content_index=0, text=text, logprobs=[])
            event("response.content_part.done", item_id=item["id"], output_index=index, content_index=0, part={**part, "text": text})
        else:
            event("response.output_item.added", output_index=index, item=item)
        event("response.output_item.done", output_index=index, item=item)
    event("response.completed", response=response)
    return frames


def _take_tools(body: dict, kind: str) -> list[dict]:
    """The request's hosted tools of ``kind``, taken out of what the model sees (OCI runs them)."""
    given = body.get("tools")
    tools: list[Any] = given if isinstance(given, list) else []
    taken = [t for t in tools if isinstance(t, dict) and t.get("type") == kind]
    if taken:
        rest = [t for t in tools if t not in taken]
        if rest:
            body["tools"] = rest
        else:
            del body["tools"]
    return taken


def _answered_by_tools(response: dict) -> dict:
    """A response whose answer says what a remote MCP tool it called returned."""
    called = [item for item in response["output"] if item.get("type") == "mcp_call" and item.get("output")]
    if not called:
        return response
    text = f"The {called[-1]['name']} tool said: {called[-1]['output']}"
    output = [{**item, "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]} if item.get("type") == "message"
              else item for item in response["output"]]  # fmt: skip
    return {**response, "output": output}


def _answered_from_files(response: dict, searched: tuple[dict, list[dict]]) -> dict:
    """A response whose answer cites what file_search found (its call item first in the output)."""
    call, hits = searched
    text = f"According to {hits[0]['filename']}: {hits[0]['content'][0]['text']}" if hits else "The files say nothing about it."
    output = [call]
    for item in response["output"]:
        if item.get("type") == "message":
            item = {**item, "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}
        output.append(item)
    return {**response, "output": output}


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, str], tuple[str, bytes] | None]:
    """A multipart/form-data body's fields, and its file part (filename, bytes), by the standard library."""
    from email.parser import BytesParser
    from email.policy import HTTP

    if not content_type.lower().startswith("multipart/form-data"):
        raise APIError(400, "InvalidParameter", "the body must be multipart/form-data")
    message = BytesParser(policy=HTTP).parsebytes(b"content-type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields: dict[str, str] = {}
    upload = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")  # type: ignore[union-attr]
        filename = part.get_filename()
        raw = part.get_payload(decode=True)
        payload = raw if isinstance(raw, bytes) else b""
        if filename is not None and name == "file":
            upload = (filename, payload)
        elif isinstance(name, str):
            fields[name] = payload.decode("utf-8", "replace")
    return fields, upload


def _json(body: bytes) -> dict:
    try:
        value = json.loads(body)
    except ValueError:
        raise APIError(400, "CannotParseRequest", "The request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise APIError(400, "InvalidParameter", "The request body must be a JSON object")
    return value


def _data(value: dict) -> bytes:
    return b"data: " + json.dumps(value).encode() + b"\n\n"


def _context(name: str, stream: bool, include_usage: bool) -> Any:
    from .._capabilities import model_info
    from ..formats._common import ChatContext

    return ChatContext(model=name, info=model_info(name, "GENERIC"), stream=stream, include_usage=include_usage)


def _generic(name: str, messages: list, params: dict, stream: bool, include_usage: bool) -> tuple[dict, Any]:
    from .._errors import OCIError
    from ..formats.generic import generic_request

    ctx = _context(name, stream, include_usage)
    try:
        req = generic_request(messages, {k: v for k, v in params.items() if k != "stream_options"}, ctx)
    except OCIError as exc:
        raise APIError(400, "InvalidParameter", exc.message) from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise APIError(400, "InvalidParameter", f"the request could not be read: {exc}") from None
    if stream:
        req["isStream"] = True
        req["streamOptions"] = {"isIncludeUsage": True}
    return req, ctx


def _chat_completion(name: str, messages: list, params: dict) -> dict:
    from ..formats.generic import generic_response

    req, ctx = _generic(name, messages, params, False, False)
    completion = generic_response(_engine.generic_result(req, MODELS[name]), ctx, uuid.uuid4().hex)
    completion["model"] = name
    return completion


def _chat_chunks(name: str, messages: list, params: dict, include_usage: bool) -> list[dict]:
    from ..formats.generic import GenericStream

    req, ctx = _generic(name, messages, params, True, include_usage)
    state = GenericStream(ctx, uuid.uuid4().hex, int(time.time()))
    chunks: list[dict] = []
    for event in _engine.generic_events(req, MODELS[name]):
        if event == "[DONE]":
            break
        chunks += state.feed(event)
    chunks += state.close()
    for chunk in chunks:
        chunk["model"] = name
    return chunks


def _input_items(raw: Any) -> list[dict]:
    """A Responses request's input as stored items (each with an id, as OpenAI lists them)."""
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    items = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(item, dict):
            continue
        entry = dict(item)
        entry.setdefault("type", "message")
        if entry["type"] == "message" and isinstance(entry.get("content"), str):
            entry["content"] = [{"type": "input_text", "text": entry["content"]}]
        entry.setdefault("id", f"msg_{uuid.uuid4().hex[:24]}{i}")
        entry.setdefault("status", "completed")
        items.append(entry)
    return items
