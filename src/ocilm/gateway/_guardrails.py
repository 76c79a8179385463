"""Guardrails: LiteLLM's ``guardrails:`` config, OCI's ApplyGuardrails as the engine.

A stage of the metered path, reading texts only through ``_texts`` (every text the model reads,
every text the caller receives): ``pre_call`` checks every text of a request before anything is
held or sent (BLOCK answers 400 ``guardrail_violation``; MASK replaces each detected span with its
label, ``[EMAIL]``, in what goes upstream; MONITOR serves and records), ``post_call`` checks a
reply, or a whole stream held back, before the caller sees it, and ``during_call`` checks a stream
in overlapping windows, ending it with the route's error event when a window is blocked. Detected text never reaches a log, a metric or an error: only the guardrail's name, the
category and the label.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .._errors import OCIError
from ._errors import GatewayError
from ._texts import (
    Channel,
    Slot,
    delta_slots,
    masked_pieces,
    merged_spans,
    reply_slots,
    request_slots,
    restated_slots,
    restates,
    tool_result_slots,
)

log = logging.getLogger("ocilm.gateway")
ACTIONS = ("MASK", "BLOCK", "MONITOR")
MODES = ("pre_call", "post_call", "during_call")
WINDOW_CHARS = 400  # a stream's text gathered before a during_call check
TAIL_CHARS = 128  # the end of each window checked again with the next: the longest entity a window cannot cut
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
    input_cost_per_token: float | None = None  # what a /v1/moderations call of it costs a key (absent: nothing)

    @property
    def digest(self) -> str:
        """What this guardrail decides, as a short digest (the cache keys entries by it: a changed
        policy never replays replies kept under the old one). Its credentials are left out."""
        policy = [self.name, sorted(self.modes), sorted(self.pii.items()), self.moderation, self.injection, self.version, self.fail_open]
        return f"{self.name}:{hashlib.sha256(json.dumps(policy).encode()).hexdigest()[:16]}"

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
    """The configured guardrails and the calls that apply them (one ApplyGuardrails per guardrail
    and check: every text of one side joined, spans mapped back to the fields they came from)."""

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
        """OCI's results for ``text``, or None when the guardrail could not answer and fails open
        (the request is marked: nothing it answers may be cached)."""
        started = time.perf_counter()
        try:
            result = await self.client.apply_guardrails(text, **spec.call_params())
        except OCIError as exc:
            if spec.fail_open:
                log.warning("guardrail %s could not answer (%s); serving unguarded (on_error: fail_open)", spec.name, type(exc).__name__)
                if record is not None:
                    record.guardrail_skipped = True
                return None
            raise GatewayError(503, f"guardrail {spec.name!r} could not check this request; try again shortly", kind="api_error",
                               code="guardrail_unavailable", headers={"retry-after": "1"}) from None  # fmt: skip
        finally:
            if record is not None:
                record.guardrail_seconds = (record.guardrail_seconds or 0.0) + time.perf_counter() - started
        return dict(result.get("results") or {})

    async def _results(self, specs: list[GuardrailSpec], text: str, record: Any) -> list[tuple[GuardrailSpec, dict]]:
        """Each guardrail's results for one text, asked at once."""
        answers = await asyncio.gather(*(self._apply(spec, text, record) for spec in specs))
        return [(spec, results) for spec, results in zip(specs, answers, strict=True) if results is not None]

    def _found(self, spec: GuardrailSpec, finding: str, action: str, record: Any) -> None:
        if record is not None:
            record.guardrail_findings.append(f"{spec.name}:{finding}:{action}")
        if self.observer is not None:
            self.observer.guardrail_finding(spec.name, finding, action)

    def _judge(self, answers: list[tuple[GuardrailSpec, dict]], where: str, record: Any, *, start: int = 0, end: int | None = None,
               flags_seen: set[tuple[str, str]] | None = None) -> list[tuple[int, int, str]]:  # fmt: skip
        """Record the findings and raise for a BLOCK; return the spans to MASK (merged). Only the
        personal information in ``[start, end)`` counts (a stream's window: what it releases now);
        ``flags_seen`` counts a whole-text finding (moderation, injection) once per stream."""
        blocked: tuple[GuardrailSpec, str] | None = None
        masks: list[dict] = []
        for spec, results in answers:
            flags: list[tuple[str, str | None]] = []
            if spec.moderation and any(float(c.get("score") or 0) >= FLAGGED for c in (results.get("contentModeration") or {}).get("categories") or []):
                flags.append(("content_moderation", spec.moderation))
            if spec.injection and float((results.get("promptInjection") or {}).get("score") or 0) >= FLAGGED:
                flags.append(("prompt_injection", spec.injection))
            for category, flag_action in flags:
                action = str(flag_action)
                if flags_seen is None or (spec.name, category) not in flags_seen:
                    self._found(spec, category, action, record)
                    if flags_seen is not None:
                        flags_seen.add((spec.name, category))
                if action == "BLOCK" and blocked is None:
                    blocked = (spec, category)
            for span in results.get("personallyIdentifiableInformation") or []:
                label = str(span.get("label"))
                pii_action = spec.pii.get(label)
                if pii_action is None:
                    continue
                action = pii_action
                offset = int(span.get("offset") or 0)
                if offset + int(span.get("length") or 0) <= start or (end is not None and offset >= end):
                    continue  # released before (checked then), or after what this check releases
                self._found(spec, f"pii:{label}", action, record)
                if action == "BLOCK" and blocked is None:
                    blocked = (spec, f"pii:{label}")
                elif action == "MASK":
                    masks.append(span)
        if blocked is not None:
            category = blocked[1].replace("pii:", "personal information: ")
            raise GatewayError(400, f"{where} blocked by guardrail {blocked[0].name!r} ({category})", param="messages" if where == "request" else None,
                               code="guardrail_violation")  # fmt: skip
        return merged_spans(masks)

    async def _check_slots(self, specs: list[GuardrailSpec], slots: list[Slot], where: str, record: Any) -> None:
        """Every text of ``slots`` checked in one call per guardrail; masks written back in place."""
        if not specs or not slots:
            return
        texts = [holder[key] for holder, key in slots]
        starts, offset = [], 0
        for text in texts:
            starts.append(offset)
            offset += len(text) + len(SEPARATOR)
        masks = self._judge(await self._results(specs, SEPARATOR.join(texts), record), where, record)
        if masks:
            for (holder, key), text in zip(slots, masked_pieces(texts, starts, masks), strict=True):
                holder[key] = text

    # ---------------------------------------------------------------- pre_call

    async def check_request(self, specs: list[GuardrailSpec], method: str, first: Any, params: dict[str, Any],
                            record: Any) -> tuple[Any, dict[str, Any]]:  # fmt: skip
        """The request to send upstream (every text the model reads checked, masked in place
        where a guardrail says MASK), or a 400/503."""
        specs = [s for s in specs if "pre_call" in s.modes]
        if not specs:
            return first, params
        box = {"first": first, "params": params}
        await self._check_slots(specs, request_slots(method, box), "request", record)
        return box["first"], params

    # ---------------------------------------------------------------- post_call

    async def check_reply(self, specs: list[GuardrailSpec], completion: Any, record: Any) -> None:
        """Every text of a reply the caller receives (content, refusal, reasoning, tool-call
        arguments; a Responses object's output items), checked before the caller sees it. A
        ``during_call`` guardrail checks a whole reply too: it is the one window it has."""
        specs = [s for s in specs if "post_call" in s.modes or "during_call" in s.modes]
        await self._check_slots(specs, reply_slots(completion), "reply", record)

    async def check_tool_result(self, specs: list[GuardrailSpec], result: dict[str, Any], record: Any) -> None:
        """An MCP tool's result, as ``check_reply`` checks a model's: before the caller sees it."""
        specs = [s for s in specs if "post_call" in s.modes or "during_call" in s.modes]
        await self._check_slots(specs, tool_result_slots(result), "tool result", record)

    def stream_guard(self, specs: list[GuardrailSpec], record: Any) -> StreamGuard | None:
        """``during_call`` guardrails check a stream in windows; a ``post_call`` one holds the whole
        stream and checks it before the caller sees any of it (as it does a reply)."""
        during = [s for s in specs if "during_call" in s.modes]
        after = [s for s in specs if "post_call" in s.modes]
        if not during and not after:
            return None
        return StreamGuard(self, list(dict.fromkeys(during + after)), record, hold_all=bool(after))


