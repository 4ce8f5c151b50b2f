"""Packed embedding vectors (base64 float16/float32) decode like JSON lists."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pytest

from driftline.errors import InvalidEvent
from schemas.events import Embedding, Prediction
from schemas.vectors import pack_vector
from schemas.wire import decode_event, encode


def _prediction(embedding: object) -> bytes:
    return orjson.dumps({"kind": "prediction", "event_id": "p1", "stream_id": "cam-1",
                         "top_class": "car", "confidence": 0.5, "embedding": embedding})


def test_a_packed_vector_and_a_list_decode_to_the_same_vector() -> None:
    rng = np.random.default_rng(0)
    vec = rng.normal(size=512)
    as_f16 = vec.astype(np.float16).astype(np.float64)  # what float16 can carry
    for packed, expected in ((pack_vector(vec, "float16"), as_f16),
                             (pack_vector(vec, "float32"), vec.astype(np.float32))):
        from_packed = decode_event(_prediction(packed))
        from_list = decode_event(_prediction([float(x) for x in expected]))
        assert isinstance(from_packed, Prediction) and isinstance(from_list, Prediction)
        assert from_packed.embedding == from_list.embedding
        assert np.array_equal(np.array(from_packed.embedding), expected.astype(np.float64))
    # float16 is close to the original: ≤ 2^-11 relative.
    assert np.allclose(as_f16, vec, rtol=2 ** -11, atol=1e-7)
    # Re-encoded as a list: readers of the outputs see one format.
    again = orjson.loads(encode(decode_event(_prediction(pack_vector(vec)))))
    assert isinstance(again["embedding"], list)


def test_embedding_events_accept_packed_vectors_too() -> None:
    raw = orjson.dumps({"kind": "embedding", "event_id": "e1", "stream_id": "cam-1",
                        "frame_id": "f1", "vector": pack_vector([1.0, 2.0, 3.0])})
    event = decode_event(raw)
    assert isinstance(event, Embedding) and event.vector == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("embedding", [
    {"dtype": "float64", "data": ""},                                   # unknown dtype
    {"dtype": "float16", "data": "***"},                                 # not base64
    {"dtype": "float16", "data": base64.b64encode(b"abc").decode()},    # odd byte count
    {"dtype": "float16", "data": ""},                                   # empty vector
    {"dtype": "float16", "data": "AAA=", "extra": 1},                   # unknown field
    {"dtype": "float16", "data": base64.b64encode(np.array([np.inf], "<f2").tobytes()).decode()},
    {"dtype": "float32", "data": base64.b64encode(np.array([np.nan], "<f4").tobytes()).decode()},
    {"dtype": "float16", "data": 12},
])
def test_bad_packed_vectors_are_invalid_events(embedding: object) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_event(_prediction(embedding))
    assert info.value.reason == "invalid_event"


def test_the_json_schema_documents_both_forms() -> None:
    schema = Prediction.model_json_schema()
    text = orjson.dumps(schema).decode()
    assert '"float16"' in text and '"minItems":1' in text
