"""Operator controls and alert lifecycles inside one stream's monitor. No Kafka here.

A ``StreamMonitor`` holds one ``MonitorControls``: what the operator set on
the stream through the control topic, and the alerts still open. Both are
part of the monitor's checkpoint (``ControlsState``), so they survive
restarts and rebalances, and replay applies commands exactly as the worker
(both through ``processors.router`` and ``processors.commands``).

Controls (``schemas.events.Command.action``), per signal (``signals`` None:
every signal of the monitor, and the retrain advice):

- ``snooze`` until a time: the signal keeps updating, its detector fires as
  usual, but its alerts (and their lifecycle events) carry ``notify: false``
  while the *event* time is before ``until`` -- event time, not the worker's
  clock, so a replay marks the same alerts. They are still on the alert
  topic and in Redis; the webhook sinks send none of them. ``unsnooze`` ends it.
- ``disable``: the signal is not monitored (its values are not fed to its
  detector, its alerts are dropped); ``enable`` re-references it (what it
  saw before may no longer be the scene).
- ``set_budget`` to N false alarms per week: the stream's ERT becomes
  ``rate * WEEK_S / N`` (without a measured rate: the configured ERT, or
  ``FALLBACK_ERT``, scaled by ``MONITOR__FALSE_ALARMS_PER_WEEK / N``); every
  signal takes its share, and every calibrated signal re-references to
  recalibrate its threshold to it (a reference is not kept after
  calibration: memory stays bounded), so it is ``warming_up`` for its next
  ``reference_size`` values.
- ``ack``: open alerts of the signals (or the one ``alert_id``) become
  ``acknowledged`` and those signals re-reference on the new regime.

Every control is recorded (``ControlRecord``: who, when -- the command's
``ts`` --, why) in ``StreamControls``, published with each snapshot.

Alert lifecycle. A firing alert stays open until it is resolved:

- **resolved** when its signal is back within tolerance for a while: the
  mean of the signal's last ``RESOLVE_MEAN_OF`` values is within half the
  alerted shift (``|observed - expected| / 2``) of the pre-change level
  (``expected``) for ``RESOLVE_AFTER`` consecutive updates of that signal
  (the change went away: a light switched back on). Also resolved,
  ``lifecycle_reason`` "superseded by <id>", when the same signal fires a
  new alert.
- **acknowledged** by an ``ack`` (stays open: it may still resolve).

Each transition is an ``Alert`` with the firing alert's id and fields,
``lifecycle`` set, ``ts`` the time of the event or command that caused it,
``lifecycle_event_id`` its id: deterministic, so replay equals the worker.

Examples
--------
>>> from datetime import datetime, timezone
>>> c = MonitorControls()
>>> t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> cmd = Command(stream_id="cam", action="snooze", signals=["quality.brightness"],
...               until=datetime(2026, 1, 2, tzinfo=timezone.utc), ts=t0, command_id="c1")
>>> c.record(cmd, ["quality.brightness"])
>>> c.snoozed("quality.brightness", t0), c.snoozed("quality.brightness", cmd.until)
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from driftline.settings import MonitorSettings
from schemas.events import Alert, Command, ControlRecord, StreamControls

CONTROLS_VERSION: Literal[1] = 1
# Updates of a signal within half the alerted shift before its alert resolves ...
RESOLVE_AFTER = 30
# ... each judged on the mean of its latest values (a single frame back in the
# band is not a recovery).
RESOLVE_MEAN_OF = 16
# Controls kept in ``StreamControls.history`` (newest last).
HISTORY = 32


class OpenAlert(BaseModel):
    """An alert not yet resolved: the firing alert and its progress towards resolution."""

    model_config = ConfigDict(extra="forbid")

    alert: dict[str, Any]
    state: Literal["firing", "acknowledged"] = "firing"
    within: int = 0


class ControlsState(BaseModel):
    """Checkpoint of ``MonitorControls`` (a part of ``MonitorState``)."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = CONTROLS_VERSION
    controls: StreamControls = Field(default_factory=StreamControls)
    open_alerts: dict[str, OpenAlert] = Field(default_factory=dict)


