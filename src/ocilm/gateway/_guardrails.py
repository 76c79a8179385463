"""Guardrails: LiteLLM's ``guardrails:`` config, OCI's ApplyGuardrails as the engine.

A stage of the metered path: ``pre_call`` checks every text of a request before anything is held
or sent (BLOCK answers 400 ``guardrail_violation``; MASK replaces each detected span with its
label, ``[EMAIL]``, in what goes upstream; MONITOR serves and records), ``post_call`` checks a
reply before the caller sees it, and ``during_call`` checks a stream in windows of text held back
at most ``WINDOW_CHARS`` at a time, ending it with the route's error event when a window is
blocked. Detected text never reaches a log, a metric or an error: only the guardrail's name, the
category and the label.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .._errors import OCIError
from ._errors import GatewayError

log = logging.getLogger("ocilm.gateway")
ACTIONS = ("MASK", "BLOCK", "MONITOR")
MODES = ("pre_call", "post_call", "during_call")
WINDOW_CHARS = 400  # a stream's text held back for a during_call check, at most
FLAGGED = 0.5
SEPARATOR = "\n\n"


@dataclass(frozen=True, eq=False)
class GuardrailSpec:
    name: str
    modes: frozenset[str]
    default_on: bool = False
    pii: dict[str, str] = field(default_factory=dict)  # label -> MASK | BLOCK | MONITOR
    moderation: str | None = None  # BLOCK | MONITOR
    injection: str | None = None
    version: str | None = None
    fail_open: bool = False
    params: dict[str, Any] = field(default_factory=dict, repr=False)  # OCI settings for its calls (may hold keys)

    def call_params(self) -> dict[str, Any]:
        return {
            "content_moderation": ["OVERALL", "BLOCKLIST"] if self.moderation else False,
            "pii": sorted(self.pii) if self.pii else False,
            "prompt_injection": bool(self.injection),
            **({"guardrail_version": self.version} if self.version else {}),
            **self.params,
        }


@dataclass
class Finding:
    guardrail: str
    category: str  # content_moderation | prompt_injection | pii:<LABEL>
    action: str


class Guardrails:
    """The configured guardrails and the calls that apply them (one ApplyGuardrails per check)."""

    def __init__(self, specs: list[GuardrailSpec], client: Any, observer: Any) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self.client, self.observer = client, observer

    def selected(self, asked: Any, key_names: tuple[str, ...] = ()) -> list[GuardrailSpec]:
        """``default_on`` guardrails, the key's and team's, and those the request names."""
        names: list[str] = [s.name for s in self.specs.values() if s.default_on]
        names += list(key_names)
        if asked is not None:
            if not isinstance(asked, list) or not all(isinstance(n, str) for n in asked):
                raise GatewayError(400, "guardrails: expected a list of guardrail names", param="guardrails")
            unknown = [n for n in asked if n not in self.specs]
            if unknown:
                raise GatewayError(400, f"guardrails: no guardrail named {unknown[0][:64]!r}; this gateway has: {', '.join(self.specs) or 'none'}",
                                   param="guardrails")  # fmt: skip
            names += asked
        return [self.specs[n] for n in dict.fromkeys(names) if n in self.specs]

    async def _apply(self, spec: GuardrailSpec, text: str, record: Any) -> dict | None:
        """OCI's results for ``text``, or None when the guardrail could not answer and fails open."""
        started = time.perf_counter()
        try:
            result = await self.client.apply_guardrails(text, **spec.call_params())
        except OCIError as exc:
            if spec.fail_open:
                log.warning("guardrail %s could not answer (%s); serving unguarded (on_error: fail_open)", spec.name, type(exc).__name__)
                return None
            raise GatewayError(503, f"guardrail {spec.name!r} could not check this request; try again shortly", kind="api_error",
                               code="guardrail_unavailable", headers={"retry-after": "1"}) from None  # fmt: skip
        finally:
            if record is not None:
                record.guardrail_seconds = (record.guardrail_seconds or 0.0) + time.perf_counter() - started
        return dict(result.get("results") or {})

    def _judge(self, spec: GuardrailSpec, results: dict, where: str, record: Any) -> list[dict]:
        """Raise for a BLOCK; record MONITOR findings; return the spans to MASK."""
        findings: list[Finding] = []
        if spec.moderation and any(float(c.get("score") or 0) >= FLAGGED for c in (results.get("contentModeration") or {}).get("categories") or []):
            findings.append(Finding(spec.name, "content_moderation", spec.moderation))
        if spec.injection and float((results.get("promptInjection") or {}).get("score") or 0) >= FLAGGED:
            findings.append(Finding(spec.name, "prompt_injection", spec.injection))
        masks = []
        for span in results.get("personallyIdentifiableInformation") or []:
            action = spec.pii.get(str(span.get("label")))
            if action is None:
                continue
            findings.append(Finding(spec.name, f"pii:{span.get('label')}", action))
            if action == "MASK":
                masks.append(dict(span))
        for finding in findings:
            if record is not None:
                record.guardrail_findings.append(f"{finding.guardrail}:{finding.category}:{finding.action}")
            if self.observer is not None:
                self.observer.guardrail_finding(finding.guardrail, finding.category, finding.action)
        blocked = next((f for f in findings if f.action == "BLOCK"), None)
        if blocked is not None:
            category = blocked.category.replace("pii:", "personal information: ")
            raise GatewayError(400, f"{where} blocked by guardrail {spec.name!r} ({category})", param="messages" if where == "request" else None,
                               code="guardrail_violation")  # fmt: skip
        return masks

    # ---------------------------------------------------------------- pre_call

    async def check_request(self, specs: list[GuardrailSpec], messages: Any, record: Any) -> Any:
        """The messages to send upstream (masked where a guardrail says MASK), or a 400/503."""
        specs = [s for s in specs if "pre_call" in s.modes]
        if not specs:
            return messages
        texts = _Texts.of(messages)
        if not texts.segments:
            return messages
        for spec in specs:
            results = await self._apply(spec, texts.joined(), record)
            if results is not None:
                masks = self._judge(spec, results, "request", record)
                if masks:
                    texts.mask(masks)
        return texts.rebuilt(messages)

    # ---------------------------------------------------------------- post_call

    async def check_reply(self, specs: list[GuardrailSpec], completion: Any, record: Any) -> None:
        """A reply's text (a chat completion's messages, or a Responses object's output text),
        checked before the caller sees it (masked in place)."""
        specs = [s for s in specs if "post_call" in s.modes]
        if not specs:
            return
        holders: list[tuple[Any, str]] = [(dict.get(choice, "message") or {}, "content") for choice in dict.get(completion, "choices") or []]
        for item in dict.get(completion, "output") or []:
            if isinstance(item, dict) and item.get("type") == "message":
                holders += [(part, "text") for part in item.get("content") or [] if isinstance(part, dict) and part.get("type") == "output_text"]
        for holder, field_name in holders:
            text = dict.get(holder, field_name)
            if not isinstance(text, str) or not text:
                continue
            for spec in specs:
                results = await self._apply(spec, text, record)
                if results is not None:
                    masks = self._judge(spec, results, "reply", record)
                    if masks:
                        text = _masked(text, masks)
            dict.__setitem__(holder, field_name, text)

    def stream_guard(self, specs: list[GuardrailSpec], record: Any) -> StreamGuard | None:
        specs = [s for s in specs if "during_call" in s.modes]
        return StreamGuard(self, specs, record) if specs else None


