from __future__ import annotations

import email.utils

from ocilm._retry import (
    BACKOFF_CAP,
    RETRY_AFTER_CAP,
    backoff_delay,
    new_retry_token,
    retry_after_seconds,
)


def test_retry_after_forms():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    now = 1_700_000_000.0
    assert retry_after_seconds(email.utils.formatdate(now + 7, usegmt=True), now=now) == 7.0
    assert retry_after_seconds(email.utils.formatdate(now - 7, usegmt=True), now=now) == 0.0


def test_backoff_grows_jitters_and_caps():
    assert backoff_delay(1, rand=1.0) == 0.5 and backoff_delay(1, rand=0.0) == 0.25
    assert backoff_delay(3, rand=1.0) == 2.0
    assert backoff_delay(20, rand=1.0) == BACKOFF_CAP
    assert backoff_delay(1, retry_after=2.0) == 2.0
    assert backoff_delay(1, retry_after=10_000) == RETRY_AFTER_CAP


def test_retry_token():
    token = new_retry_token()
    assert len(token) == 30 and token.isalnum() and token != new_retry_token()


def test_fault_header_round_trip():
    from ocilm.testing import Fault

    for fault in (Fault(cut_after=0), Fault(status=400, match="needle"), Fault(status=429, retry_after="2", times=None), Fault(delay=0.5, stall_after=3, times=4),
                  Fault(malformed=True), Fault(status=502, raw_body="oops", action="chat")):
        assert Fault.parse(fault.header()) == fault
