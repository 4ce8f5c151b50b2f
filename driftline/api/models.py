"""What the HTTP API answers and accepts (pydantic; they make its OpenAPI document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import Alert, ControlRecord

StreamStatus = Literal["drift", "warming_up", "ok", "unknown"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class SignalNow(_Out):
    """A signal's current state, as the Redis sink holds it."""

    model_version: str
    signal: str
    status: str | None
    detector: str | None
    statistic: float | None
    threshold: float | None
    expected: float | None
    observed: float | None
    last_alert_id: str | None
    updated_ts: float | None = Field(description="Unix seconds of the snapshot it came from.")
    ack: dict[str, Any] | None = Field(description="The operator acknowledgement, if any.")
    snoozed_until: AwareDatetime | None = Field(
        default=None, description="End of the snooze in force (it updates, does not notify).")
    disabled: bool = Field(default=False, description="Disabled: not monitored.")


class AlertBrief(_Out):
    """One alert in a list: enough to show it and open it."""

    alert_id: str
    stream_id: str
    model_version: str
    signal: str
    severity: str
    message: str
    ts: AwareDatetime
    change_index: int
    detected_index: int
    lifecycle: str = Field(default="firing", description="firing, acknowledged or resolved "
                           "(its latest lifecycle event the sinks wrote).")
    notify: bool = Field(default=True, description="False: fired while its signal was snoozed.")


class StreamSummary(_Out):
    """One camera (stream) of the fleet."""

    stream_id: str
    status: StreamStatus = Field(description="drift if any signal is in drift, else ok if any "
                                 "is calibrated, else warming_up; unknown without signals.")
    model_versions: list[str]
    last_update_ts: float | None = Field(description="Unix seconds of its latest snapshot "
                                         "(its monitor's latest event, within STATE_INTERVAL_S).")
    signals_in_drift: list[str]
    signals: int
    last_alert: AlertBrief | None
    snooze_until: float | None
    disabled: bool
    camera: Literal["online", "reconnecting", "offline", "silent"] | None = Field(
        default=None, description="Its camera as its camera.status and camera.silent alerts "
        "left it (reconnecting or offline as reported, else silent, else online); null "
        "before any camera alert. Never counted as drift.")
    last_event_ts: AwareDatetime | None = Field(
        description="Event time of its monitor's latest event (from its latest snapshot).")
    open_alerts: int = Field(description="Alerts firing or acknowledged, not yet resolved.")
    snoozed: dict[str, AwareDatetime] = Field(
        description="Signals snoozed at its latest event -> when the snooze ends.")
    disabled_signals: list[str] = Field(description="Signals disabled (not monitored).")


class Fleet(_Out):
    """Every stream Redis knows, one page of them."""

    total: int
    streams: list[StreamSummary]


DriftScope = Literal["model", "fleet", "streams"]


class DriftGroup(_Out):
    """The streams in drift on one signal of one model version, or on one camera signal.

    A model's signal (``output.*``, ``quality.*``, ...) is grouped by model
    version and signal, counting the streams whose signal ``status`` is
    ``drift`` (as ``signals_in_drift`` of ``GET /api/v1/streams``). A camera's
    own health signal (``camera.status``, ``camera.silent``) is about the
    camera, not a model: it is grouped by signal alone, over every model
    version, counting the streams whose camera is not ``ok`` there
    (``reconnecting``, ``offline``, ``silent``).
    """

    model_version: str | None = Field(
        description="The model version; null for a camera signal (grouped by signal alone).")
    signal: str
    camera: bool = Field(description="A camera health signal (camera.status, camera.silent).")
    scope: DriftScope = Field(description=(
        "model: at least 2 streams and at least half of the model version's streams are in "
        "drift on this signal (look at the model version, not the cameras); fleet: the same "
        "rule for a camera signal over every stream (a site or network, not one camera); "
        "streams: fewer (look at these cameras)."))
    in_drift: int = Field(description="Streams in drift on it (every one, not only those "
                          "listed in stream_ids).")
    streams_known: int = Field(description=(
        "The denominator: streams whose signals in Redis include this model version, updated "
        "within stale_after_s (for a camera signal: every stream Redis knows with a model "
        "version so updated). Stale ones are left out, counted in DriftOverview.stale."))
    stream_ids: list[str] = Field(description="The streams in drift, sorted; the first "
                                  "MAX_STREAM_IDS (50) when in_drift is larger.")
    statuses: dict[str, int] = Field(description=(
        "Streams per status: drift for a model's signal; the camera's state (reconnecting, "
        "offline, silent) for a camera signal."))
    first_updated_ts: float | None = Field(description=(
        "Unix seconds: the earliest updated_ts of these signals (of every stream counted)."))
    last_updated_ts: float | None = Field(description=(
        "Unix seconds: the latest updated_ts of these signals (of every stream counted)."))


