"""What the store answers besides data, importable without the database libraries (the gateway
loads SQLAlchemy and the drivers only when it has a database)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Lost(Exception):
    """The database could not be reached, or did not answer in time (the store turns this into
    StoreUnavailable)."""


class SchemaAhead(Exception):
    """The database was migrated by a newer ocilm than this one."""


class StoreUnavailable(Exception):
    """The database cannot be reached (governed requests fail closed with 503)."""


class BudgetExceeded(Exception):
    def __init__(self, scope: str, max_budget: int, committed: int, held: int, estimate: int) -> None:
        super().__init__(scope)
        self.scope, self.max_budget, self.committed, self.held, self.estimate = scope, max_budget, committed, held, estimate


@dataclass(frozen=True)
class RateLimits:
    """A key's or team's rate limits (None: no limit)."""

    rpm: int | None = None
    tpm: int | None = None
    parallel: int | None = None
    model_rpm: dict[str, int] = field(default_factory=dict)  # a key's per-model limits
    model_tpm: dict[str, int] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.rpm or self.tpm or self.parallel or self.model_rpm or self.model_tpm)


NO_LIMITS = RateLimits()


@dataclass(frozen=True)
class KeyView:
    """What authenticating a request needs of a key, read in one query."""

    token: str
    team_id: str | None
    models: tuple[str, ...]
    team_models: tuple[str, ...]
    has_budget: bool  # the key's or its team's
    blocked: bool
    expires_at: float | None
    limits: RateLimits = NO_LIMITS
    team_limits: RateLimits = NO_LIMITS
    guardrails: tuple[str, ...] = ()  # the key's and its team's
    cache: dict[str, Any] | None = None  # the team's cache policy, the key's settings over it
    budget_mark: tuple[Any, ...] = ()  # the key's and team's budgets: a budget lease set against others is set again
    object_permission: tuple[Any, Any] = (None, None)  # the key's and its team's object_permission
