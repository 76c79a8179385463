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