class _Channel:
    """One run of deltas (a choice's content, a tool call's arguments, an output item's text):
    its pieces not yet released, and what it has released (masked) so far."""

    __slots__ = ("cleared", "pending", "tail")

    def __init__(self) -> None:
        self.pending: list[tuple[list, Slot, str]] = []  # (queue entry, slot, text)
        self.cleared: list[str] = []
        self.tail = ""  # the last TAIL_CHARS released: context for the next check


class StreamGuard:
    """Guardrails on a stream. Events are held in order; each text delta joins its channel. When
    ``WINDOW_CHARS`` of text are held (or the stream ends, or an event restates whole texts) each
    channel is checked with the end of what it released before as context, and released up to
    ``TAIL_CHARS`` before its end: that tail is checked again with what follows, so an entity of up
    to ``TAIL_CHARS`` cut by a window is always seen whole before any of it leaves. An event goes
    out once every text it carries is released. ``hold_all`` (a ``post_call`` guardrail) checks
    only at the end: the caller sees nothing the guardrail has not passed."""

    def __init__(self, guardrails: Guardrails, specs: list[GuardrailSpec], record: Any, *, hold_all: bool = False) -> None:
        self.guardrails, self.specs, self.record, self.hold_all = guardrails, specs, record, hold_all
        self.queue: deque[list] = deque()  # [event, texts of it not yet released]
        self.channels: dict[Channel, _Channel] = {}
        self.latest: _Channel | None = None
        self.held_chars = 0
        self.checked_at = 0  # the text held after the last check: the next waits for a window more
        self.flags_seen: set[tuple[str, str]] = set()
        self.restating: list[Any] = []  # held whole-text events of a held stream

    async def see(self, batch: list[Any]) -> list[Any]:
        for event in batch:
            if restates(event):
                if self.hold_all:  # restated once every text is checked, at the end
                    self.restating.append(event)
                else:
                    await self._check(final=True)
                    await self._restate(event)
                self.queue.append([event, 0])
                continue
            entry = [event, 0]
            for key, slot in delta_slots(event):
                channel = self.channels.get(key)
                if channel is None:
                    channel = self.channels[key] = _Channel()
                text = slot[0][slot[1]]
                channel.pending.append((entry, slot, text))
                entry[1] += 1
                self.held_chars += len(text)
                self.latest = channel
            self.queue.append(entry)
        if not self.hold_all and self.held_chars >= WINDOW_CHARS and self.held_chars - self.checked_at >= WINDOW_CHARS - TAIL_CHARS:
            await self._check(final=False)
        return self._released()

    async def finish(self) -> list[Any]:
        await self._check(final=True)
        for event in self.restating:
            await self._restate(event)
        self.hold_all = False
        return self._released()

    def _released(self) -> list[Any]:
        if self.hold_all:
            return []
        out = []
        while self.queue and self.queue[0][1] == 0:
            out.append(self.queue.popleft()[0])
        return out

    async def _check(self, final: bool) -> None:
        for channel in self.channels.values():
            if channel.pending:
                await self._check_channel(channel, final or channel is not self.latest)
        self.held_chars = self.checked_at = sum(len(t) for c in self.channels.values() for _, _, t in c.pending)

    async def _check_channel(self, channel: _Channel, final: bool) -> None:
        pieces = [text for _, _, text in channel.pending]
        held = "".join(pieces)
        context = channel.tail
        answers = await self.guardrails._results(self.specs, context + held, self.record)
        starts, offset = [], 0
        for text in pieces:
            starts.append(offset)
            offset += len(text)
        cut = len(held) if final else self._cut(answers, len(context), starts, len(held))
        if cut <= 0:
            return
        masks = self.guardrails._judge(answers, "reply", self.record, start=len(context), end=len(context) + cut, flags_seen=self.flags_seen)
        count = next((i for i, s in enumerate(starts) if s >= cut), len(starts))
        spans = [(max(0, a - len(context)), b - len(context), label) for a, b, label in masks if b > len(context)]
        released = masked_pieces(pieces[:count], starts[:count], spans) if spans else pieces[:count]
        for (entry, (holder, key), _), text in zip(channel.pending[:count], released, strict=True):
            holder[key] = text
            entry[1] -= 1
        channel.cleared.extend(released)
        channel.tail = (channel.tail + "".join(released))[-TAIL_CHARS:]
        del channel.pending[:count]

    @staticmethod
    def _cut(answers: list[tuple[GuardrailSpec, dict]], context: int, starts: list[int], held: int) -> int:
        """Where a window's release ends: at the last piece boundary at least ``TAIL_CHARS`` before
        its end that no detected entity straddles (0: nothing can go yet)."""
        spans = merged_spans([{**s, "offset": int(s.get("offset") or 0) - context} for spec, results in answers
                              for s in results.get("personallyIdentifiableInformation") or []
                              if spec.pii.get(str(s.get("label"))) is not None])  # fmt: skip
        span_starts = [start for start, _, _ in spans]
        limit = held - TAIL_CHARS
        for piece in range(bisect.bisect_right(starts, limit) - 1, 0, -1):
            cut = starts[piece]
            inside = bisect.bisect_left(span_starts, cut) - 1  # the last entity starting before the cut
            if inside < 0 or spans[inside][1] <= cut:
                return cut
        return 0

    async def _restate(self, event: Any) -> None:
        """An event carrying whole texts again: each text its deltas carried becomes what was
        released of them (masked alike); a text no delta carried is checked on its own."""
        unseen: list[Slot] = []
        for key, (holder, name) in restated_slots(event):
            channel = self.channels.get(key) if key is not None else None
            if channel is not None:
                holder[name] = "".join(channel.cleared)
            else:
                unseen.append((holder, name))
        if unseen:
            await self.guardrails._check_slots(self.specs, unseen, "reply", self.record)


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


MAX_MODERATION_CHARS = 100_000  # per input: what one ApplyGuardrails call is sent, at most


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
