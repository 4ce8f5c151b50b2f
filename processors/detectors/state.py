"""Typed, validated checkpoints: one pydantic model per detector, learner and signal.

Every checkpointable object declares its state as a pydantic model (a
``StateModel`` subclass with a ``type: Literal[...]`` discriminator and a
``version: Literal[n]``) and two small hooks; ``Checkpointable`` does the rest
once for all of them:

- ``obj.state()`` is ``obj._to_state().model_dump(mode="json")``: a strict-JSON
  dict (``json.dumps(..., allow_nan=False)`` succeeds) that survives
  ``json.dumps``/``json.loads`` bit for bit;
- ``Cls.from_state(d)`` validates ``d`` through the model and calls
  ``Cls._from_state(model)``. A checkpoint of another type, another version, a
  missing, extra or malformed field raises ``StateVersionError`` naming the
  field (the caller starts that object afresh).

Adding a field to a checkpoint is one line in the model plus the code that
reads and writes it (the hooks). The field types below carry the encodings:

- ``Float``: a float; ``inf``/``-inf``/``nan`` are written as the strings
  ``"inf"``/``"-inf"``/``"nan"`` (strict JSON parsers reject the bare tokens).
  Pydantic's ``ser_json_inf_nan="strings"`` (set below as well) covers only
  ``model_dump_json`` -- ``model_dump(mode="json")`` leaves the floats as they
  are (pydantic 2.13) -- and writes ``"Infinity"``, which would change the
  format of every existing checkpoint;
- ``FloatList``: a list of ``Float`` (converted per list, not per value);
- ``FloatOrNull``: a float whose ``nan`` ("not known yet") is written ``null``;
- ``Packed``: a float64 array as base64 of its little-endian bytes (exact, a
  third of the size of a JSON list); validates from that string, a list of
  floats or an array;
- ``Bits``: booleans as a string of ``0``/``1`` (a fraction of JSON booleans);
- ``Audit``: a JSON-safe audit dict (calibration records);
- ``RiverVersion``: the river version that wrote a river object's bytes;
  another version is refused (river's objects have no stable exchange format).

Examples
--------
>>> import math
>>> from typing import Literal
>>> class Demo(StateModel):
...     type: Literal["demo"] = "demo"
...     version: Literal[1] = 1
...     x: Float
...     a: Packed
...     flags: Bits
>>> d = Demo(x=-math.inf, a=[0.1, 2.0], flags=[True, False]).model_dump(mode="json")
>>> d
{'type': 'demo', 'version': 1, 'x': '-inf', 'a': 'mpmZmZmZuT8AAAAAAAAAQA==', 'flags': '10'}
>>> Demo.load(d).a.tolist()
[0.1, 2.0]
>>> Demo.load({**d, "version": 2})
Traceback (most recent call last):
...
processors.detectors.state.StateVersionError: demo state version 2 not supported ...
>>> Demo.load({**d, "x": "big"})
Traceback (most recent call last):
...
processors.detectors.state.StateVersionError: demo state: x: Value error, not a float: 'big'
"""

from __future__ import annotations

import abc
import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Generic, Self, TypeVar, cast

import numpy as np
import river
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    ValidationError,
)

__all__ = [
    "Audit",
    "Bits",
    "Checkpointable",
    "Float",
    "FloatList",
    "FloatOrNull",
    "NamedCheckpointable",
    "Packed",
    "RiverModelState",
    "RiverVersion",
    "StateModel",
    "StateVersionError",
    "load_with",
]


class StateVersionError(ValueError):
    """A checkpoint of another type, an unsupported version or a malformed field."""


# -- field types -----------------------------------------------------------------------

