"""Bytes <-> events, with every failure turned into ``InvalidEvent(reason)``.

The reason codes are part of the dead-letter contract:
``oversize``, ``invalid_json``, ``unknown_kind``, ``unsupported_schema_version``,
``invalid_event`` (schema validation, including NaN/inf values).

Examples
--------
>>> e = decode_event(b'{"kind":"label","event_id":"l1","stream_id":"cam-1",'
...                  b'"target_event_id":"p1","true_class":"cat"}')
>>> type(e).__name__, e.true_class
('Label', 'cat')
>>> decode_event(b'{"kind":"label"')
Traceback (most recent call last):
...
driftline.errors.InvalidEvent: invalid JSON: ...
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from driftline.errors import InvalidEvent
from schemas.events import SCHEMA_VERSION, WIRE_MODELS

DEFAULT_MAX_BYTES = 8 * 1024 * 1024

KINDS: dict[str, type[BaseModel]] = {m.model_fields["kind"].default: m for m in WIRE_MODELS}
"""``kind`` -> model: ``frame``, ``prediction``, ``label``, ``embedding``, ``alert``, ..."""

M = TypeVar("M", bound=BaseModel)


def encode(event: BaseModel) -> bytes:
    """Serialize an event to its wire form (compact UTF-8 JSON)."""
    return event.model_dump_json().encode()


def _loads(raw: bytes, max_bytes: int) -> dict[str, Any]:
    if len(raw) > max_bytes:
        raise InvalidEvent(f"payload of {len(raw)} bytes exceeds {max_bytes}", reason="oversize")
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent(f"invalid JSON: {exc}", reason="invalid_json") from exc
    if not isinstance(obj, dict):
        raise InvalidEvent("top-level JSON value is not an object", reason="invalid_json")
    version = obj.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise InvalidEvent(
            f"schema_version {version!r} is not supported (this build reads {SCHEMA_VERSION})",
            reason="unsupported_schema_version",
        )
    return obj


def decode_event(raw: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> BaseModel:
    """Decode any wire event by its ``kind`` field."""
    obj = _loads(raw, max_bytes)
    kind = obj.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise InvalidEvent(f"unknown event kind {kind!r}", reason="unknown_kind")
    return _validate(model, obj)


def decode_as(model: type[M], raw: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> M:
    """Decode bytes that must be one given event type (``kind`` may be omitted)."""
    obj = _loads(raw, max_bytes)
    expected = model.model_fields["kind"].default
    kind = obj.setdefault("kind", expected)
    if kind != expected:
        raise InvalidEvent(f"expected kind {expected!r}, got {kind!r}", reason="unknown_kind")
    return _validate(model, obj)


def _validate(model: type[M], obj: dict[str, Any]) -> M:
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidEvent(
            f"{model.__name__} failed validation at {where or '<root>'}: {first['msg']}"
            f" ({exc.error_count()} error(s))",
            reason="invalid_event",
        ) from exc
