"""Cooldowns shared by replicas never trust a replica's wall clock: a message carries a duration
(applied from now), a stored cooldown's time left is Redis's own (PTTL), and neither can make a
replica cool a deployment for longer than any cooldown can last."""

from __future__ import annotations

import json
import time

import pytest

from ocilm.gateway._routing_policy import MAX_COOLDOWN, RoutingSettings, RoutingState
from ocilm.gateway._routing_shared import SharedRouting


def _shared() -> tuple[SharedRouting, RoutingState]:
    state = RoutingState(RoutingSettings())
    return SharedRouting("redis://127.0.0.1:1/0", state), state


@pytest.mark.parametrize(("message", "left", "most"), [
    ({"id": "d", "seconds": 3600, "in_a_row": 1, "from": "other"}, None, MAX_COOLDOWN),  # a replica an hour ahead, or a bad value
    ({"id": "d", "seconds": 2, "in_a_row": 1, "from": "other"}, None, 2),
    ({"id": "d", "seconds": 30, "in_a_row": 1, "from": "other"}, 5.0, 5),  # stored: what Redis says is left wins
    ({"id": "d", "until": time.time() + 3600, "in_a_row": 1, "from": "other"}, None, 0),  # a wall-clock time is not trusted
    ({"id": "d", "seconds": float("nan"), "from": "other"}, None, 0),
    ({"id": "d", "seconds": 10, "in_a_row": 10**9, "from": "other"}, None, 10),
])  # fmt: skip
def test_another_replicas_cooldown_is_bounded(message, left, most):
    shared, state = _shared()
    shared._apply(json.dumps(message), left)
    remaining = state.of("d").cooldown_until - time.monotonic()
    assert remaining <= most + 0.01 and (remaining > most - 1 if most else remaining <= 0)
    assert state.of("d").cooldowns_in_a_row <= 32
