"""Wire events: pydantic v2 models, JSON on the wire, one ``schema_version``.

Every event names its ``stream_id`` (a camera or app instance; the Kafka key),
the ``model_version`` of the deployed model it concerns, a unique ``event_id``
and a timezone-aware ``ts``. Models are frozen and reject unknown fields, so a
producer's typo fails loudly instead of being silently ignored.

Examples
--------
>>> from datetime import datetime, timezone
>>> p = Prediction(stream_id="cam-1", model_version="v1", event_id="e1",
...                ts=datetime(2026, 1, 1, tzinfo=timezone.utc),
...                top_class="tabby", confidence=0.91)
>>> p.kind, p.schema_version
('prediction', 1)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

from driftline.errors import redact
from schemas.vectors import PACKED_VECTOR_SCHEMA, unpack_vector

SCHEMA_VERSION: Final = 1

StreamId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@/-]+$")]
Name = Annotated[str, Field(min_length=1, max_length=200)]


def _to_bytes(v: object) -> bytes:
    # Python callers hand raw bytes (kept as they are); JSON carries base64 text.
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v)
    if isinstance(v, str):
        try:
            return base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"not valid base64: {exc}") from exc
    raise ValueError("expected bytes or a base64 string")


Blob = Annotated[
    bytes,
    PlainValidator(_to_bytes),
    PlainSerializer(lambda b: base64.b64encode(b).decode("ascii"), when_used="json"),
    WithJsonSchema({"type": "string", "contentEncoding": "base64"}),
]
"""Raw bytes in Python, standard base64 (no line breaks) in JSON."""


def utcnow() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


# NaN and inf are valid Python floats (and json.loads reads them): refuse them in
# every vector and score map, checked by pydantic-core rather than a Python loop.
# A vector is a JSON list of numbers, or packed (processors' own helper:
# ``schemas.vectors.pack_vector``): {"dtype": "float16"|"float32", "data": base64
# of the little-endian values}, ~3x smaller and ~4x cheaper to decode than a
# 512-number list. Either way the model holds a list of floats and encodes it
# as a list.
Vector = Annotated[
    list[FiniteFloat],
    BeforeValidator(unpack_vector),
    Field(min_length=1),
    WithJsonSchema({"anyOf": [
        {"type": "array", "items": {"type": "number"}, "minItems": 1},
        PACKED_VECTOR_SCHEMA,
    ]}),
]
ScoreMap = dict[str, FiniteFloat]


class _Wire(BaseModel):
    """What every model on a topic has: frozen, no unknown fields, a schema version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION


class _Event(_Wire):
    event_id: Name
    stream_id: StreamId
    model_version: Name = "unknown"
    ts: AwareDatetime = Field(default_factory=utcnow)


class Frame(_Event):
    """One camera frame: the encoded image (JPEG/PNG/WebP) or a URI to it.

    ``meta`` carries free-form producer annotations; the simulated camera
    records injected drift there (``drift``, ``drift_onset``) so that
    benchmarks and the demo know the true change point.
    """

    kind: Literal["frame"] = "frame"
    image: Blob | None = None
    uri: str | None = None
    content_type: str | None = None
    frame_index: int | None = Field(default=None, ge=0)
    meta: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _image_or_uri(self) -> Frame:
        if (self.image is None) == (self.uri is None):
            raise ValueError("a frame carries exactly one of 'image' or 'uri'")
        return self