_TOKENS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _dump_float(x: float) -> float | str:
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _load_float(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return _TOKENS[v]
        except KeyError:
            raise ValueError(f"not a float: {v!r}") from None
    return v


def _dump_float_or_null(x: float) -> float | str | None:
    return None if math.isnan(x) else _dump_float(x)


def _load_float_or_null(v: Any) -> Any:
    return math.nan if v is None else _load_float(v)


Float = Annotated[
    float, BeforeValidator(_load_float), PlainSerializer(_dump_float, when_used="json")
]


def _load_floats(v: Any) -> Any:
    if isinstance(v, list | tuple) and str in set(map(type, v)):
        return [_load_float(x) for x in v]
    return v


def _dump_floats(v: list[float]) -> list[float | str]:
    if all(map(math.isfinite, v)):  # the common case, at C speed
        return list(v)
    return [_dump_float(x) for x in v]


# A list of ``Float``: one call per list, not per value (signals keep a few hundred).
FloatList = Annotated[
    list[float], BeforeValidator(_load_floats), PlainSerializer(_dump_floats, when_used="json")
]
FloatOrNull = Annotated[
    float,
    BeforeValidator(_load_float_or_null),
    PlainSerializer(_dump_float_or_null, when_used="json"),
]


def _unpack(v: Any) -> np.ndarray:
    if isinstance(v, str):
        try:
            raw = base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not base64") from None
        if len(raw) % 8:
            raise ValueError(f"{len(raw)} bytes are not a whole number of float64 values")
        return np.frombuffer(raw, dtype="<f8").astype(np.float64)
    if isinstance(v, np.ndarray):
        # A copy: a state never aliases a live detector's array.
        return np.array(v, dtype=np.float64)
    if isinstance(v, list | tuple):
        try:
            return np.array([float(_load_float(x)) for x in v], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("not a list of floats") from None
    raise ValueError(f"expected base64 float64 bytes or a list of floats, got {type(v).__name__}")


def _pack(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f8").tobytes()).decode("ascii")


Packed = Annotated[
    np.ndarray, PlainValidator(_unpack), PlainSerializer(_pack, when_used="json")
]


def _load_bits(v: Any) -> Any:
    if isinstance(v, str):
        if v.strip("01"):
            raise ValueError("bits must be a string of '0' and '1'")
        return [c == "1" for c in v]
    return v


def _dump_bits(bits: list[bool]) -> str:
    return "".join("1" if b else "0" for b in bits)


Bits = Annotated[
    list[bool], BeforeValidator(_load_bits), PlainSerializer(_dump_bits, when_used="json")
]


def _audit_json(v: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(v, allow_nan=False)  # already strict JSON: the common case
        return v
    except (TypeError, ValueError):
        return dict(_json_safe(v))


def _json_safe(v: Any) -> Any:
    """Audit records (nested dicts/lists of numbers and strings) as strict JSON."""
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        return _dump_float(float(v))
    return v


Audit = Annotated[dict[str, Any], PlainSerializer(_audit_json, when_used="json")]


def _same_river(v: str) -> str:
    if v != river.__version__:
        raise ValueError(f"written by river {v!r}, this build runs river {river.__version__}")
    return v


RiverVersion = Annotated[str, AfterValidator(_same_river)]


# -- models ----------------------------------------------------------------------------


class StateModel(BaseModel):
    """Base of every checkpoint model: ``type`` and ``version`` first, no unknown fields.

    Subclasses declare ``type: Literal["..."] = "..."`` and ``version:
    Literal[n] = n``.
    """

    model_config = ConfigDict(
        extra="forbid", arbitrary_types_allowed=True, ser_json_inf_nan="strings"
    )

    @classmethod
    def type_name(cls) -> str:
        """The ``type`` discriminator of this model."""
        return str(cls.model_fields["type"].default)

    @classmethod
    def version_number(cls) -> int:
        """The state ``version`` this build reads and writes."""
        return int(cls.model_fields["version"].default)

    @classmethod
    def load(cls, data: Mapping[str, Any] | Self) -> Self:
        """Validate a checkpoint; ``StateVersionError`` naming what does not fit.

        A missing ``type`` is accepted (checkpoints of signals, novelty and
        references written before they carried one).
        """
        if isinstance(data, cls):
            return data
        cls.check_header(data)
        return load_with(cls.model_validate, data, cls.type_name())

    @classmethod
    def check_header(cls, data: Any) -> None:
        """``StateVersionError`` unless ``data`` is an object of this ``type`` and ``version``."""
        name = cls.type_name()
        if not isinstance(data, Mapping):
            raise StateVersionError(f"{name} state must be an object, got {type(data).__name__}")
        if data.get("type", name) != name:
            raise StateVersionError(f"state of {data.get('type')!r} given to {name!r}")
        if data.get("version") != cls.version_number():
            raise StateVersionError(
                f"{name} state version {data.get('version')!r} not supported "
                f"(this build reads {cls.version_number()})"
            )

    def _check_size(self, field: str, shape: tuple[int, ...]) -> None:
        """Reshape the ``Packed`` ``field`` to ``shape``; ``ValueError`` if it does not fit."""
        a = getattr(self, field)
        if a.size != math.prod(shape):
            raise ValueError(f"{field} holds {a.size} values, expected shape {shape}")
        setattr(self, field, a.reshape(shape))


class RiverModelState(StateModel):
    """A pickled river object (base64) and the river version that wrote it."""

    river_version: RiverVersion
    pickle: str


def _describe(exc: ValidationError, limit: int = 4) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "state"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


M = TypeVar("M")


def load_with(validate: Callable[[Any], M], data: Any, name: str) -> M:
    """``validate(data)`` with pydantic's errors turned into one ``StateVersionError``."""
    try:
        return validate(data)
    except ValidationError as exc:
        raise StateVersionError(f"{name} state: {_describe(exc)}") from None


# -- the plumbing ----------------------------------------------------------------------

S = TypeVar("S", bound=StateModel)


class Checkpointable(Generic[S], abc.ABC):
    """``state()`` / ``from_state()`` once for every class with a ``State`` model.

    Subclasses set ``State`` (their model class) and implement two hooks:
    ``_to_state(self) -> State`` and the classmethod ``_from_state(state) ->
    instance``. ``STATE_VERSION`` is taken from the model.
    """

    State: ClassVar[type[StateModel]]
    STATE_VERSION: ClassVar[int]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        model = cls.__dict__.get("State")
        if model is not None:
            cls.STATE_VERSION = model.version_number()

    @abc.abstractmethod
    def _to_state(self) -> S:
        """This object's checkpoint as its ``State`` model."""

    @classmethod
    @abc.abstractmethod
    def _from_state(cls, state: S) -> Self:
        """An object that continues exactly from ``state``."""

    def state_model(self) -> S:
        """The checkpoint as a validated model (to nest in another model)."""
        return self._to_state()

    def state(self) -> dict[str, Any]:
        """Versioned, strict-JSON checkpoint; ``from_state`` continues bit for bit."""
        return self.state_model().model_dump(mode="json")

    @classmethod
    def from_model(cls, state: S) -> Self:
        """Rebuild from a validated model."""
        return cls._from_state(state)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild from ``state()`` output; ``StateVersionError`` when it does not fit."""
        return cls.from_model(cast(S, cls.State.load(state)))


class NamedCheckpointable(Checkpointable[S]):
    """A checkpointable whose ``name`` is its state ``type`` (detectors, learners)."""

    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        model = cls.__dict__.get("State")
        if model is not None:
            cls.name = model.type_name()
