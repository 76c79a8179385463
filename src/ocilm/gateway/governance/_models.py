"""The governance tables (SQLAlchemy 2 declarative). Money is stored in whole nano-dollars
(10^-9 USD) so that sums are exact; times are Unix seconds (floats), the same on every store."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Team(Base):
    __tablename__ = "ocilm_teams"

    team_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_alias: Mapped[str | None] = mapped_column(String(256))
    models: Mapped[list[str]] = mapped_column(JSON, default=list)
    max_budget: Mapped[int | None] = mapped_column(BigInteger)  # nano-USD
    budget_duration: Mapped[str | None] = mapped_column(String(16))
    budget_reset_at: Mapped[float | None] = mapped_column(Float)
    spend: Mapped[int] = mapped_column(BigInteger, default=0)  # nano-USD, this budget window
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)
    rpm_limit: Mapped[int | None] = mapped_column(Integer)
    tpm_limit: Mapped[int | None] = mapped_column(Integer)
    max_parallel_requests: Mapped[int | None] = mapped_column(Integer)
    alert_level: Mapped[int | None] = mapped_column(Integer)  # the highest budget threshold announced (percent)
    alert_window: Mapped[float | None] = mapped_column(Float)  # in the budget window that ends here
    alert_budget: Mapped[int | None] = mapped_column(BigInteger)  # against this max_budget (migration 0007)
    guardrails: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))  # guardrail names it turns on (migration 0010)
    cache: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))  # the response cache's say (migration 0011)
    object_permission: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))  # MCP servers and tools (migration 0016)


class Key(Base):
    __tablename__ = "ocilm_keys"

    token: Mapped[str] = mapped_column(String(32), primary_key=True)  # the stable public id
    key_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the whole secret key
    key_name: Mapped[str] = mapped_column(String(64))  # the key masked for display: sk-...abcd
    key_alias: Mapped[str | None] = mapped_column(String(256))
    team_id: Mapped[str | None] = mapped_column(String(64), index=True)
    user_id: Mapped[str | None] = mapped_column(String(256))
    models: Mapped[list[str]] = mapped_column(JSON, default=list)
    max_budget: Mapped[int | None] = mapped_column(BigInteger)
    budget_duration: Mapped[str | None] = mapped_column(String(16))
    budget_reset_at: Mapped[float | None] = mapped_column(Float)
    spend: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[float | None] = mapped_column(Float)
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)
    # After /key/regenerate the previous secret keeps working until this time (the grace period).
    previous_hash: Mapped[str | None] = mapped_column(String(64))
    previous_valid_until: Mapped[float | None] = mapped_column(Float)
    rpm_limit: Mapped[int | None] = mapped_column(Integer)
    tpm_limit: Mapped[int | None] = mapped_column(Integer)
    max_parallel_requests: Mapped[int | None] = mapped_column(Integer)
    alert_level: Mapped[int | None] = mapped_column(Integer)  # the highest budget threshold announced (percent)
    alert_window: Mapped[float | None] = mapped_column(Float)  # in the budget window that ends here
    alert_budget: Mapped[int | None] = mapped_column(BigInteger)  # against this max_budget (migration 0007)
    guardrails: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))  # guardrail names it turns on (migration 0010)
    cache: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))  # the response cache's say (migration 0011)
    object_permission: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))  # MCP servers and tools (migration 0016)
    model_rpm_limit: Mapped[dict[str, int] | None] = mapped_column(JSON(none_as_null=True))  # model name -> requests per minute
    model_tpm_limit: Mapped[dict[str, int] | None] = mapped_column(JSON(none_as_null=True))


class Hold(Base):
    """A reservation of a request's worst-case cost against its key's and team's budgets."""

    __tablename__ = "ocilm_holds"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str] = mapped_column(String(32), index=True)
    team_id: Mapped[str | None] = mapped_column(String(64), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class SpendLog(Base):
    __tablename__ = "ocilm_spend_logs"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # settled once
    token: Mapped[str | None] = mapped_column(String(32))  # indexed with the time (below)
    team_id: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(256))
    deployment: Mapped[str] = mapped_column(String(256))
    route: Mapped[str] = mapped_column(String(64))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[int | None] = mapped_column(BigInteger)  # nano-USD; None when no price is known
    status: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float] = mapped_column(Float, index=True)
    tool_calls: Mapped[str | None] = mapped_column(String(256), nullable=True)  # hosted-tool calls by type, JSON (migration 0015)

    # searches by key, team, model or status over a time range, newest first (migration 0017)
    __table_args__ = (Index("ix_ocilm_spend_token_time", "token", "started_at"), Index("ix_ocilm_spend_team_time", "team_id", "started_at"),
                      Index("ix_ocilm_spend_model_time", "model", "started_at"), Index("ix_ocilm_spend_status_time", "status", "started_at"))  # fmt: skip


class AuditEntry(Base):
    """One admin change, chained to the one before it by digest (migration 0017)."""

    __tablename__ = "ocilm_audit"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False)
    at: Mapped[float] = mapped_column(Float, index=True)
    actor: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(256), index=True)
    before: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    after: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    previous: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))


class RateWindowEntry(Base):
    """A request admitted under a rate limit, while it is in the limit's sliding window (the
    store's own counters, for several workers on one SQLite file without Redis)."""

    __tablename__ = "ocilm_rate_window"

    ident: Mapped[str] = mapped_column(String(300), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[float] = mapped_column(Float)  # indexed with ident (migration 0006)
    tokens: Mapped[int] = mapped_column(BigInteger)


class RateSlot(Base):
    __tablename__ = "ocilm_rate_slots"

    ident: Mapped[str] = mapped_column(String(300), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    until: Mapped[float] = mapped_column(Float)



class StoredResponse(Base):
    """A response stored on OCI's /openai/v1: its owner (a key's id, or the master key) and the
    deployment (its place in the config) that holds it."""

    __tablename__ = "ocilm_responses"

    response_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    deployment: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[float] = mapped_column(Float)


class PlatformObject(Base):
    """An object a tenant made on OCI's agent platform through the gateway (a file, ...): its owner
    (``team:<id>``, or ``key:<token>`` for a key without a team), the deployment it lives through,
    its size (migration 0014)."""

    __tablename__ = "ocilm_objects"
    __table_args__ = (Index("ix_ocilm_objects_owner_kind", "owner", "kind"),)

    object_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(128))
    deployment: Mapped[str] = mapped_column(String(300))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float)


class Conversation(Base):
    """A conversation the translated Responses door keeps for ``previous_response_id``."""

    __tablename__ = "ocilm_conversations"

    response_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    history: Mapped[str] = mapped_column(Text)  # JSON
    chars: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float, index=True)