class Box(BaseModel):
    """One detection: class, score, and a box in pixels (x0, y0, x1, y1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cls: Name
    score: float = Field(ge=0.0, le=1.0)
    xyxy: tuple[FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat]


class Prediction(_Event):
    """What the deployed model said about one frame.

    Either full class ``scores`` (probabilities, summing to ~1) or just the
    ``top_class`` and its ``confidence``; optional ``boxes`` for detectors,
    and an optional ``embedding`` (the model's penultimate layer) from edge
    devices that skip sending frames. ``frame_id`` links it to its frame.
    """

    kind: Literal["prediction"] = "prediction"
    frame_id: str | None = None
    top_class: Name
    confidence: float = Field(ge=0.0, le=1.0)
    scores: ScoreMap | None = None
    boxes: list[Box] | None = None
    embedding: Vector | None = None
    frame_index: int | None = Field(default=None, ge=0)



class Label(_Event):
    """Late ground truth for an earlier prediction (joined on ``target_event_id``)."""

    kind: Literal["label"] = "label"
    target_event_id: Name
    true_class: Name


class Embedding(_Event):
    """A frame after the embedder: vector, image quality and the model's own view.

    ``top_class``/``confidence`` come from the embedder's logits output when
    the backbone has one (the default model does), so that a stream with
    frames only still has model-output signals; ``scores`` holds the
    backbone's few highest class probabilities (top class first).
    """

    kind: Literal["embedding"] = "embedding"
    frame_id: Name
    vector: Vector
    quality: ScoreMap = Field(default_factory=dict)
    top_class: str | None = None
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    scores: ScoreMap | None = None
    frame_index: int | None = Field(default=None, ge=0)
    meta: dict[str, str] = Field(default_factory=dict)



class FrameError(_Event):
    """A frame the embedder could not use (undecodable, unreadable URI, oversize).

    The frame itself goes to the dead-letter topic with its bytes; this small
    marker goes on the embeddings topic, keyed by stream like the embeddings,
    so the stream's monitor sees the failure in order with the good frames
    and can watch the ``quality.undecodable`` rate.
    """

    kind: Literal["frame_error"] = "frame_error"
    frame_id: Name
    frame_index: int | None = Field(default=None, ge=0)
    reason: str


CommandAction = Literal[
    "rereference", "ack", "snooze", "unsnooze", "disable", "enable", "set_budget"]
"""What an operator command does (``Command.action``)."""


AlertLifecycle = Literal["firing", "acknowledged", "resolved"]
"""An alert's states: ``firing``, then ``acknowledged`` and/or ``resolved``."""


class CameraStatus(_Event):
    """A publisher's word on its camera: ``online``, ``reconnecting`` or ``offline``.

    ``driftline publish`` sends one when it opens its source (``online``),
    when the source drops and it starts reconnecting (``reconnecting``, with
    the ``attempt`` number), when it is back (``online``, with ``gap_s``: the
    seconds without frames) and when it stops (``offline``: Ctrl-C, the end
    of a file, or giving up on reconnecting). It travels on the predictions
    topic, keyed by stream like the stream's other input events; the
    worker's camera-health monitor turns it into ``camera.status`` alerts.
    ``detail`` says why, in words (a URL in it is redacted by the publisher).

    >>> s = CameraStatus(event_id="s1", stream_id="cam-1", status="reconnecting", attempt=2)
    >>> s.kind, s.status, s.attempt
    ('camera_status', 'reconnecting', 2)
    """

    kind: Literal["camera_status"] = "camera_status"
    status: Literal["online", "reconnecting", "offline"]
    detail: str = Field(default="", max_length=500)
    attempt: int = Field(default=0, ge=0)
    gap_s: float | None = Field(default=None, ge=0.0)
    frames_read: int | None = Field(default=None, ge=0)


class Alert(_Wire):
    """A detected change, with enough context to act on it.

    ``alert_id`` is deterministic (stream, model version, signal, detector and
    the index of the event that fired), so a replay after a crash re-creates
    the same id and every sink deduplicates on it.
    """

    kind: Literal["alert"] = "alert"
    alert_id: Name
    stream_id: StreamId
    model_version: Name
    signal: Name
    detector: Name
    severity: Literal["info", "warning", "critical"] = "warning"
    message: str
    statistic: float
    # None for detectors without a threshold in the statistic's units (ADWIN
    # cuts its window where two halves differ beyond a bound that depends on
    # their sizes): JSON has no NaN, and a null is honest.
    threshold: float | None = None
    expected: float | None = None
    observed: float | None = None
    p_value: float | None = None
    detected_index: int = Field(ge=0)
    change_index: int = Field(ge=0)
    detected_event_id: str
    change_event_id: str | None = None
    detected_frame_index: int | None = Field(default=None, ge=0)
    change_frame_index: int | None = Field(default=None, ge=0)
    change_ts: AwareDatetime | None = None
    ert: float | None = None
    top_movers: dict[str, float] = Field(default_factory=dict)
    examples_before: list[str] = Field(default_factory=list)
    examples_after: list[str] = Field(default_factory=list)
    ts: AwareDatetime = Field(default_factory=utcnow)
    # The alert's lifecycle (issue #15): the firing event, then at most one
    # ``acknowledged`` and one ``resolved`` event, each with the SAME
    # ``alert_id`` and the firing alert's fields, so a consumer mirrors every
    # alert's current state from this topic alone (``lifecycle`` of the
    # latest event per ``alert_id``). See ``processors/monitor/controls.py``
    # for when an alert resolves.
    lifecycle: AlertLifecycle = Field(default="firing", description=(
        "firing: detected (first event of this alert_id); acknowledged: an operator's ack; "
        "resolved: the signal back within half the alerted shift of `expected` (mean of its "
        "last 16 values) for 30 values, or superseded by a new alert of the signal. Every "
        "event of one alert_id carries the firing alert's fields; the latest is its state."))
    # False while the signal is snoozed (by ``snooze``): the alert is recorded
    # (Redis, history, replay) but no webhook pages anyone.
    notify: bool = Field(default=True, description=(
        "false while the signal is snoozed: record it, do not page anyone"))
    # For ``acknowledged``/``resolved``: who (``by``), why, and the event (or
    # command) that moved the alert there; ``ts`` is then that event's time.
    lifecycle_by: str | None = Field(default=None, max_length=200, description=(
        "who acknowledged (the command's requested_by)"))
    lifecycle_reason: str | None = Field(default=None, max_length=500, description=(
        "why: the ack's reason, or how the alert resolved"))
    lifecycle_event_id: str | None = Field(default=None, description=(
        "the command_id (acknowledged) or event_id (resolved) that caused this event; "
        "`ts` is its time"))
    # ``camera.status`` / ``camera.silent`` alerts: the camera's state they report
    # (the sinks show it as the signal's status instead of drift).
    camera_state: Literal["online", "reconnecting", "offline", "silent"] | None = Field(
        default=None, description=(
            "camera.status and camera.silent alerts: the state of the camera the alert "
            "reports (online: back after a gap); null for every other signal"))


class SignalState(BaseModel):
    """Current state of one signal of one stream, as Redis and dashboards show it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    signal: Name
    # not_seen: the stream sent no value of it in its first reference_size events;
    # suspect_reference: its reference contains a change (processors.monitor.warmup_checks).
    status: Literal["warming_up", "ok", "drift", "not_seen", "suspect_reference"]
    detector: str
    statistic: float | None = None
    threshold: float | None = None
    expected: float | None = None
    observed: float | None = None
    last_alert_id: str | None = None


class ControlRecord(BaseModel):
    """One operator control as a monitor applied it: what, on which signals, who, when, why.

    ``ts`` is the command's own time, so a replay records the same.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: Name
    action: CommandAction
    signals: list[Name] | None = None
    by: str = Field(default="", max_length=200)
    reason: str = Field(default="", max_length=500)
    ts: AwareDatetime
    until: AwareDatetime | None = None
    false_alarms_per_week: float | None = None
    alert_id: Name | None = None


class StreamControls(BaseModel):
    """The controls in force on one stream's monitor, each with the command that set it.

    ``snoozed``/``disabled``: signal -> the command (a snooze ends at its
    ``until``, in event time); ``budget``: the last ``set_budget``;
    ``history``: the latest controls of any kind, oldest first (bounded).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    snoozed: dict[str, ControlRecord] = Field(default_factory=dict)
    disabled: dict[str, ControlRecord] = Field(default_factory=dict)
    budget: ControlRecord | None = None
    history: list[ControlRecord] = Field(default_factory=list)


class StreamState(_Wire):
    """Snapshot of one stream's monitor (the compacted state topic's value).

    ``monitor`` is the monitor's own versioned, JSON-safe checkpoint: a worker
    that takes over the stream restores it with ``StreamMonitor.from_state``.
    """

    kind: Literal["state"] = "state"
    stream_id: StreamId
    model_version: Name
    events_seen: int = Field(ge=0)
    signals: dict[str, SignalState] = Field(default_factory=dict)
    monitor: dict[str, Any] = Field(default_factory=dict)
    ts: AwareDatetime = Field(default_factory=utcnow)
    # Operator controls in force (issue #15) and the time of the stream's
    # latest event, for the fleet view (``driftline streams``).
    controls: StreamControls = Field(default_factory=StreamControls)
    last_event_ts: AwareDatetime | None = None


MAX_DEAD_LETTER_KEY = 1024
"""Bytes of a Kafka key kept in a dead letter (a key is a stream id, ≤ 200 characters)."""


class DeadLetter(_Wire):
    """Input that could not be processed: original bytes, where they came from, why.

    ``original`` may be cut to fit the topic's size limit (``bounded``);
    ``original_size`` and ``original_sha256`` always describe the bytes as
    received, so a truncated original can still be matched to its source.
    """

    kind: Literal["dead_letter"] = "dead_letter"
    reason: str
    detail: str
    source_topic: str
    source_partition: int | None = None
    source_offset: int | None = None
    key: Blob | None = None
    original: Blob
    original_size: int | None = Field(default=None, ge=0)
    original_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    stage: str
    ts: AwareDatetime = Field(default_factory=utcnow)

    @property
    def truncated(self) -> bool:
        """True when ``original`` is a prefix of what was received."""
        return self.original_size is not None and len(self.original) < self.original_size

    @classmethod
    def bounded(
        cls, *, original: bytes, detail: str, max_event_bytes: int,
        key: bytes | None = None, **fields: Any
    ) -> DeadLetter:
        """A dead letter whose wire form fits in ``max_event_bytes``.

        base64 in JSON grows the original by 4/3: what would not fit is cut
        (and said in ``detail``), so an oversize input is dead-lettered rather
        than failing forever. The size and sha256 of the whole original are
        recorded; an oversize key is cut to ``MAX_DEAD_LETTER_KEY`` bytes.

        >>> d = DeadLetter.bounded(original=b"x" * 50_000, detail="oversize",
        ...                        max_event_bytes=32 * 1024, reason="oversize",
        ...                        source_topic="t", stage="s")
        >>> len(d.original) < 50_000, d.original_size, d.original_sha256[:12], d.truncated
        (True, 50000, '9483d1c3ad73', True)
        >>> len(d.model_dump_json()) <= 32 * 1024
        True
        """
        original = bytes(original)
        size = len(original)
        digest = hashlib.sha256(original).hexdigest()
        if key is not None and len(key) > MAX_DEAD_LETTER_KEY:
            key = bytes(key[:MAX_DEAD_LETTER_KEY])
        # Redacted: a detail can quote a URL with credentials or a webhook token.
        # (and never a lone surrogate, which could not be encoded)
        detail = redact(detail[:2000]).encode("utf-8", "backslashreplace").decode()
        # Everything but the original, encoded once to measure it (the detail
        # may grow when JSON escapes it), plus room for the truncation note.
        frame = cls(original=b"", detail=detail, key=key, original_size=size,
                    original_sha256=digest, **fields)
        overhead = len(frame.model_dump_json()) + 200
        if overhead > max_event_bytes // 2:  # a tiny limit: the detail gives way first
            detail = detail[:200]
            frame = frame.model_copy(update={"detail": detail})
            overhead = len(frame.model_dump_json()) + 200
        budget = max(0, (max_event_bytes - overhead) * 3 // 4)
        if size > budget:
            detail += f" (original truncated from {size} to {budget} bytes)"
            original = original[:budget]
        return frame.model_copy(update={"original": original, "detail": detail})


class Command(_Wire):
    """An operator's instruction to the monitors of one stream (the control topic).

    Keyed by ``stream_id`` like every event, so it lands in the partition of
    that stream's events and is applied by the worker that owns the stream's
    monitor, between its events. ``model_version`` ``None`` means every model
    version of the stream; ``signals`` ``None`` means every signal.

    Actions (``action`` has no default: a command must say what it does):

    - ``rereference``: the named signals drop their reference and build a new
      one from the next ``REFERENCE_SIZE`` values (README "Reference management");
    - ``ack``: the open alerts of the named signals (or the one ``alert_id``)
      become ``acknowledged`` and those signals re-reference (the change is the
      new normal);
    - ``snooze`` (needs ``until``) / ``unsnooze``: the signals keep updating but
      their alerts carry ``notify: false`` until ``until`` (event time);
    - ``disable`` / ``enable``: the signals are not monitored at all (their
      values are ignored); enabling re-references them;
    - ``set_budget`` (needs ``false_alarms_per_week``): the stream's false-alarm
      budget; every calibrated signal recalibrates to it.

    ``requested_by`` and ``reason`` are recorded with the control (who, why).

    ``signature``: with ``DRIFTLINE_CONTROL_SECRET`` set, ``v1,`` + base64
    HMAC-SHA256 of the command's canonical JSON without the signature
    (``processors.commands.canonical_bytes``), which includes ``ts``: the
    worker refuses unsigned, badly signed and stale commands.

    Examples
    --------
    >>> Command(stream_id="cam-1", action="snooze")
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for Command
      Value error, snooze needs until (when the snooze ends) [type=value_error, ...]
        ...
    """

    kind: Literal["command"] = "command"
    command_id: Name = Field(default_factory=lambda: uuid.uuid4().hex)
    stream_id: StreamId
    model_version: Name | None = None
    action: CommandAction
    signals: list[Name] | None = Field(default=None, min_length=1)
    requested_by: str = Field(default="", max_length=200)
    ts: AwareDatetime = Field(default_factory=utcnow)
    signature: str | None = Field(default=None, max_length=400)
    until: AwareDatetime | None = Field(default=None, description=(
        "snooze only (required): the snooze ends at this event time"))
    false_alarms_per_week: float | None = Field(
        default=None, gt=0, allow_inf_nan=False,
        description="set_budget only (required): false alarms a week, all signals together")
    reason: str = Field(default="", max_length=500, description="why (recorded)")
    alert_id: Name | None = Field(default=None, description=(
        "ack only: acknowledge this alert (default: the open alerts of `signals`)"))

    @model_validator(mode="after")
    def _fields_of_the_action(self) -> Command:
        needs = {"snooze": "until", "set_budget": "false_alarms_per_week"}
        only = {"until": "snooze", "false_alarms_per_week": "set_budget", "alert_id": "ack"}
        field = needs.get(self.action)
        if field is not None and getattr(self, field) is None:
            what = "when the snooze ends" if field == "until" else "the new budget"
            raise ValueError(f"{self.action} needs {field} ({what})")
        for name, action in only.items():
            if getattr(self, name) is not None and self.action != action:
                raise ValueError(f"{name} belongs to {action} commands, not {self.action}")
        return self


InputEvent = Frame | Prediction | Label | Embedding
MonitorEvent = Prediction | Label | Embedding

WIRE_MODELS: tuple[type[BaseModel], ...] = (
    Frame, Prediction, Label, Embedding, Alert, StreamState, DeadLetter, Command, FrameError,
    CameraStatus,
)
"""Every model that travels on a topic; ``schemas.wire`` decodes them by their ``kind``."""