class MonitorControls:
    """The operator's controls on one monitor and its open alerts (see the module docstring)."""

    def __init__(self, state: ControlsState | None = None) -> None:
        s = state or ControlsState()
        self.snoozes: dict[str, ControlRecord] = dict(s.controls.snoozed)
        self.disabled: dict[str, ControlRecord] = dict(s.controls.disabled)
        self.budget: ControlRecord | None = s.controls.budget
        self.history: list[ControlRecord] = list(s.controls.history)
        self.open: dict[str, OpenAlert] = {k: v.model_copy(deep=True)
                                           for k, v in s.open_alerts.items()}
        # Lifecycle events of the last event observed, until the router takes
        # them (``drain``): never pending across a checkpoint.
        self.outbox: list[Alert] = []

    # -- what the controls say ----------------------------------------------------------

    def snoozed(self, signal: str, at: datetime) -> bool:
        """True while ``signal`` is snoozed at event time ``at``."""
        rec = self.snoozes.get(signal)
        return rec is not None and rec.until is not None and at < rec.until

    def monitored(self, values: dict[str, float]) -> dict[str, float]:
        """``values`` without those of disabled signals."""
        if not self.disabled:
            return values
        return {k: v for k, v in values.items() if k not in self.disabled}

    def ert(self, settings: MonitorSettings, rate: float | None,
            stream_ert: Callable[[MonitorSettings, float | None], float]) -> float:
        """The stream's ERT: ``stream_ert(settings, rate)`` unless a ``set_budget`` is in force.

        With a budget of N a week: ``stream_ert`` for N a week at a measured
        ``rate`` (``settings.ert`` set or not); without a rate, the configured
        ERT scaled by ``settings.false_alarms_per_week / N``.

        >>> from datetime import timezone
        >>> def ert_of(s, rate):  # the monitor's stream_ert
        ...     weekly = None if rate is None else rate * 604800 / s.false_alarms_per_week
        ...     return s.ert or weekly or 10_000.0
        >>> c = MonitorControls()
        >>> c.budget = ControlRecord(command_id="b", action="set_budget", false_alarms_per_week=2,
        ...                          ts=datetime(2026, 1, 1, tzinfo=timezone.utc))
        >>> c.ert(MonitorSettings(ert=800), 20.0, ert_of), c.ert(MonitorSettings(), None, ert_of)
        (6048000.0, 5000.0)
        """
        per_week = None if self.budget is None else self.budget.false_alarms_per_week
        if per_week is None:
            return stream_ert(settings, rate)
        if rate is not None:
            return stream_ert(settings.model_copy(
                update={"ert": None, "false_alarms_per_week": per_week}), rate)
        return stream_ert(settings, None) * settings.false_alarms_per_week / per_week

    def view(self) -> StreamControls:
        """The controls in force, for the stream's snapshot."""
        return StreamControls(snoozed=dict(self.snoozes), disabled=dict(self.disabled),
                              budget=self.budget, history=list(self.history))

    # -- applying a command -------------------------------------------------------------

    def record(self, command: Command, signals: Iterable[str]) -> None:
        """Set the control ``command`` names on ``signals`` and log it (who, when, why)."""
        rec = ControlRecord(
            command_id=command.command_id, action=command.action, signals=command.signals,
            by=command.requested_by, reason=command.reason, ts=command.ts,
            until=command.until, false_alarms_per_week=command.false_alarms_per_week,
            alert_id=command.alert_id,
        )
        for name in signals:
            if command.action == "snooze":
                self.snoozes[name] = rec
            elif command.action == "unsnooze":
                self.snoozes.pop(name, None)
            elif command.action == "disable":
                self.disabled[name] = rec
            elif command.action == "enable":
                self.disabled.pop(name, None)
        if command.action == "set_budget":
            self.budget = rec
        self.history.append(rec)
        del self.history[:-HISTORY]

    def acknowledge(self, command: Command, signals: Iterable[str]) -> list[Alert]:
        """``acknowledged`` events for the open alerts ``command`` names."""
        names = set(signals)
        out = []
        for sig, op in self.open.items():
            aid = op.alert["alert_id"]
            wanted = aid == command.alert_id if command.alert_id else sig in names
            if not wanted or op.state != "firing":
                continue
            op.state = "acknowledged"
            out.append(self._event(op, "acknowledged", command.ts, command.command_id,
                                   by=command.requested_by, reason=command.reason))
        return out

    # -- observing ----------------------------------------------------------------------

    def observed(self, fired: list[Alert], values: dict[str, float],
                 recent_mean: dict[str, float | None], event_id: str,
                 at: datetime) -> list[Alert]:
        """``fired`` flagged (``notify``), disabled signals' dropped; transitions to ``outbox``.

        ``values``: the signals the event updated; ``recent_mean``: each open
        alert's signal's mean of its latest ``RESOLVE_MEAN_OF`` values.
        ``observe`` returns firing alerts only (what detectors found);
        ``processors.router`` emits the outbox's lifecycle events after them.
        """
        out, fresh = self.outbox, []
        for sig, op in list(self.open.items()):
            if sig not in values:
                continue
            a = op.alert
            expected, observed, mean = a.get("expected"), a.get("observed"), recent_mean.get(sig)
            if expected is None or observed is None or mean is None:
                continue
            band = abs(observed - expected) / 2
            op.within = op.within + 1 if band > 0 and abs(mean - expected) <= band else 0
            if op.within >= RESOLVE_AFTER:
                del self.open[sig]
                out.append(self._event(op, "resolved", at, event_id,
                                       reason=f"back within {band:.4g} of {expected:.4g} for "
                                              f"{RESOLVE_AFTER} updates"))
        for alert in fired:
            if alert.signal in self.disabled:
                continue
            alert = self._flag(alert, at)
            old = self.open.pop(alert.signal, None)
            if old is not None:
                out.append(self._event(old, "resolved", at, event_id,
                                       reason=f"superseded by {alert.alert_id}"))
            # Without its ``ts`` (the wall clock when it was built): a checkpoint
            # is the same whenever the same events are applied.
            self.open[alert.signal] = OpenAlert(alert=alert.model_dump(mode="json",
                                                                       exclude={"ts"}))
            fresh.append(alert)
        return fresh

    def drain(self) -> list[Alert]:
        """The lifecycle events waiting since the last ``drain`` (and none after it)."""
        out, self.outbox = self.outbox, []
        return out

    def _flag(self, alert: Alert, at: datetime) -> Alert:
        if self.snoozed(alert.signal, at):
            return alert.model_copy(update={"notify": False})
        return alert

    def _event(self, op: OpenAlert, lifecycle: Literal["acknowledged", "resolved"],
               at: datetime, caused_by: str, *, by: str | None = None,
               reason: str | None = None) -> Alert:
        doc = {**op.alert, "lifecycle": lifecycle, "ts": at, "notify": True,
               "lifecycle_event_id": caused_by,
               "lifecycle_by": by, "lifecycle_reason": reason or None}
        return self._flag(Alert.model_validate(doc), at)

    # -- checkpoint ---------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """JSON-safe checkpoint (``ControlsState``)."""
        return ControlsState(controls=self.view(), open_alerts=self.open).model_dump(mode="json")

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> MonitorControls:
        """Restore from ``state()`` (``None``: a checkpoint from before controls existed)."""
        return cls(None if state is None else ControlsState.model_validate(state))
