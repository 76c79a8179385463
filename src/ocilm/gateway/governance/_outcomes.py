"""What the store answers besides data, importable without the database libraries (the gateway
loads SQLAlchemy and the drivers only when it has a database)."""

from __future__ import annotations

from dataclasses import dataclass


class StoreUnavailable(Exception):
    """The database cannot be reached (governed requests fail closed with 503)."""


class BudgetExceeded(Exception):
    def __init__(self, scope: str, max_budget: int, committed: int, held: int, estimate: int) -> None:
        super().__init__(scope)
        self.scope, self.max_budget, self.committed, self.held, self.estimate = scope, max_budget, committed, held, estimate


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