class StreamGuard:
    """``during_call`` on a chat stream: text deltas are held back until ``WINDOW_CHARS`` of text
    have gathered (or the stream ends), the window is checked, then released (masked if need be)."""

    def __init__(self, guardrails: Guardrails, specs: list[GuardrailSpec], record: Any) -> None:
        self.guardrails, self.specs, self.record = guardrails, specs, record
        self.held: list[Any] = []
        self.chars = 0
        self.replaced: dict[str, str] = {}  # masked text -> its label, for events that restate the whole text

    async def see(self, batch: list[Any]) -> list[Any]:
        self.held += batch
        self.chars += sum(len(_delta_text(chunk) or "") for chunk in batch)
        if self.chars < WINDOW_CHARS and not any(_restates(chunk) for chunk in batch):
            return []
        return await self._release()

    async def finish(self) -> list[Any]:
        return await self._release()

    async def _release(self) -> list[Any]:
        held, self.held, self.chars = self.held, [], 0
        pieces = [(chunk, _delta_text(chunk)) for chunk in held]
        text = "".join(t for _, t in pieces if t)
        if text:
            for spec in self.specs:
                results = await self.guardrails._apply(spec, text, self.record)
                if results is not None:
                    masks = self.guardrails._judge(spec, results, "reply", self.record)
                    if masks:
                        _mask_deltas(pieces, masks)
                        self.replaced.update({str(m.get("text")): f"[{m.get('label')}]" for m in masks if m.get("text")})
        if self.replaced:
            for chunk in held:
                if _restates(chunk):
                    _replace_everywhere(chunk, self.replaced)
        return held


