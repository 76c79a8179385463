"""PostgreSQL: the budget hold as one function call (one round trip instead of six).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Each statement of a PL/pgSQL function takes a fresh snapshot (READ COMMITTED): the holds are
# summed after the key's and team's rows are locked, so they include every hold committed by a
# request that held those locks before.
DURATION = """
CREATE OR REPLACE FUNCTION ocilm_duration_seconds(d text) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
  SELECT left(d, -1)::double precision * CASE right(d, 1) WHEN 's' THEN 1 WHEN 'm' THEN 60 WHEN 'h' THEN 3600 ELSE 86400 END
$$
"""

RESERVE = """
CREATE OR REPLACE FUNCTION ocilm_reserve(p_request_id text, p_token text, p_team_id text, p_estimate bigint,
                                         p_now double precision, p_ttl double precision)
RETURNS TABLE(scope text, max_budget bigint, spend bigint, held bigint)
LANGUAGE plpgsql AS $$
DECLARE
  k_max bigint; k_spend bigint; k_duration text; k_reset double precision;
  t_max bigint; t_spend bigint; t_duration text; t_reset double precision;
  k_held bigint; t_held bigint;
BEGIN
  SELECT k.max_budget, k.spend, k.budget_duration, k.budget_reset_at INTO k_max, k_spend, k_duration, k_reset
    FROM ocilm_keys k WHERE k.token = p_token FOR UPDATE;
  IF p_team_id IS NOT NULL THEN
    SELECT t.max_budget, t.spend, t.budget_duration, t.budget_reset_at INTO t_max, t_spend, t_duration, t_reset
      FROM ocilm_teams t WHERE t.team_id = p_team_id FOR UPDATE;
  END IF;
  IF k_max IS NOT NULL AND k_duration IS NOT NULL AND (k_reset IS NULL OR p_now >= k_reset) THEN
    IF k_reset IS NOT NULL THEN k_spend := 0; END IF;
    UPDATE ocilm_keys SET spend = k_spend, budget_reset_at = p_now + ocilm_duration_seconds(k_duration) WHERE token = p_token;
  END IF;
  IF t_max IS NOT NULL AND t_duration IS NOT NULL AND (t_reset IS NULL OR p_now >= t_reset) THEN
    IF t_reset IS NOT NULL THEN t_spend := 0; END IF;
    UPDATE ocilm_teams SET spend = t_spend, budget_reset_at = p_now + ocilm_duration_seconds(t_duration) WHERE team_id = p_team_id;
  END IF;
  SELECT COALESCE(SUM(h.amount) FILTER (WHERE h.token = p_token), 0),
         COALESCE(SUM(h.amount) FILTER (WHERE h.team_id = p_team_id), 0) INTO k_held, t_held
    FROM ocilm_holds h WHERE (h.token = p_token OR h.team_id = p_team_id) AND h.expires_at > p_now;
  IF k_max IS NOT NULL AND k_spend + k_held + p_estimate > k_max THEN
    RETURN QUERY SELECT 'key'::text, k_max, k_spend, k_held; RETURN;
  END IF;
  IF t_max IS NOT NULL AND t_spend + t_held + p_estimate > t_max THEN
    RETURN QUERY SELECT 'team'::text, t_max, t_spend, t_held; RETURN;
  END IF;
  INSERT INTO ocilm_holds (request_id, token, team_id, amount, expires_at) VALUES (p_request_id, p_token, p_team_id, p_estimate, p_now + p_ttl);
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DURATION)  # one statement per call: asyncpg prepares each
        op.execute(RESERVE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ocilm_reserve(text, text, text, bigint, double precision, double precision)")
        op.execute("DROP FUNCTION IF EXISTS ocilm_duration_seconds(text)")
