"""Operator controls and alert lifecycles through the router (what the worker and replay run).

The stream: predictions whose confidence wanders (AR(1), rho 0.85) around
0.8, drops by 0.4 at event 1000 (the alert fires at 1071: the signal's
detector watches the confidence's EWMA, half-life 150) and comes back at 1700
(the re-referenced signal reports that too, at 1868). Predictions, not
embeddings: the same controls, a fifth of the time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from driftline.cli import app
from processors.commands import build_command
from processors.monitor import MonitorRegistry, StreamMonitor
from processors.monitor.catalogue import CALIBRATED
from processors.monitor.controls import RESOLVE_AFTER
from processors.router import Router, Source
from schemas.events import Alert, Command, Prediction
from schemas.wire import encode
from tests.unit.test_monitor import SETTINGS

BRIGHT = "output.confidence"  # the signal the stream's change moves
FAR = datetime(2100, 1, 1, tzinfo=UTC)


def predictions(n: int, *, drop: tuple[int, int] = (1000, 1700)) -> list[Prediction]:
    rng = np.random.default_rng(0)
    ar, out = 0.0, []
    for i in range(n):
        ar = 0.85 * ar + rng.normal() * np.sqrt(1 - 0.85**2)
        c = 0.8 + 0.03 * ar - (0.4 if drop[0] <= i < drop[1] else 0.0)
        out.append(Prediction(event_id=f"p{i}", stream_id="cam", model_version="v1",
                              top_class="cat", confidence=float(np.clip(c, 0, 1))))
    return out


@pytest.fixture(scope="module")
def events() -> list[Prediction]:
    return predictions(2100)


@pytest.fixture(scope="module")
def plain(events) -> list[Alert]:
    """What the stream emits without any control."""
    return route(events, {})[1]


def route(events: list, commands: dict[int, Command]) -> tuple[Router, list[Alert]]:
    """Replay ``events`` with ``commands[i]`` routed just before event ``i``."""
    router = Router(MonitorRegistry(SETTINGS))
    out: list[Alert] = []
    for i, e in enumerate(events):
        if i in commands:
            routed = router.route(encode(commands[i]), Source.RECORDING)
            assert routed.rejected == [], routed.rejected
            out += routed.alerts
        out += router.route(encode(e), Source.RECORDING).alerts
    return router, out


def _bright(alerts: list[Alert]) -> list[tuple[str, str, bool]]:
    return [(a.alert_id, a.lifecycle, a.notify) for a in alerts if a.signal == BRIGHT]


def test_an_alert_resolves_when_its_signal_is_back_and_snooze_silences_it(events, plain):
    snooze = build_command("cam", "snooze", signals=[BRIGHT], until=FAR, requested_by="ops",
                           reason="lens cleaning", command_id="c-snooze")
    router, alerts = route(events, {500: snooze})
    first = next(a for a in alerts if a.signal == BRIGHT)
    assert first.detected_index == 1071
    # Snoozed: detected and recorded, but no one is paged; then resolved, same id.
    # The return is a change of the re-referenced signal: a second (snoozed) alert.
    back = next(a for a in alerts if a.signal == BRIGHT and a.alert_id != first.alert_id)
    assert back.detected_index == 1868 and back.observed > back.expected
    assert _bright(alerts) == [(first.alert_id, "firing", False),
                               (first.alert_id, "resolved", False),
                               (back.alert_id, "firing", False)]
    r = next(a for a in alerts if a.lifecycle == "resolved")
    assert r.lifecycle_event_id == "p1737" and r.detected_index == first.detected_index
    assert r.message == first.message and "back within" in (r.lifecycle_reason or "")
    # Without the snooze: the same events, deterministically (a replay equals the
    # worker), only ``notify`` differs.
    assert [a.model_dump(exclude={"ts", "notify"}) for a in alerts if a.lifecycle != "firing"] \
        == [a.model_dump(exclude={"ts", "notify"}) for a in plain if a.lifecycle != "firing"]
    assert [a.alert_id for a in alerts] == [a.alert_id for a in plain]
    assert all(a.notify for a in plain)
    assert r.ts == events[1737].ts
    mon = router.registry.monitors[("cam", "v1")]
    view = mon.snapshot().controls
    assert view.snoozed[BRIGHT].by == "ops" and view.snoozed[BRIGHT].reason == "lens cleaning"
    assert [c.command_id for c in view.history] == ["c-snooze"]
    # The checkpoint carries the controls and the open alerts exactly.
    state = json.loads(json.dumps(mon.state()))
    assert json.loads(json.dumps(StreamMonitor.from_state(state).state())) == state


def test_resolution_needs_the_signal_back_for_a_while():
    router, alerts = route(predictions(1700, drop=(1000, 2000)), {})
    assert [lc for _, lc, _ in _bright(alerts)] == ["firing"]
    mon = router.registry.monitors[("cam", "v1")]
    assert set(mon.controls.open) == {BRIGHT}
    assert mon.controls.open[BRIGHT].within < RESOLVE_AFTER


def test_ack_acknowledges_the_open_alert_by_whom_and_why(events):
    router, alerts = route(events[:1100], {})
    (fired,) = [a for a in alerts if a.signal == BRIGHT]
    ack = build_command("cam", "ack", alert_id=fired.alert_id, requested_by="ana",
                        reason="new lamp", command_id="c-ack")
    routed = router.route(encode(ack), Source.RECORDING)
    (event,) = routed.alerts
    assert (event.alert_id, event.lifecycle, event.lifecycle_by, event.lifecycle_reason,
            event.lifecycle_event_id, event.ts) == (
        fired.alert_id, "acknowledged", "ana", "new lamp", "c-ack", ack.ts)
    mon = router.registry.monitors[("cam", "v1")]
    assert mon.signals[BRIGHT].status == "warming_up"  # re-referenced on the new regime
    assert mon.controls.open[BRIGHT].state == "acknowledged"
    # A second ack changes nothing on the alert.
    again = build_command("cam", "ack", signals=[BRIGHT], command_id="c-ack2")
    assert router.route(encode(again), Source.RECORDING).alerts == []


def test_a_disabled_signal_is_not_monitored_and_enable_rereferences(events, plain):
    off = build_command("cam", "disable", signals=[BRIGHT], requested_by="ops", command_id="d")
    router, alerts = route(events[:1400], {300: off})
    assert _bright(alerts) == []
    assert [a for a in plain if a.signal == BRIGHT]
    mon = router.registry.monitors[("cam", "v1")]
    assert mon.signals[BRIGHT].updates == 300  # nothing fed since the command
    assert list(mon.snapshot().controls.disabled) == [BRIGHT]
    on = build_command("cam", "enable", command_id="e")  # every signal: only BRIGHT was off
    routed = router.route(encode(on), Source.RECORDING)
    assert routed.applied[0][1] == [BRIGHT]
    assert mon.signals[BRIGHT].status == "warming_up"
    assert mon.snapshot().controls.disabled == {}


def test_set_budget_recalibrates_every_signal_to_the_new_budget(events):
    router, _ = route(events[:450], {})
    mon = router.registry.monitors[("cam", "v1")]
    before = mon.ert
    cmd = build_command("cam", "set_budget",
                        false_alarms_per_week=4 * SETTINGS.false_alarms_per_week, command_id="b")
    routed = router.route(encode(cmd), Source.RECORDING)
    assert mon.ert == pytest.approx(before / 4)
    assert BRIGHT in routed.applied[0][1]
    assert mon.signals[BRIGHT].status == "warming_up"
    assert {s.ert for s in mon.signals.values()} == {mon.ert * len(CALIBRATED)}
    for e in events[450:700]:  # a new reference at the new budget
        router.route(encode(e), Source.RECORDING)
    assert mon.signals[BRIGHT].status == "ok"
    assert mon.snapshot().controls.budget.false_alarms_per_week == cmd.false_alarms_per_week
    restored = StreamMonitor.from_state(json.loads(json.dumps(mon.state())))
    assert restored.ert == mon.ert


def test_commands_say_what_their_action_needs():
    with pytest.raises(ValidationError, match="snooze needs until"):
        Command(stream_id="cam", action="snooze")
    with pytest.raises(ValidationError, match="set_budget needs false_alarms_per_week"):
        Command(stream_id="cam", action="set_budget")
    with pytest.raises(ValidationError, match="alert_id belongs to ack"):
        Command(stream_id="cam", action="disable", alert_id="a")
    with pytest.raises(ValidationError):
        Command(stream_id="cam", action="set_budget", false_alarms_per_week=0)
    until = datetime.now(UTC) + timedelta(hours=1)
    assert Command(stream_id="cam", action="snooze", until=until).until == until


@pytest.mark.parametrize("args, message", [
    (["snooze", "cam", "--for", "soon"], "not a duration"),
    (["disable", "cam", "quality.brightnes"], "unknown signal"),
    (["set-budget", "cam", "--false-alarms-per-week", "0"], "invalid command"),
])
def test_the_cli_refuses_a_bad_control_before_publishing(args, message):
    res = CliRunner().invoke(app, args, env={"DRIFTLINE_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert res.exit_code == 2 and message in res.output, res.output
