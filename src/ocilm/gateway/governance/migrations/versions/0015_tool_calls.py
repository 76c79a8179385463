"""The hosted-tool calls a request made (``file_search``, ``code_interpreter``, ``mcp``,
``web_search``), by type, in its spend-log row; on PostgreSQL, ``ocilm_settle_many`` writes them.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_OLD_SIGNATURE = ("text[], text[], text[], text[], text[], text[], integer[], integer[], bigint[], integer[], "
                  "double precision[], double precision[]")  # fmt: skip

# As 0003's, with each row's tool calls.
SETTLE_MANY = """
CREATE OR REPLACE FUNCTION ocilm_settle_many(p_request_ids text[], p_tokens text[], p_team_ids text[], p_models text[],
                                             p_deployments text[], p_routes text[], p_input_tokens integer[],
                                             p_output_tokens integer[], p_costs bigint[], p_statuses integer[],
                                             p_latencies double precision[], p_started double precision[],
                                             p_tool_calls text[])
RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
  logged integer;
BEGIN
  FOR n IN 1 .. coalesce(array_length(p_request_ids, 1), 0) LOOP
    INSERT INTO ocilm_spend_logs (request_id, token, team_id, model, deployment, route, input_tokens, output_tokens, cost, status,
                                  latency_ms, started_at, tool_calls)
      VALUES (p_request_ids[n], p_tokens[n], p_team_ids[n], p_models[n], p_deployments[n], p_routes[n], p_input_tokens[n],
              p_output_tokens[n], p_costs[n], p_statuses[n], p_latencies[n], p_started[n], p_tool_calls[n])
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
    with op.batch_alter_table("ocilm_spend_logs") as batch:
        batch.add_column(sa.Column("tool_calls", sa.String(256), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS ocilm_settle_many({_OLD_SIGNATURE})")
        op.execute(SETTLE_MANY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS ocilm_settle_many({_OLD_SIGNATURE}, text[])")
        op.execute(_settle_many_0003())
    with op.batch_alter_table("ocilm_spend_logs") as batch:
        batch.drop_column("tool_calls")


def _settle_many_0003() -> str:
    """Migration 0003's function, restored on downgrade."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).with_name("0003_batched_budgets.py")
    spec = importlib.util.spec_from_file_location("ocilm_migration_0003", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.SETTLE_MANY)
