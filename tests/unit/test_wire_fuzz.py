"""No poison pills: decoding and routing never raise anything but ``PermanentError``.

Property tests (hypothesis) over ``decode_event`` / ``decode_as`` and the
``Router``, with three kinds of input: arbitrary bytes, arbitrary JSON values
(nested, huge numbers, odd strings), and valid events with fields replaced by
arbitrary JSON. Plus the cases a previous session measured crashing the
worker: deep nesting (``RecursionError``), huge numbers, invalid UTF-8, a null
Kafka value, and a dead letter of an oversize payload that did not fit.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.errors import InvalidEvent, PermanentError
from processors.monitor import MonitorRegistry
from processors.router import Router, Source
from schemas.events import DeadLetter, Frame
from schemas.wire import MAX_DEPTH, decode_as, decode_event, encode

VALID: list[dict[str, Any]] = [
    {"kind": "label", "event_id": "l1", "stream_id": "cam-1", "target_event_id": "p1",
     "true_class": "cat"},
    {"kind": "prediction", "event_id": "p1", "stream_id": "cam-1", "model_version": "v1",
     "top_class": "cat", "confidence": 0.9, "scores": {"cat": 0.9, "dog": 0.1},
     "boxes": [{"cls": "cat", "score": 0.5, "xyxy": [0, 0, 10, 10]}], "frame_index": 3},
    {"kind": "embedding", "event_id": "e1", "stream_id": "cam-1", "frame_id": "f1",
     "vector": [0.1, 0.2, 0.3, 0.4], "quality": {"brightness": 0.5}},
    {"kind": "frame_error", "event_id": "x1", "stream_id": "cam-1", "frame_id": "f1",
     "reason": "undecodable_image"},
    {"kind": "command", "stream_id": "cam-1", "action": "rereference",
     "signals": ["quality.brightness"]},
    {"kind": "frame", "event_id": "fr1", "stream_id": "cam-1", "image": "aGVsbG8="},
]

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["\ud800", "cam:1", "", "rereference", "v1", "label", "command", "1e999"])
)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                               max_size=4),
    max_leaves=20,
)


def _dumps(value: Any) -> bytes:
    # allow_nan: NaN/Infinity literals are what a sloppy producer writes.
    # surrogatepass: lone surrogates reach the wire as raw (invalid) UTF-8.
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


@st.composite
def mutated_events(draw: st.DrawFn) -> bytes:
    doc = dict(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from([*doc, "schema_version", "kind", "extra", "ts"]))
        if draw(st.booleans()) and field in doc:
            del doc[field]
        else:
            doc[field] = draw(json_values)
    return _dumps(doc)


payloads = st.one_of(
    st.binary(max_size=512),
    json_values.map(_dumps),
    mutated_events(),
    st.sampled_from([json.dumps(v).encode() for v in VALID]),
)


def _check_decode(raw: bytes) -> None:
    try:
        event = decode_event(raw, max_bytes=64 * 1024)
    except PermanentError as exc:
        assert exc.reason and str(exc)
        return
    # Whatever decodes encodes again and decodes to the same event.
    assert decode_event(encode(event)) == event


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads)
def test_decode_event_raises_only_permanent_errors(raw: bytes) -> None:
    _check_decode(raw)


@settings(max_examples=300, deadline=None)
@given(payloads)
def test_decode_as_frame_raises_only_permanent_errors(raw: bytes) -> None:
    try:
        decode_as(Frame, raw)
    except PermanentError as exc:
        assert exc.reason


ROUTER = Router(MonitorRegistry())


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads, st.sampled_from(list(Source)))
def test_router_never_raises_for_any_bytes_and_source(raw: bytes, source: Source) -> None:
    routed = ROUTER.route(raw, source)
    for rejected in routed.rejected:
        assert rejected.reason and rejected.stage


@pytest.mark.parametrize("opener, closer", [(b"[", b"]"), (b'{"a":', b"}")])
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 900, 100_000])
def test_deep_nesting_is_invalid_json_not_a_recursion_error(opener, closer, depth):
    raw = opener * depth + b"1" + closer * depth
    wrapped = b'{"kind":"label","x":' + raw + b"}"
    for payload in (raw, wrapped):
        with pytest.raises(InvalidEvent) as info:
            decode_event(payload)
        assert info.value.reason == "invalid_json"
    assert ROUTER.route(wrapped, Source.FRAMES).rejected[0].reason == "invalid_json"


def test_nesting_within_the_limit_is_judged_by_the_schema():
    raw = b'{"kind":"label","meta":' + b"[" * 20 + b"]" * 20 + b"}"
    with pytest.raises(InvalidEvent) as info:
        decode_event(raw)
    assert info.value.reason == "invalid_event"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"kind":"label","frame_index":' + b"9" * 5000 + b"}", "invalid_json"),
        (b'{"kind":"label","frame_index":-' + b"9" * 30 + b"}", "invalid_json"),
        (b'{"schema_version":' + b"1" * 4400 + b"}", "invalid_json"),
        (b'{"kind":"embedding","event_id":"e","stream_id":"c","frame_id":"f","vector":[1e999]}',
         "invalid_event"),
        (b'{"kind":"prediction","event_id":"p","stream_id":"c","top_class":"x","confidence":0.5,'
         b'"boxes":[{"cls":"a","score":0.5,"xyxy":[1e999,0,0,0]}]}', "invalid_event"),
        (b'{"kind":"label","event_id":"\xff\xfe","stream_id":"c"}', "invalid_json"),
        (b'{"kind":"label","event_id":"l\\ud800","stream_id":"c","target_event_id":"p",'
         b'"true_class":"x"}', "invalid_event"),
        (b"", "invalid_json"),
        (b"null", "invalid_json"),
        (b'"a string"', "invalid_json"),
        (b"123", "invalid_json"),
        (b'{"schema_version": true, "kind": "label"}', "unsupported_schema_version"),
        (b'{"kind": [[[["deep"]]]]}', "unknown_kind"),
    ],
)
def test_measured_poison_pills_have_a_reason(raw, reason):
    with pytest.raises(InvalidEvent) as info:
        decode_event(raw)
    assert info.value.reason == reason
    assert len(str(info.value)) < 1000


def test_a_null_kafka_value_is_invalid_json_not_a_type_error():
    with pytest.raises(InvalidEvent) as info:
        decode_event(None)  # type: ignore[arg-type]
    assert info.value.reason == "invalid_json"
    assert ROUTER.route(None, Source.INPUTS).rejected[0].reason == "invalid_json"  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [8 * 1024 * 1024 + 1, 20 * 1024 * 1024])
def test_an_oversize_payload_dead_letters_within_the_limit(size):
    limit = 8 * 1024 * 1024
    original = b'{"kind":"frame","image":"' + b"A" * (size - 27) + b'"}'
    with pytest.raises(InvalidEvent) as info:
        decode_event(original, max_bytes=limit)
    assert info.value.reason == "oversize"
    letter = DeadLetter.bounded(
        original=original, detail=str(info.value), max_event_bytes=limit, reason="oversize",
        source_topic="p.frames", source_partition=0, source_offset=7, key=b"k" * 5000,
        stage="embedder")
    wire = encode(letter)
    assert len(wire) <= limit
    back = decode_as(DeadLetter, wire, max_bytes=limit)
    assert back.truncated and back.original_size == len(original)
    assert back.original_sha256 == hashlib.sha256(original).hexdigest()
    assert original.startswith(back.original) and len(back.original) > limit // 2
    assert back.key is not None and len(back.key) == 1024
    assert "truncated from" in back.detail


def test_a_dead_letter_with_a_detail_full_of_escapes_still_fits():
    limit = 64 * 1024
    letter = DeadLetter.bounded(original=b"\x00" * 100_000, detail="\x01" * 10_000,
                                max_event_bytes=limit, reason="invalid_json",
                                source_topic="t", stage="monitor")
    assert len(encode(letter)) <= limit


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=5000),
       st.text(st.characters(codec=None, exclude_categories=[]), max_size=3000),
       st.integers(1024, 16384),
       st.binary(max_size=3000) | st.none())
def test_a_dead_letter_always_fits_its_limit(original, detail, limit, key):
    letter = DeadLetter.bounded(original=original, detail=detail, max_event_bytes=limit,
                                key=key, reason="invalid_json", source_topic="t", stage="s")
    assert len(encode(letter)) <= limit
    assert letter.original_size == len(original)
    assert original.startswith(letter.original)


def test_a_small_dead_letter_keeps_its_original_whole():
    letter = DeadLetter.bounded(original=b"{bad", detail="invalid JSON", max_event_bytes=1 << 20,
                                reason="invalid_json", source_topic="t", stage="monitor")
    assert letter.original == b"{bad" and not letter.truncated and letter.original_size == 4
