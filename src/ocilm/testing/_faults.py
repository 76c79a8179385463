"""Faults a test can ask the simulator for, per request or queued."""

from __future__ import annotations

from dataclasses import dataclass, field

FAULT_HEADER = "x-ocilm-sim-fault"


@dataclass
class Fault:
    """One misbehaviour. Fields combine: e.g. ``Fault(status=503, times=2)``.

    - ``status`` (+ ``code``, ``retry_after``): reply with this error instead of the answer.
    - ``times``: only the first N attempts of a call fail (attempts are counted per
      ``opc-retry-token``, which a client keeps across its retries); None: every attempt.
    - ``delay``: seconds before the first byte of the response (a slow or silent upstream).
    - ``cut_after``: close a stream's connection after this many events (no clean end).
    - ``stall_after``: stop sending after this many stream events for ``delay`` seconds.
    - ``event_delay``: seconds between stream events (a slow model).
    - ``events``: stream this many text events (a long reply), whatever the prompt.
    - ``malformed``: a 200 whose body is not valid JSON.
    - ``raw_body``: with ``status``, send this text (``text/plain``) instead of OCI's error JSON.
    - ``action``: only requests to this action (``chat``, ``embedText``, ``rerankText``).
    - ``match``: only requests whose body contains this text (e.g. one batch of many).
    - ``probability``: apply to each request with this chance (a model throttled at random).
    """

    status: int | None = None
    code: str | None = None
    message: str | None = None
    retry_after: str | None = None
    times: int | None = 1
    delay: float = 0.0
    cut_after: int | None = None
    stall_after: int | None = None
    event_delay: float = 0.0
    events: int | None = None
    malformed: bool = False
    raw_body: str | None = None
    action: str | None = None
    tag: str | None = field(default=None, repr=False)  # set by a Simulator view: only that view's requests meet it
    match: str | None = None
    probability: float = 1.0

    @classmethod
    def parse(cls, header: str) -> Fault:
        """Parse the ``x-ocilm-sim-fault`` header: ``status=429;retry_after=2;times=1``."""
        fault = cls()
        for item in filter(None, (p.strip() for p in header.split(";"))):
            name, _, value = item.partition("=")
            name = name.strip()
            if name in ("status", "cut_after", "stall_after", "events"):
                setattr(fault, name, int(value))
            elif name == "times":
                fault.times = None if value in ("all", "always") else int(value)
            elif name in ("delay", "event_delay", "probability"):
                setattr(fault, name, float(value))
            elif name == "malformed":
                fault.malformed = value.lower() not in ("0", "false", "no")
            elif name in ("code", "message", "retry_after", "action", "raw_body", "match"):
                setattr(fault, name, value)
            else:
                raise ValueError(f"unknown fault field {name!r}")
        return fault

    def header(self) -> str:
        """This fault as an ``x-ocilm-sim-fault`` header value (pass it in ``extra_headers``)."""
        from dataclasses import fields

        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("times", "malformed") or value == f.default:
                continue
            parts.append(f"{f.name}={value}")
        if self.malformed:
            parts.append("malformed=1")
        parts.append(f"times={'all' if self.times is None else self.times}")
        return ";".join(parts)
