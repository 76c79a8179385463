from __future__ import annotations

import json

import pytest

from ocilm._sse import DONE, SSEDecoder

EVENTS = [{"index": 0, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": "Hé\nllo"}]}}, {"finishReason": "stop"}]


def _decode(chunks: list[bytes]) -> list:
    decoder = SSEDecoder()
    out: list = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out + decoder.flush()


def _canonical(sep: str = "\n\n") -> bytes:
    return "".join(f"data: {json.dumps(e, ensure_ascii=False)}{sep}" for e in EVENTS).encode() + f"data: [DONE]{sep}".encode()


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_events_split_across_reads(size):
    raw = _canonical()
    got = _decode([raw[i : i + size] for i in range(0, len(raw), size)])
    assert got[:-1] == EVENTS and got[-1] is DONE


@pytest.mark.parametrize("sep", ["\n", "\r\n\r\n", "\r\n", "\r\r", "\n\n\n"])
def test_separators(sep):
    got = _decode([_canonical(sep)])
    assert got[:-1] == EVENTS and got[-1] is DONE


def test_crlf_split_between_reads():
    raw = _canonical("\r\n\r\n")
    cut = raw.index(b"\r\n") + 1  # split between CR and LF
    assert len(_decode([raw[:cut], raw[cut:]])) == 3


def test_comments_other_fields_and_pad():
    raw = b': keep-alive\nevent: message\nid: 7\ndata: {"text": "a", "pad": "xxxx"}\n\nretry: 10\n\n'
    assert _decode([raw]) == [{"text": "a", "pad": "xxxx"}]


def test_missing_done_and_missing_final_newline():
    raw = b'data: {"a": 1}\n\ndata: {"b": 2}'
    assert _decode([raw]) == [{"a": 1}, {"b": 2}]


def test_multi_line_data_joined():
    raw = b'data: {"a":\ndata: 1}\n\n'
    assert _decode([raw]) == [{"a": 1}]


def test_data_without_space():
    assert _decode([b'data:{"a":1}\n']) == [{"a": 1}]


def test_torn_event_is_an_error():
    import pytest

    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a": \n') == []
    with pytest.raises(ValueError, match="not valid JSON"):
        decoder.feed(b"\n")


# ---------------------------------------------------------------- the SSE specification


def _every_split(raw: bytes) -> list:
    """Decode ``raw`` split into two reads at every byte; all splits must agree."""
    results = [_decode([raw[:i], raw[i:]]) for i in range(len(raw) + 1)]
    assert all(r == results[0] for r in results)
    return results[0]


@pytest.mark.parametrize("keepalive", [b"data:\n\n", b"data: \n\n", b"data:\r\n\r\n", b":\n\n", b": ping\n\n"])
def test_empty_data_and_comments_are_skipped(keepalive):
    raw = keepalive + b'data: {"a": 1}\n\n' + keepalive + b"data: [DONE]\n\n"
    assert _every_split(raw) == [{"a": 1}, DONE]


def test_event_id_retry_fields_are_ignored():
    raw = b'event: message\nid: 7\nretry: 1000\ndata: {"a": 1}\n\nevent: ping\n\ndata: [DONE]\n\n'
    assert _every_split(raw) == [{"a": 1}, DONE]


@pytest.mark.parametrize("sep", ["\n\n", "\r\n\r\n", "\n", "\r\r"])
def test_line_ends(sep):
    assert _every_split(_canonical(sep)) == [*EVENTS, DONE]


def test_multi_line_data_is_joined():
    raw = b'data: {"a":\ndata: 1}\n\ndata: {"b": 2}\n\n'
    assert _every_split(raw) == [{"a": 1}, {"b": 2}]


def test_large_event_and_missing_done():
    big = {"message": {"content": [{"type": "TEXT", "text": "x" * 70_000}]}}
    raw = f"data: {json.dumps(big)}\n\n".encode()
    for size in (1000, 4096, 70_000):
        assert _decode([raw[i : i + size] for i in range(0, len(raw), size)]) == [big]


def test_unbounded_line_is_an_error():
    from ocilm._sse import MAX_EVENT_BYTES

    decoder = SSEDecoder()
    with pytest.raises(ValueError, match="exceeds"):
        for _ in range(MAX_EVENT_BYTES // 65536 + 2):
            decoder.feed(b"data: " + b"x" * 65536)


def test_torn_multi_line_event_is_an_error():
    with pytest.raises(ValueError, match="not valid JSON"):
        _decode([b'data: {"a": \n\n'])
