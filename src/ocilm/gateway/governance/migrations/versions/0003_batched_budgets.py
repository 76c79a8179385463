"""PostgreSQL: holds and settlements of many requests in one call, in one lock order.

A gateway process sends the holds (and the settlements) that arrive while one call is in flight
together in the next, so one round trip serves many requests. Every path takes row locks in one
global order, team row before key rows, teams and keys in ascending id order (the caller sorts
the batch by team id, then token, teamless keys first), so batches of different replicas never
deadlock each other.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# As 0002's, with the team's row locked before the key's.
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
  IF p_team_id IS NOT NULL THEN
    SELECT t.max_budget, t.spend, t.budget_duration, t.budget_reset_at INTO t_max, t_spend, t_duration, t_reset
      FROM ocilm_teams t WHERE t.team_id = p_team_id FOR UPDATE;
  END IF;
  SELECT k.max_budget, k.spend, k.budget_duration, k.budget_reset_at INTO k_max, k_spend, k_duration, k_reset
    FROM ocilm_keys k WHERE k.token = p_token FOR UPDATE;
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

# One row per refused hold: its position in the arrays and why.
RESERVE_MANY = """
CREATE OR REPLACE FUNCTION ocilm_reserve_many(p_request_ids text[], p_tokens text[], p_team_ids text[], p_estimates bigint[],
                                              p_now double precision, p_ttl double precision)
RETURNS TABLE(i integer, scope text, max_budget bigint, spend bigint, held bigint)
LANGUAGE plpgsql AS $$
BEGIN
  FOR n IN 1 .. coalesce(array_length(p_request_ids, 1), 0) LOOP
    RETURN QUERY SELECT n, r.scope, r.max_budget, r.spend, r.held
      FROM ocilm_reserve(p_request_ids[n], p_tokens[n], p_team_ids[n], p_estimates[n], p_now, p_ttl) r;
  END LOOP;
END
$$
"""

# The request ids whose log rows are new; a request settled before changes nothing again.
SETTLE_MANY = """
CREATE OR REPLACE FUNCTION ocilm_settle_many(p_request_ids text[], p_tokens text[], p_team_ids text[], p_models text[],
                                             p_deployments text[], p_routes text[], p_input_tokens integer[],
                                             p_output_tokens integer[], p_costs bigint[], p_statuses integer[],
                                             p_latencies double precision[], p_started double precision[])
RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
  logged integer;
BEGIN
  FOR n IN 1 .. coalesce(array_length(p_request_ids, 1), 0) LOOP
    INSERT INTO ocilm_spend_logs (request_id, token, team_id, model, deployment, route, input_tokens, output_tokens, cost, status,
                                  latency_ms, started_at)
      VALUES (p_request_ids[n], p_tokens[n], p_team_ids[n], p_models[n], p_deployments[n], p_routes[n], p_input_tokens[n],
              p_output_tokens[n], p_costs[n], p_statuses[n], p_latencies[n], p_started[n])
      ON CONFLICT (request_id) DO NOTHING;
    GET DIAGNOSTICS logged = ROW_COUNT;
    IF logged > 0 THEN
      IF coalesce(p_costs[n], 0) > 0 THEN
        IF p_team_ids[n] IS NOT NULL THEN
          UPDATE ocilm_teams SET spend = spend + p_costs[n] WHERE team_id = p_team_ids[n];
        END IF;
        IF p_tokens[n] IS NOT NULL THEN
          UPDATE ocilm_keys SET spend = spend + p_costs[n] WHERE token = p_tokens[n];
        END IF;
      END IF;
      RETURN NEXT p_request_ids[n];
    END IF;
    DELETE FROM ocilm_holds WHERE request_id = p_request_ids[n];
  END LOOP;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(RESERVE)
        op.execute(RESERVE_MANY)
        op.execute(SETTLE_MANY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ocilm_settle_many(text[], text[], text[], text[], text[], text[], integer[], integer[], "
                   "bigint[], integer[], double precision[], double precision[])")  # fmt: skip
        op.execute(
            "DROP FUNCTION IF EXISTS ocilm_reserve_many(text[], text[], text[], bigint[], double precision, double precision)"
        )
