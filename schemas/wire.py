"""Bytes <-> events, with every failure turned into ``InvalidEvent(reason)``.

The reason codes are part of the dead-letter contract:
``oversize``, ``invalid_json``, ``unknown_kind``, ``unsupported_schema_version``,
``invalid_event`` (schema validation, including NaN/inf values).

No poison pills: whatever the bytes, decoding raises ``InvalidEvent`` and
nothing else -- not ``RecursionError`` (nesting deeper than ``MAX_DEPTH`` is
``invalid_json``), not ``ValueError`` (integers longer than ``MAX_INT_DIGITS``
digits are ``invalid_json``; floats that overflow to inf are refused by the
models, ``invalid_event``), not ``UnicodeDecodeError`` (``invalid_json``), not
``TypeError`` (a null Kafka value is ``invalid_json``). Lone UTF-16
surrogates in strings are refused by pydantic (``invalid_event``), so no
decoded event can fail to encode again. ``tests/unit/test_wire_fuzz.py``
checks this with hypothesis.

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

import orjson
from pydantic import BaseModel, ValidationError

from driftline.errors import InvalidEvent
from schemas.events import SCHEMA_VERSION, WIRE_MODELS

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 32
"""Deepest nesting of objects/arrays accepted (the deepest real event has 4 levels)."""
MAX_INT_DIGITS = 20
ORJSON_MAX_BRACKETS = 1_000
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * (MAX_INT_DIGITS + 1)
"""Payloads with more ``[``/``{`` than this are parsed by the standard library (see ``_loads``)."""
"""Longest integer literal accepted (a uint64 has 20 digits)."""

KINDS: dict[str, type[BaseModel]] = {m.model_fields["kind"].default: m for m in WIRE_MODELS}
"""``kind`` -> model: ``frame``, ``prediction``, ``label``, ``embedding``, ``alert``, ..."""

M = TypeVar("M", bound=BaseModel)


def encode(event: BaseModel) -> bytes:
    """Serialize an event to its wire form (compact UTF-8 JSON)."""
    return event.model_dump_json().encode()


def _parse_int(text: str) -> int:
    # Called by the JSON scanner only for integer literals (rare in events):
    # a 10,000-digit literal would otherwise cost quadratic time or raise
    # ValueError (Python's int-string conversion limit).
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _NumberTooLarge(f"integer literal of {len(text)} digits")
    return int(text)


class _NumberTooLarge(ValueError):
    """An integer literal longer than the decoder accepts (a CPU-time bomb for int())."""


def _too_deep(obj: object, limit: int = MAX_DEPTH) -> bool:
    """True if containers nest deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[object, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        for child in children:  # type: ignore[attr-defined]
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def short_repr(value: object, limit: int = 80) -> str:
    """``repr`` for error messages: scalars shortened, containers by type only.

    >>> short_repr("x" * 100)[:12], short_repr([[[]]])
    ("'xxxxxxxxxxx", 'a list')
    """
    if isinstance(value, str | int | float | bool) or value is None:
        text = repr(value)
        return text if len(text) <= limit else text[:limit] + "..."
    return f"a {type(value).__name__}"


def _loads(raw: bytes, max_bytes: int) -> dict[str, Any]:
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise InvalidEvent(f"payload is {type(raw).__name__}, not bytes (a null Kafka value?)",
                           reason="invalid_json")
    if len(raw) > max_bytes:
        raise InvalidEvent(f"payload of {len(raw)} bytes exceeds {max_bytes}", reason="oversize")
    # Bracket count first (C speed): only a payload with more brackets than
    # the depth limit can nest too deep, so the walk below is rare.
    brackets = raw.count(b"[") + raw.count(b"{")
    # orjson first (3x faster on a 512-float vector). It refuses a superset
    # of what the guards below refuse (NaN/Infinity literals, lone
    # surrogates, integers beyond 64 bits): those payloads take the standard
    # library's path, so their reason codes stay what they were. It is given
    # only payloads with at most ORJSON_MAX_BRACKETS brackets: orjson 3.8
    # overflows its stack (a segfault, not an exception) on ~100,000 levels.
    # Nor an integer literal longer than MAX_INT_DIGITS: orjson reads one
    # beyond 64 bits as a float, where the guard wants ``invalid_json``.
    obj = None
    if (brackets <= ORJSON_MAX_BRACKETS
            and _LONG_DIGITS not in bytes(raw).translate(_DIGITS_AS_ZERO)):
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
    if obj is None:
        obj = _slow_loads(raw)
    if not isinstance(obj, dict):
        raise InvalidEvent("top-level JSON value is not an object", reason="invalid_json")
    if brackets > MAX_DEPTH and _too_deep(obj):
        raise InvalidEvent(f"invalid JSON: nested deeper than {MAX_DEPTH} levels",
                           reason="invalid_json")
    version = obj.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION or isinstance(version, bool | float):
        raise InvalidEvent(
            f"schema_version {short_repr(version)} is not supported"
            f" (this build reads {SCHEMA_VERSION})",
            reason="unsupported_schema_version",
        )
    return obj


def _slow_loads(raw: bytes | bytearray | memoryview) -> Any:
    try:
        return json.loads(bytes(raw), parse_int=_parse_int)
    except RecursionError:
        raise InvalidEvent(f"invalid JSON: nested deeper than {MAX_DEPTH} levels",
                           reason="invalid_json") from None
    except _NumberTooLarge as exc:
        raise InvalidEvent(f"invalid JSON: {exc} (at most {MAX_INT_DIGITS})",
                           reason="invalid_json") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise InvalidEvent(f"invalid JSON: {exc}"[:500], reason="invalid_json") from None


def decode_event(raw: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> BaseModel:
    """Decode any wire event by its ``kind`` field."""
    obj = _loads(raw, max_bytes)
    kind = obj.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise InvalidEvent(f"unknown event kind {short_repr(kind)}", reason="unknown_kind")
    return _validate(model, obj)


def decode_as(model: type[M], raw: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> M:
    """Decode bytes that must be one given event type (``kind`` may be omitted)."""
    obj = _loads(raw, max_bytes)
    expected = model.model_fields["kind"].default
    kind = obj.setdefault("kind", expected)
    if kind != expected:
        raise InvalidEvent(f"expected kind {expected!r}, got {short_repr(kind)}",
                           reason="unknown_kind")
    return _validate(model, obj)


def _validate(model: type[M], obj: dict[str, Any]) -> M:
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidEvent(
            f"{model.__name__} failed validation at {where[:200] or '<root>'}: "
            f"{first['msg'][:300]} ({exc.error_count()} error(s))",
            reason="invalid_event",
        ) from exc
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        # A validator that raised something pydantic does not wrap: still bad input.
        raise InvalidEvent(f"{model.__name__} failed validation: {type(exc).__name__}",
                           reason="invalid_event") from exc
