"""Budget durations read one way everywhere, and alert levels tied to the budget they announce.

``ocilm_duration_seconds`` now accepts exactly what the admin API's parser accepts (a whole
number from 1 to 999999999 and s, m, h or d) and answers NULL for anything else, so that a value
an older version let in (``"30d "``) leaves its budget without a window instead of failing every
hold of its key, and every batch-mate's. Such stored values are trimmed, or cleared if still
not durations. ``alert_budget`` records the budget an alert level was announced against: a raised
budget starts its thresholds anew.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DURATION_PATTERN = "^[1-9][0-9]{0,8}[smhd]$"  # the admin API's: ocilm.gateway.governance._policy._DURATION

DURATION = f"""
CREATE OR REPLACE FUNCTION ocilm_duration_seconds(d text) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN d ~ '{DURATION_PATTERN}' THEN
    left(d, -1)::double precision * CASE right(d, 1) WHEN 's' THEN 1 WHEN 'm' THEN 60 WHEN 'h' THEN 3600 ELSE 86400 END
  END
$$
"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in ("ocilm_keys", "ocilm_teams"):
        op.add_column(table, sa.Column("alert_budget", sa.BigInteger, nullable=True))
        op.execute(f"UPDATE {table} SET budget_duration = trim(budget_duration) WHERE budget_duration IS NOT NULL")
        if postgres:
            op.execute(f"UPDATE {table} SET budget_duration = NULL WHERE budget_duration !~ '{DURATION_PATTERN}'")
        else:  # SQLite has GLOB, not regular expressions: the same test spelled out
            op.execute(f"UPDATE {table} SET budget_duration = NULL WHERE NOT (length(budget_duration) BETWEEN 2 AND 10 "
                       "AND substr(budget_duration, -1) IN ('s', 'm', 'h', 'd') AND substr(budget_duration, 1, 1) GLOB '[1-9]' "
                       "AND substr(budget_duration, 1, length(budget_duration) - 1) NOT GLOB '*[^0-9]*')")  # fmt: skip
    if postgres:
        op.execute(DURATION)


def downgrade() -> None:
    for table in ("ocilm_keys", "ocilm_teams"):
        op.drop_column(table, "alert_budget")
