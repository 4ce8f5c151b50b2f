"""Wire events: round trips, committed JSON Schemas, and every rejection reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from driftline.errors import InvalidEvent
from schemas.events import (
    Alert,
    Command,
    DeadLetter,
    Embedding,
    Frame,
    Label,
    Prediction,
    StreamState,
)
from schemas.export import JSON_DIR, schema_texts
from schemas.wire import decode_as, decode_event, encode

TS = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
COMMON = {"stream_id": "cam-1", "model_version": "v1", "ts": TS}

EVENTS = [
    Frame(event_id="f1", image=b"\xff\xd8\xff\x00binary", content_type="image/jpeg", **COMMON),
    Frame(event_id="f2", uri="file:///tmp/x.jpg", **COMMON),
    Prediction(event_id="p1", top_class="tabby", confidence=0.9, scores={"tabby": 0.9},
               embedding=[0.1, 0.2], frame_id="f1", **COMMON),
    Label(event_id="l1", target_event_id="p1", true_class="tabby", **COMMON),
    Embedding(event_id="e1", frame_id="f1", vector=[0.5, 1.5], quality={"brightness": 100.0},
              **COMMON),
    Alert(alert_id="a1", stream_id="cam-1", model_version="v1", signal="quality.brightness",
          detector="cusum", message="m", statistic=12.0, threshold=10.0, detected_index=5,
          change_index=3, detected_event_id="e5", ts=TS),
    StreamState(stream_id="cam-1", model_version="v1", events_seen=3, ts=TS),
    DeadLetter(reason="invalid_json", detail="d", source_topic="t", original=b"\x00{", stage="s",
               ts=TS),
    Command(command_id="c1", stream_id="cam-1", model_version=None, action="rereference",
            signals=["quality.brightness"], requested_by="ops", ts=TS),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.kind)
def test_round_trip(event):
    assert decode_event(encode(event)) == event
    assert decode_as(type(event), encode(event)) == event


def test_bytes_stay_raw_in_python_and_base64_on_the_wire():
    frame = EVENTS[0]
    assert frame.image == b"\xff\xd8\xff\x00binary"
    wire = json.loads(encode(frame))
    assert wire["image"] == "/9j/AGJpbmFyeQ=="
    assert "\n" not in wire["image"]


def test_committed_json_schemas_are_current():
    for name, text in schema_texts().items():
        path = JSON_DIR / name
        assert path.exists(), f"{path} missing: run `make schemas`"
        assert path.read_text() == text, f"{path} is stale: run `make schemas`"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b'{"kind": "nope"}', "unknown_kind"),
        (b'{"kind": "label", "schema_version": 2}', "unsupported_schema_version"),
        (b'{"kind": "label", "stream_id": "c"}', "invalid_event"),
        (b'{"kind":"embedding","event_id":"e","stream_id":"c","frame_id":"f","vector":[NaN]}',
         "invalid_event"),
        (b'{"kind":"embedding","event_id":"e","stream_id":"c","frame_id":"f","vector":[]}',
         "invalid_event"),
        (b'{"kind":"embedding","event_id":"e","stream_id":"c","frame_id":"f","vector":[1],'
         b'"quality":{"blur":Infinity}}', "invalid_event"),
        (b'{"kind":"prediction","event_id":"p","stream_id":"c","top_class":"x",'
         b'"confidence":0.5,"scores":{"x":NaN}}', "invalid_event"),
        (b'{"kind":"prediction","event_id":"p","stream_id":"c","top_class":"x",'
         b'"confidence":0.5,"embedding":[-Infinity]}', "invalid_event"),
        (b'{"kind":"prediction","event_id":"p","stream_id":"c","top_class":"x",'
         b'"confidence":0.5,"embedding":[]}', "invalid_event"),
        (b'{"kind":"frame","event_id":"e","stream_id":"c","image":"***"}', "invalid_event"),
        (b'{"kind":"frame","event_id":"e","stream_id":"c"}', "invalid_event"),
        (b'{"kind":"label","event_id":"l","stream_id":"c","target_event_id":"p",'
         b'"true_class":"x","surprise":1}', "invalid_event"),
    ],
)
def test_rejections_carry_a_reason(raw, reason):
    with pytest.raises(InvalidEvent) as info:
        decode_event(raw)
    assert info.value.reason == reason


def test_oversize_is_rejected_before_parsing():
    with pytest.raises(InvalidEvent) as info:
        decode_event(b" " * 2048, max_bytes=1024)
    assert info.value.reason == "oversize"


def test_decode_as_refuses_another_kind():
    with pytest.raises(InvalidEvent) as info:
        decode_as(Frame, encode(EVENTS[3]))
    assert info.value.reason == "unknown_kind"


def test_naive_timestamps_are_refused():
    with pytest.raises(InvalidEvent):
        decode_event(b'{"kind":"label","event_id":"l","stream_id":"c","target_event_id":"p",'
                     b'"true_class":"x","ts":"2026-01-01T00:00:00"}')