# -------------------------------------------------------------------- texts


class _Texts:
    """Every text of a chat request (each message's content, or its text parts), joined with a
    separator for one check, with where each came from, so spans map back to each."""

    def __init__(self) -> None:
        self.segments: list[tuple[int, int | None, str]] = []  # (message, part or None, text)

    @classmethod
    def of(cls, messages: Any) -> _Texts:
        texts = cls()
        if isinstance(messages, str):  # a Responses input given as one string
            texts.segments.append((-1, None, messages))
            return texts
        for i, message in enumerate(messages if isinstance(messages, list) else []):
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str) and content:
                texts.segments.append((i, None, content))
            elif isinstance(content, list):
                for j, part in enumerate(content):
                    if isinstance(part, dict) and isinstance(part.get("text"), str) and part["text"]:
                        texts.segments.append((i, j, part["text"]))
        return texts

    def joined(self) -> str:
        return SEPARATOR.join(text for _, _, text in self.segments)

    def mask(self, spans: list[dict]) -> None:
        starts, offset = [], 0
        for _, _, text in self.segments:
            starts.append(offset)
            offset += len(text) + len(SEPARATOR)
        for k, (i, j, text) in enumerate(self.segments):
            own = [{**s, "offset": int(s["offset"]) - starts[k]} for s in spans if starts[k] <= int(s["offset"]) < starts[k] + len(text)]
            if own:
                self.segments[k] = (i, j, _masked(text, own))

    def rebuilt(self, messages: Any) -> Any:
        if isinstance(messages, str):
            return self.segments[0][2] if self.segments else messages
        out = [dict(m) if isinstance(m, dict) else m for m in messages]
        for i, j, text in self.segments:
            if j is None:
                out[i]["content"] = text
            else:
                parts = list(out[i]["content"])
                parts[j] = {**parts[j], "text": text}
                out[i]["content"] = parts
        return out


def _masked(text: str, spans: list[dict]) -> str:
    for span in sorted(spans, key=lambda s: int(s["offset"]), reverse=True):
        start = max(0, int(span["offset"]))
        end = min(len(text), start + int(span["length"]))
        text = text[:start] + f"[{span.get('label')}]" + text[end:]
    return text


_RESPONSES_TEXT_DELTAS = frozenset({"response.output_text.delta"})
_RESPONSES_RESTATING = frozenset({"response.output_text.done", "response.content_part.done", "response.output_item.done",
                                  "response.completed", "response.incomplete", "response.failed"})  # fmt: skip


def _restates(chunk: Any) -> bool:
    """A Responses event that carries the whole text again (it is checked with what came before)."""
    return dict.get(chunk, "type") in _RESPONSES_RESTATING


def _replace_everywhere(value: Any, replaced: dict[str, str]) -> None:
    """Apply learned masks to every string inside an event (in place)."""
    stack = [value]
    while stack:
        item = stack.pop()
        pairs = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        for key, child in list(pairs):
            if isinstance(child, str):
                for original, label in replaced.items():
                    child = child.replace(original, label)
                item[key] = child
            elif isinstance(child, (dict, list)):
                stack.append(child)


def _delta_text(chunk: Any) -> str | None:
    if dict.get(chunk, "type") in _RESPONSES_TEXT_DELTAS:
        delta = dict.get(chunk, "delta")
        return delta if isinstance(delta, str) else None
    for choice in dict.get(chunk, "choices") or ():
        text = dict.get(dict.get(choice, "delta") or {}, "content")
        if isinstance(text, str):
            return text
    return None