class StaleVersion(_Out):
    """The streams of one model version left out of the groups: not updated for too long.

    A stream (camera x model version) whose newest signal ``updated_ts`` is
    more than ``stale_after_s`` before the request (the API's wall clock) no
    longer runs that version, or its camera has been gone that long: its
    signals are not grouped and it is in no denominator.
    """

    model_version: str
    streams: int = Field(description="Streams of this model version left out as stale.")
    in_drift: int = Field(description=(
        "Of them, those that had a signal in drift (or a camera not ok) when last updated."))
    last_updated_ts: float = Field(description=(
        "Unix seconds: the newest update among them (none of them updated since)."))


class DriftOverview(_Out):
    """Every signal in drift now across the fleet: one camera's, or a model version's."""

    streams_known: int = Field(description="Streams Redis knows (all of them were read).")
    groups_total: int = Field(description="Groups found; groups lists the first MAX_GROUPS "
                              "(200) of them.")
    groups: list[DriftGroup] = Field(description=(
        "By in_drift, most first; then model version (camera signals last) and signal."))
    stale_after_s: float = Field(description=(
        "DRIFTLINE_API__STALE_AFTER_S (default 1 h): a stream (camera x model version) not "
        "updated for longer than this, by the API's wall clock, is stale (0: none is)."))
    stale_total: int = Field(description=(
        "Streams (camera x model version) left out as stale, over every model version."))
    stale: list[StaleVersion] = Field(description=(
        "The stale streams per model version, most first; the first MAX_GROUPS (200) "
        "versions."))


class SeriesPoint(_Out):
    """One snapshot of a signal (``sinks.redis_series``)."""

    index: int = Field(description="The stream's event index (as an alert's change_index).")
    ts_ms: int
    statistic: float | None
    threshold: float | None
    observed: float | None
    expected: float | None
    baseline: float | None = Field(description="Centre of the tolerance band (CUSUM baseline).")
    tolerance: float | None = Field(description="Half-width of the tolerance band.")
    status: str


class ChangePoint(_Out):
    """Where an alert of the signal says its change began and was detected."""

    alert_id: str
    change_index: int
    detected_index: int
    severity: str


class SignalHistory(SignalNow):
    """A signal now, its recent series and its alerts' change points."""

    series: list[SeriesPoint]
    change_points: list[ChangePoint]


class StreamSignals(_Out):
    """One stream's signals with their history (what the stream's charts draw)."""

    stream_id: str
    known: bool
    snooze_until: float | None
    disabled: bool
    signals: list[SignalHistory]
    recent_alerts: list[AlertBrief]
    open_alerts: int
    snoozed: dict[str, AwareDatetime] = Field(
        description="Signals snoozed at its latest event -> when the snooze ends.")
    disabled_signals: list[str]
    controls: list[ControlRecord] = Field(
        description="Its latest operator controls (who, when, why), oldest first.")


class Timeline(_Out):
    """Recent alerts of the fleet, newest first."""

    alerts: list[AlertBrief]


class FrameRef(_Out):
    """An example frame of an alert: its id, and where to get it if it is stored."""

    event_id: str
    frame_id: str
    url: str | None = Field(description="API path of the stored frame; null when not stored.")


class AlertDetail(_Out):
    """One alert with its example frames before and after the change."""

    alert: Alert
    lifecycle: str = "firing"
    lifecycle_by: str | None = Field(default=None, description="Who acknowledged it.")
    lifecycle_reason: str | None = Field(
        default=None, description="Why it was acknowledged or resolved.")
    frames_before: list[FrameRef]
    frames_after: list[FrameRef]
    frames_note: str = Field(description="What is shown, or why frames are not.")


class ControlRequest(BaseModel):
    """An operator control on one stream (published as a ``Command``)."""

    model_config = ConfigDict(extra="forbid")

    signals: list[str] | None = Field(default=None, min_length=1, max_length=64,
                                      description="Signals it applies to (default: all).")
    model_version: str | None = Field(default=None, description="Default: every version.")
    reason: str = Field(default="", max_length=500)
    by: str = Field(default="api", max_length=200, description="Who asks (recorded).")


class AckRequest(ControlRequest):
    alert_id: str | None = Field(default=None, description="The alert acknowledged.")


class SnoozeRequest(ControlRequest):
    until: AwareDatetime | None = Field(default=None, description="When the snooze ends.")
    for_s: float | None = Field(default=None, gt=0, le=90 * 86400,
                                description="Or: how long it lasts, in seconds.")


class BudgetRequest(ControlRequest):
    false_alarms_per_week: float = Field(gt=0, le=10_000)


class ControlAccepted(_Out):
    """The command is on the control topic (the broker acknowledged it)."""

    command_id: str
    action: str
    stream_id: str
    topic: str
    signed: bool
