"""Hosted-tool calls as money, the pure parts: prices read from ``model_info`` (or refused with
the reason), calls counted from a Responses reply, the worst case a hold covers, and a background
response never seen to end settled at that worst case, its priced tool calls included."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from ocilm.gateway._background import BackgroundSettlements
from ocilm.gateway.governance._policy import Price
from ocilm.gateway.governance._tool_calls import (
    as_column,
    calls_nano,
    count_calls,
    parse_prices,
    responses_usage,
    worst_calls,
)


def test_prices_are_read_per_call_and_litellm_per_thousand_is_divided():
    problems: list[str] = []
    prices = parse_prices({"code_interpreter_cost_per_call": 0.03, "file_search_cost_per_1k_calls": 2.5}, "m", problems)
    assert problems == []
    assert dict(prices) == {"code_interpreter": 0.03, "file_search": 0.0025}


@pytest.mark.parametrize(("info", "named"), [
    ({"mcp_cost_per_call": -1}, "mcp_cost_per_call"),
    ({"mcp_cost_per_call": True}, "mcp_cost_per_call"),
    ({"web_search_cost_per_call": float("nan")}, "web_search_cost_per_call"),
    ({"web_search_cost_per_call": "0.1"}, "web_search_cost_per_call"),
    ({"file_search_cost_per_call": 1, "file_search_cost_per_1k_calls": 1}, "priced twice"),
    ({"code_interpreter_cost_per_session": 0.03}, "code_interpreter_cost_per_session: not supported"),
    ({"search_context_cost_per_query": {"low": 1}}, "search_context_cost_per_query: not supported"),
])  # fmt: skip
def test_a_bad_or_unsupported_price_is_refused_by_name(info, named):
    problems: list[str] = []
    parse_prices(info, "model_list[0].model_info", problems)
    assert len(problems) == 1 and named in problems[0] and problems[0].startswith("model_list[0].model_info.")


def test_calls_are_counted_by_type_from_the_output_and_billed():
    reply = {
        "output": [{"type": "file_search_call"}, {"type": "file_search_call"}, {"type": "message"},
                   {"type": "code_interpreter_call"}, {"type": "mcp_list_tools"}, {"type": "mcp_call"}, "junk", None],
        "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
    }  # fmt: skip
    assert count_calls(reply["output"]) == {"file_search": 2, "code_interpreter": 1, "mcp": 1}
    usage = responses_usage(reply)
    assert usage is not None and usage["prompt_tokens"] == 10 and usage["completion_tokens"] == 5
    assert usage["tool_calls"] == {"file_search": 2, "code_interpreter": 1, "mcp": 1}
    assert as_column(usage["tool_calls"]) == '{"code_interpreter":1,"file_search":2,"mcp":1}'
    price = Price(0.0, 0.0, per_tool_call=(("code_interpreter", 0.5), ("file_search", 0.25)))
    assert price.nano(10, 5, usage["tool_calls"]) == 1_000_000_000  # 2 x 0.25 + 0.5; mcp unpriced
    assert calls_nano(price.per_tool_call, {"file_search": -5}) == 0  # a hostile count bills nothing, never a credit


def test_the_worst_case_is_the_dearest_offered_tool_at_every_call():
    prices = (("code_interpreter", 0.5), ("file_search", 0.25))
    assert worst_calls(prices, {"file_search", "code_interpreter"}, 4) == {"code_interpreter": 4}
    price = Price(0.0, 0.0, per_tool_call=prices)
    assert price.worst_tools_nano({"file_search", "code_interpreter"}, 4) == 2_000_000_000
    assert price.worst_tools_nano({"file_search"}, 4) == 1_000_000_000
    assert worst_calls(prices, {"mcp"}, 4) == {} and price.worst_tools_nano(set(), 4) == 0


class _Meter:
    def __init__(self) -> None:
        self.settled: list[dict] = []
        self.request_id = "req-1"

    async def settle(self, **fields):
        self.settled.append(fields)
        return 1.0


class _NeverEnds:
    async def get_responses(self, response_id, **params):
        return {"id": response_id, "status": "in_progress"}


async def test_a_background_response_never_seen_to_end_is_settled_with_its_worst_tool_calls():
    gate = SimpleNamespace(hold_seconds=0.05, later=lambda task: None)
    settlements = BackgroundSettlements(gate, _NeverEnds(), poll_first=0.01, poll_most=0.01)
    meter = _Meter()
    settlements.track("resp_1", meter, SimpleNamespace(params={}), (100, 50), None, {"code_interpreter": 4})
    while settlements.pending:  # the hold runs out, then it is settled
        await asyncio.sleep(0.01)
    assert meter.settled == [{"deployment": meter.settled[0]["deployment"],
                              "usage": {"prompt_tokens": 100, "completion_tokens": 50, "tool_calls": {"code_interpreter": 4}}}]


async def test_a_background_response_without_priced_tools_is_settled_at_its_token_worst_case():
    gate = SimpleNamespace(hold_seconds=0.05, later=lambda task: None)
    settlements = BackgroundSettlements(gate, _NeverEnds(), poll_first=0.01, poll_most=0.01)
    meter = _Meter()
    settlements.track("resp_2", meter, SimpleNamespace(params={}), (100, 50), None)
    while settlements.pending:
        await asyncio.sleep(0.01)
    assert meter.settled[0]["estimated"] == (100, 50) and "usage" not in meter.settled[0]


def test_calls_are_bounded_when_any_deployment_prices_an_offered_tool():
    from ocilm.gateway._errors import GatewayError
    from ocilm.gateway._responses_api import bound_hosted_calls

    tools = [{"type": "file_search", "vector_store_ids": ["vs_1"]}]
    unpriced: dict = {"tools": tools}
    bound_hosted_calls(unpriced, frozenset({"code_interpreter"}), 20)
    assert "max_tool_calls" not in unpriced  # nothing offered is priced: the caller's call
    priced: dict = {"tools": tools}
    bound_hosted_calls(priced, frozenset({"file_search"}), 20)  # priced by a fallback's deployment, say
    assert priced["max_tool_calls"] == 20
    for bad in (0, -1, True, 2.5, "3"):
        with pytest.raises(GatewayError) as refused:
            bound_hosted_calls({"tools": tools, "max_tool_calls": bad}, frozenset(), 20)
        assert refused.value.status == 400 and "max_tool_calls" in str(refused.value)
    with pytest.raises(GatewayError, match="at most 20"):
        bound_hosted_calls({"tools": tools, "max_tool_calls": 21}, frozenset({"file_search"}), 20)