def _mask_deltas(pieces: list[tuple[Any, str | None]], spans: list[dict]) -> None:
    """Mask spans of a window's text in the chunks that carried it: a span's label goes where it
    starts, and the rest of the span is removed from the chunks it covers."""
    bounds, offset = [], 0
    for chunk, text in pieces:
        if text:
            bounds.append((chunk, offset, text))
            offset += len(text)
    new_texts = {id(chunk): list(text) for chunk, _, text in bounds}
    for span in spans:
        start, end = int(span["offset"]), int(span["offset"]) + int(span["length"])
        placed = False
        for chunk, first, text in bounds:
            chars = new_texts[id(chunk)]
            for k in range(len(text)):
                position = first + k
                if start <= position < end:
                    chars[k] = "" if placed else f"[{span.get('label')}]"
                    placed = True
    for chunk, _, _ in bounds:
        if dict.get(chunk, "type") in _RESPONSES_TEXT_DELTAS:
            chunk["delta"] = "".join(new_texts[id(chunk)])
            continue
        for choice in dict.get(chunk, "choices") or ():
            delta = dict.get(choice, "delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                delta["content"] = "".join(new_texts[id(chunk)])
                break


# -------------------------------------------------------------------- /v1/moderations

OPENAI_CATEGORIES = ("harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent", "self-harm",
                     "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence", "violence/graphic")  # fmt: skip


def moderation_result(results: dict, spec: GuardrailSpec, version: str | None) -> dict:
    """One OpenAI ``Moderation`` from OCI's results. OCI's content moderation says only OVERALL
    (harmful or offensive) and BLOCKLIST, which no one of OpenAI's 13 categories honestly is: every
    category reads false and 0.0, ``flagged`` says whether anything the guardrail checks was found
    (OVERALL or BLOCKLIST, prompt injection, or personal information it acts on), and OCI's own
    results are under ``oci`` (personal information as labels and offsets, never the text)."""
    scores = {c.get("name"): float(c.get("score") or 0) for c in (results.get("contentModeration") or {}).get("categories") or []}
    injection = (results.get("promptInjection") or {}).get("score")
    spans = [{"label": s.get("label"), "offset": s.get("offset"), "length": s.get("length"), "score": s.get("score")}
             for s in results.get("personallyIdentifiableInformation") or []]  # fmt: skip
    flagged = (any(v >= FLAGGED for v in scores.values()) or (injection is not None and float(injection) >= FLAGGED)
               or any(s["label"] in spec.pii for s in spans))  # fmt: skip
    return {
        "flagged": flagged,
        "categories": dict.fromkeys(OPENAI_CATEGORIES, False),
        "category_scores": dict.fromkeys(OPENAI_CATEGORIES, 0.0),
        "category_applied_input_types": {name: ["text"] for name in OPENAI_CATEGORIES},
        "oci": {"overall": scores.get("OVERALL"), "blocklist": scores.get("BLOCKLIST"),
                "prompt_injection": None if injection is None else float(injection), "pii": spans, "guardrail_version": version},
    }  # fmt: skip


async def moderate(guardrails: Guardrails, spec: GuardrailSpec, inputs: list[str], record: Any) -> list[dict]:
    """One ApplyGuardrails call per input (OpenAI's one result per input); a guardrail that
    cannot answer is a 503 here whatever its on_error (there is nothing to serve unguarded)."""
    out = []
    for text in inputs:
        started = time.perf_counter()
        try:
            result = await guardrails.client.apply_guardrails(text, **spec.call_params())
        except OCIError:
            raise GatewayError(503, f"guardrail {spec.name!r} could not answer; try again shortly", kind="api_error",
                               code="guardrail_unavailable", headers={"retry-after": "1"}) from None  # fmt: skip
        finally:
            record.guardrail_seconds = (record.guardrail_seconds or 0.0) + time.perf_counter() - started
        version = (result.get("guardrailVersion") or {}).get("version")
        out.append(moderation_result(dict(result.get("results") or {}), spec, version))
    return out
