"""Checkpoint field types (``processors.detectors.state``): exact, strict JSON, strict input."""

from __future__ import annotations

import json
import math
import struct
from typing import Literal

import numpy as np
import pytest
import river

from processors.detectors.state import (
    Audit,
    Bits,
    Float,
    FloatList,
    FloatOrNull,
    Packed,
    RiverVersion,
    StateModel,
    StateVersionError,
)


class Demo(StateModel):
    type: Literal["demo"] = "demo"
    version: Literal[1] = 1
    x: Float = 0.0
    xs: FloatList = []
    maybe: FloatOrNull = math.nan
    a: Packed = np.zeros(0)
    bits: Bits = []
    audit: Audit = {}
    river_version: RiverVersion = river.__version__


def _roundtrip(**fields) -> Demo:
    dumped = Demo(**fields).model_dump(mode="json")
    return Demo.load(json.loads(json.dumps(dumped, allow_nan=False)))


def _bits_of(x: float) -> bytes:
    return struct.pack("<d", x)


@pytest.mark.parametrize("x", [0.1, -0.0, 5e-324, 1e308, math.inf, -math.inf])
def test_floats_come_back_bit_for_bit(x: float) -> None:
    back = _roundtrip(x=x, xs=[x, 1.0], a=np.array([x, x]))
    assert _bits_of(back.x) == _bits_of(x)
    assert [_bits_of(v) for v in back.xs] == [_bits_of(x), _bits_of(1.0)]
    assert back.a.tobytes() == np.array([x, x]).tobytes()


def test_nan_and_infinities_are_strict_json_tokens() -> None:
    d = Demo(x=math.nan, xs=[math.inf, 1.0], maybe=math.nan).model_dump(mode="json")
    assert (d["x"], d["xs"], d["maybe"]) == ("nan", ["inf", 1.0], None)
    back = Demo.load(d)
    assert math.isnan(back.x) and back.xs == [math.inf, 1.0] and math.isnan(back.maybe)


def test_packed_keeps_nan_payloads_and_refuses_garbage() -> None:
    weird = np.frombuffer(struct.pack("<Q", 0x7FF8_0000_0000_0123), dtype="<f8")
    assert _roundtrip(a=weird).a.tobytes() == weird.tobytes()
    assert _roundtrip(a=[0.5, "inf"]).a.tolist() == [0.5, math.inf]  # lists are accepted too
    for bad in ("not base64!", "AAAA", [[1.0]], {"a": 1}):
        with pytest.raises(StateVersionError, match=r"^demo state: a: "):
            Demo.load({"type": "demo", "version": 1, "a": bad})


def test_bits_audit_and_river_version() -> None:
    audit = {"fit": {"slope": math.nan, "n": np.int64(3)}, "ar": (0.5, np.float64(0.25))}
    d = Demo(bits=[True, False, True], audit=audit).model_dump(mode="json")
    assert d["bits"] == "101"
    assert d["audit"] == {"fit": {"slope": "nan", "n": 3}, "ar": [0.5, 0.25]}
    json.dumps(d, allow_nan=False)
    assert Demo.load(d).bits == [True, False, True]
    with pytest.raises(StateVersionError, match="bits"):
        Demo.load({**d, "bits": "10x"})
    with pytest.raises(StateVersionError, match=r"river_version: .*written by river '0\.0\.1'"):
        Demo.load({**d, "river_version": "0.0.1"})


def test_header_and_field_errors_name_what_does_not_fit() -> None:
    d = Demo().model_dump(mode="json")
    with pytest.raises(StateVersionError, match="state of 'other' given to 'demo'"):
        Demo.load({**d, "type": "other"})
    with pytest.raises(StateVersionError, match="version 2 not supported"):
        Demo.load({**d, "version": 2})
    with pytest.raises(StateVersionError, match="extra: Extra inputs are not permitted"):
        Demo.load({**d, "extra": 1})
    with pytest.raises(StateVersionError, match="x: Value error, not a float: 'big'"):
        Demo.load({**d, "x": "big"})
    with pytest.raises(StateVersionError, match="must be an object"):
        Demo.load([1, 2])  # type: ignore[arg-type]
    assert Demo.load({k: v for k, v in d.items() if k != "type"}).type == "demo"
