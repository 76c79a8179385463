"""PostgreSQL: budget leases, so that a replica admits most requests without a round trip.

A lease is a row of ``ocilm_holds`` (its ``request_id`` is ``lease:<replica>:<token>``) whose
amount the replica sets, absolutely, to what its requests in flight may still cost plus some room
for the next ones. Setting it is checked exactly as a hold is: the key's and team's rows locked,
team first, every other live hold summed, so the budget's spend plus every hold and lease never
passes ``max_budget``. The room it adds is at most an eighth of what the budget has left, so a
few replicas cannot take all of it. A lease set to 0 is removed (given back).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

LEASE = """
CREATE OR REPLACE FUNCTION ocilm_lease(p_lease_id text, p_token text, p_team_id text, p_need bigint, p_slack bigint,
                                       p_now double precision, p_ttl double precision)
RETURNS TABLE(scope text, max_budget bigint, spend bigint, held bigint, granted bigint)
LANGUAGE plpgsql AS $$
DECLARE
  k_max bigint; k_spend bigint; k_duration text; k_reset double precision;
  t_max bigint; t_spend bigint; t_duration text; t_reset double precision;
  k_held bigint; t_held bigint; room bigint; amount bigint;
BEGIN
  IF p_need <= 0 THEN  -- given back: nothing to check, even for a budget already spent past its end
    DELETE FROM ocilm_holds WHERE request_id = p_lease_id;
    RETURN QUERY SELECT NULL::text, NULL::bigint, NULL::bigint, NULL::bigint, 0::bigint; RETURN;
  END IF;
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
    FROM ocilm_holds h WHERE (h.token = p_token OR h.team_id = p_team_id) AND h.expires_at > p_now AND h.request_id <> p_lease_id;
  IF k_max IS NOT NULL AND k_spend + k_held + p_need > k_max THEN
    RETURN QUERY SELECT 'key'::text, k_max, k_spend, k_held, 0::bigint; RETURN;
  END IF;
  IF t_max IS NOT NULL AND t_spend + t_held + p_need > t_max THEN
    RETURN QUERY SELECT 'team'::text, t_max, t_spend, t_held, 0::bigint; RETURN;
  END IF;
  IF k_max IS NOT NULL THEN room := k_max - k_spend - k_held - p_need; END IF;
  IF t_max IS NOT NULL THEN room := least(coalesce(room, t_max - t_spend - t_held - p_need), t_max - t_spend - t_held - p_need); END IF;
  amount := p_need + least(p_slack, coalesce(room / 8, p_slack));
  INSERT INTO ocilm_holds (request_id, token, team_id, amount, expires_at) VALUES (p_lease_id, p_token, p_team_id, amount, p_now + p_ttl)
    ON CONFLICT (request_id) DO UPDATE SET token = EXCLUDED.token, team_id = EXCLUDED.team_id, amount = EXCLUDED.amount,
                                           expires_at = EXCLUDED.expires_at;
  RETURN QUERY SELECT NULL::text, k_max, k_spend, k_held, amount;
END
$$
"""

# One row per lease, in the arrays' order of positions.
LEASE_MANY = """
CREATE OR REPLACE FUNCTION ocilm_lease_many(p_lease_ids text[], p_tokens text[], p_team_ids text[], p_needs bigint[],
                                            p_slacks bigint[], p_now double precision, p_ttl double precision)
RETURNS TABLE(i integer, scope text, max_budget bigint, spend bigint, held bigint, granted bigint)
LANGUAGE plpgsql AS $$
BEGIN
  FOR n IN 1 .. coalesce(array_length(p_lease_ids, 1), 0) LOOP
    RETURN QUERY SELECT n, r.scope, r.max_budget, r.spend, r.held, r.granted
      FROM ocilm_lease(p_lease_ids[n], p_tokens[n], p_team_ids[n], p_needs[n], p_slacks[n], p_now, p_ttl) r;
  END LOOP;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(LEASE)
        op.execute(LEASE_MANY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ocilm_lease_many(text[], text[], text[], bigint[], bigint[], double precision, double precision)")
        op.execute("DROP FUNCTION IF EXISTS ocilm_lease(text, text, text, bigint, bigint, double precision, double precision)")
