"""A running count and token sum per rate-limit window, kept by triggers, so a decision on the
SQLite store (``--workers N`` without Redis) reads one row instead of every request in the window
(at 500 requests a second, 30,000 rows per decision: two workers served half of what one did).

The triggers see every change to ``ocilm_rate_window`` (a request admitted, its tokens reconciled,
an expired entry removed), so the totals cannot drift from the rows. PostgreSQL keeps no rate rows
(its replicas count in Redis): the table is made there too, without triggers, and stays empty.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

TRIGGERS = (
    """CREATE TRIGGER ocilm_rate_window_added AFTER INSERT ON ocilm_rate_window BEGIN
         INSERT INTO ocilm_rate_totals (ident, requests, tokens) VALUES (NEW.ident, 1, NEW.tokens)
         ON CONFLICT (ident) DO UPDATE SET requests = requests + 1, tokens = tokens + excluded.tokens;
       END""",
    """CREATE TRIGGER ocilm_rate_window_removed AFTER DELETE ON ocilm_rate_window BEGIN
         UPDATE ocilm_rate_totals SET requests = requests - 1, tokens = tokens - OLD.tokens WHERE ident = OLD.ident;
       END""",
    """CREATE TRIGGER ocilm_rate_window_changed AFTER UPDATE OF tokens ON ocilm_rate_window BEGIN
         UPDATE ocilm_rate_totals SET tokens = tokens - OLD.tokens + NEW.tokens WHERE ident = NEW.ident;
       END""",
)


def upgrade() -> None:
    op.create_table(
        "ocilm_rate_totals",
        sa.Column("ident", sa.String(300), primary_key=True),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute("INSERT INTO ocilm_rate_totals (ident, requests, tokens) "
                   "SELECT ident, count(*), coalesce(sum(tokens), 0) FROM ocilm_rate_window GROUP BY ident")  # fmt: skip
        for trigger in TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("ocilm_rate_window_added", "ocilm_rate_window_removed", "ocilm_rate_window_changed"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("ocilm_rate_totals")
