"""Packed embedding vectors: base64 float16/float32 on the wire, alongside JSON lists.

An edge device that sends a 512-d embedding as a JSON list writes ~4.5 KB of
decimal text the worker must parse number by number. Packed, the same vector
is ``{"dtype": "float16", "data": "<base64 of 1,024 bytes>"}`` (1.4 KB, one
base64 decode and one ``numpy.frombuffer``). float16 keeps ~3 significant
digits (relative error ≤ 2⁻¹¹), far below the spread of any embedding the
monitor compares; ``float32`` is there for vectors that need more. Values
that overflow float16 become inf and are refused like any non-finite number.

Examples
--------
>>> packed = pack_vector([0.5, -1.25, 3.0])
>>> packed["dtype"], unpack_vector(packed)
('float16', [0.5, -1.25, 3.0])
>>> unpack_vector([1.0, 2.0])  # a list passes through
[1.0, 2.0]
>>> unpack_vector({"dtype": "float64", "data": ""})
Traceback (most recent call last):
...
ValueError: packed vector dtype must be one of float16, float32
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import numpy as np

DTYPES: dict[str, np.dtype[Any]] = {"float16": np.dtype("<f2"), "float32": np.dtype("<f4")}
MAX_PACKED_CHARS = 8 * 1024 * 1024
"""Longest ``data`` accepted (the event size limit applies first anyway)."""

PACKED_VECTOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "dtype": {"enum": sorted(DTYPES)},
        "data": {"type": "string", "contentEncoding": "base64",
                 "description": "little-endian values, standard base64"},
    },
    "required": ["dtype", "data"],
    "additionalProperties": False,
}


def pack_vector(values: Sequence[float] | np.ndarray, dtype: str = "float16") -> dict[str, str]:
    """The packed wire form of ``values`` (for producers and the SDK)."""
    if dtype not in DTYPES:
        raise ValueError(f"packed vector dtype must be one of {', '.join(sorted(DTYPES))}")
    data = np.asarray(values, dtype=DTYPES[dtype]).tobytes()
    return {"dtype": dtype, "data": base64.b64encode(data).decode("ascii")}


def unpack_vector(value: object) -> object:
    """A packed vector as a list of floats; anything else unchanged (pydantic checks it)."""
    if not isinstance(value, dict):
        return value
    if set(value) != {"dtype", "data"}:
        raise ValueError("a packed vector has exactly the fields 'dtype' and 'data'")
    dtype, data = value["dtype"], value["data"]
    if dtype not in DTYPES:
        raise ValueError(f"packed vector dtype must be one of {', '.join(sorted(DTYPES))}")
    if not isinstance(data, str) or len(data) > MAX_PACKED_CHARS:
        raise ValueError("packed vector data must be a base64 string")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"packed vector data is not valid base64: {exc}") from None
    width = DTYPES[dtype].itemsize
    if len(raw) % width:
        raise ValueError(f"packed vector data is {len(raw)} bytes, not a multiple of {width}")
    out: list[float] = np.frombuffer(raw, dtype=DTYPES[dtype]).astype(np.float64).tolist()
    return out
