"""Camera health: status events become ``camera.status`` alerts; silence by the wall clock."""

from __future__ import annotations

from processors.monitor import MonitorRegistry
from processors.monitor.camera_health import CameraHealth
from processors.router import Router, Source
from schemas.events import CameraStatus, Label, Prediction
from schemas.wire import encode


def status(i: int, what: str, attempt: int = 0, gap: float | None = None,
           stream: str = "cam-1") -> CameraStatus:
    return CameraStatus(event_id=f"{stream}-s{i}", stream_id=stream, model_version="v1",
                        status=what, attempt=attempt, gap_s=gap, detail="rtsp://***@cam/1")


def pred(i: int, stream: str = "cam-1") -> Prediction:
    return Prediction(event_id=f"{stream}-p{i}", stream_id=stream, model_version="v1",
                      top_class="cat", confidence=0.9)


def test_one_alert_per_outage_episode_and_the_gap_when_back() -> None:
    h = CameraHealth()
    seq = [status(0, "online"), status(1, "reconnecting", 1), status(2, "reconnecting", 2),
           status(3, "reconnecting", 3), status(4, "online", 3, 7.25), status(5, "offline")]
    fired = [(i, a.severity, a.message) for i, s in enumerate(seq) for a in h.status(s)]
    assert [(i, sev) for i, sev, _ in fired] == [(1, "warning"), (4, "info"), (5, "info")]
    assert "lost its source (rtsp://***@cam/1): reconnecting" in fired[0][2]
    assert "back online after 7.2 s without frames (3 reconnect attempts)" in fired[1][2]
    # Ids are the status events' own: a replay or a second worker makes the same.
    first, second = CameraHealth(), CameraHealth()
    ids = [a.alert_id for s in seq for a in first.status(s)]
    assert len(set(ids)) == 3 and ids == [a.alert_id for s in seq for a in second.status(s)]


def test_giving_up_is_critical() -> None:
    h = CameraHealth()
    h.status(status(0, "reconnecting", 1))
    [alert] = h.status(status(1, "offline", 9))
    assert alert.severity == "critical" and "gave up reconnecting after 9 attempts" in \
        alert.message


def test_silence_by_the_wall_clock_once_per_silence() -> None:
    now = [100.0]
    h = CameraHealth(clock=lambda: now[0])
    h.seen(pred(0), ("t.predictions:1", 5))
    h.seen(pred(0, "cam-2"), ("t.predictions:0", 9))
    now[0] = 130.0
    assert h.silent(60.0) == []
    now[0] = 161.0
    [a] = h.silent(60.0, owned={1})  # cam-2's partition is another worker's to judge
    assert (a.signal, a.stream_id, a.detected_event_id) == ("camera.silent", "cam-1",
                                                           "cam-1-p0")
    assert "no events for 61 s" in a.message and a.statistic == 61.0
    assert h.silent(60.0, owned={1}) == []  # one alert per silence
    h.seen(pred(1), ("t.predictions:1", 6))  # it speaks again: re-armed
    now[0] = 230.0
    assert [x.detected_event_id for x in h.silent(60.0, owned={1})] == ["cam-1-p1"]
    assert h.silent(0.0) == []  # 0 = off


def test_a_camera_that_said_offline_is_not_silent() -> None:
    now = [0.0]
    h = CameraHealth(clock=lambda: now[0])
    h.seen(pred(0))
    h.status(status(1, "offline"))
    now[0] = 1000.0
    assert h.silent(60.0) == []


def test_memory_is_bounded() -> None:
    h = CameraHealth(max_cameras=3)
    for i in range(10):
        h.seen(pred(0, f"cam-{i}"))
    assert list(h.cameras) == ["cam-7", "cam-8", "cam-9"]


def test_the_router_routes_status_events_in_the_worker_and_in_replay() -> None:
    for source in (Source.INPUTS, Source.RECORDING):
        router = Router(MonitorRegistry())
        router.route(encode(pred(0)), source, ("t.predictions:0", 0))
        out = router.route(encode(status(1, "reconnecting", 1)), source, ("t.predictions:0", 1))
        # The status changes the stream's monitor's checkpoint (its camera record):
        # the worker snapshots it before acking the status event.
        [mon] = out.touched
        assert [a.signal for a in out.alerts] == ["camera.status"]
        assert mon.camera is router.health.cameras["cam-1"]
        assert mon.state()["camera"]["status"] == "reconnecting"
        assert router.health.cameras["cam-1"].last_event_id == "cam-1-p0"
        again = router.route(encode(status(1, "reconnecting", 1)), source, ("t.predictions:0", 1))
        assert again.skipped and not again.alerts
    # A status event is an input: on the control topic it is refused like any other.
    assert Router(MonitorRegistry()).route(encode(status(0, "online")),
                                           Source.CONTROL).rejected[0].reason == "unknown_kind"
    # Labels count as input too.
    router = Router(MonitorRegistry())
    router.route(encode(Label(event_id="l", stream_id="cam-9", target_event_id="p",
                              true_class="cat")), Source.INPUTS)
    assert "cam-9" in router.health.cameras


def _lifecycle(events: list) -> list[tuple[str, str, str | None]]:
    return [(e.alert_id, e.lifecycle, e.lifecycle_event_id) for e in events]


def test_back_online_resolves_the_outage_and_its_own_notice() -> None:
    h = CameraHealth()
    [lost] = h.status(status(1, "reconnecting", 1))
    assert h.status(status(2, "reconnecting", 2)) == [] and h.drain() == []
    [back] = h.status(status(3, "online", 2, 4.0))
    done = h.drain()
    # Same ids as the firing alerts, caused by the online status (its ts): replay equals the worker.
    assert _lifecycle(done) == [(lost.alert_id, "resolved", "cam-1-s3"),
                                (back.alert_id, "resolved", "cam-1-s3")]
    assert done[0].lifecycle_reason == "back online (event cam-1-s3)"
    assert done[0].severity == "warning" and done[0].message == lost.message
    assert h.cameras["cam-1"].open_status is None
    # Nothing left to resolve: another online changes nothing.
    assert h.status(status(4, "online")) == [] and h.drain() == []


def test_giving_up_supersedes_the_warning_and_the_next_online_resolves_it() -> None:
    h = CameraHealth()
    [lost] = h.status(status(1, "reconnecting", 1))
    [gave_up] = h.status(status(2, "offline", 9))
    assert _lifecycle(h.drain()) == [(lost.alert_id, "resolved", "cam-1-s2")]
    assert h.status(status(3, "online")) == []  # a restart: no notice ...
    [done] = h.drain()  # ... but the camera is back
    assert (done.alert_id, done.severity, done.lifecycle_reason) == (
        gave_up.alert_id, "critical", "back online (event cam-1-s3)")


def test_silence_is_resolved_by_the_next_input_or_back_online() -> None:
    now = [0.0]
    h = CameraHealth(clock=lambda: now[0])
    h.seen(pred(0), ("t.predictions:0", 0))
    now[0] = 100.0
    [quiet] = h.silent(60.0)
    assert h.drain() == []
    h.seen(pred(1), ("t.predictions:0", 1))
    [done] = h.drain()
    assert (done.alert_id, done.lifecycle, done.lifecycle_event_id, done.camera_state) == (
        quiet.alert_id, "resolved", "cam-1-p1", "silent")
    assert done.lifecycle_reason == "sending again (event cam-1-p1)"
    now[0] = 200.0
    [again] = h.silent(60.0)
    h.status(status(2, "online"))
    assert _lifecycle(h.drain()) == [(again.alert_id, "resolved", "cam-1-s2")]
    h.seen(pred(3))
    assert h.drain() == []  # resolved once


def test_the_router_emits_camera_resolutions_the_same_in_the_worker_and_in_replay() -> None:
    lines = [(pred(0), "t.predictions:0"), (status(1, "reconnecting", 1), "t.predictions:0"),
             (status(2, "online", 1, 3.0), "t.predictions:0"), (pred(3), "t.predictions:0")]
    seen = []
    for source in (Source.INPUTS, Source.RECORDING):
        router = Router(MonitorRegistry())
        out = [a for i, (e, topic) in enumerate(lines)
               for a in router.route(encode(e), source, (topic, i)).alerts]
        seen.append(_lifecycle(out))
        mon = router.registry.monitors[("cam-1", "v1")]
        assert mon.state()["camera"]["open_status"] is None
    assert seen[0] == seen[1]
    assert [lc for _, lc, _ in seen[0]] == ["firing", "firing", "resolved", "resolved"]


def test_an_open_camera_alert_survives_a_restart_and_resolves_after_it() -> None:
    from processors.monitor.camera_state import CameraRecord

    first = Router(MonitorRegistry())
    first.route(encode(pred(0)), Source.INPUTS, ("t.predictions:0", 0))
    [lost] = first.route(encode(status(1, "reconnecting", 1)), Source.INPUTS,
                         ("t.predictions:0", 1)).alerts
    snap = first.registry.monitors[("cam-1", "v1")].snapshot()
    assert CameraRecord.from_state(snap.monitor["camera"]).open_status["alert_id"] == \
        lost.alert_id
    again = Router(MonitorRegistry())
    again.registry.restore(snap)
    out = again.route(encode(status(2, "online", 1, 3.0)), Source.INPUTS,
                      ("t.predictions:0", 2)).alerts
    assert (lost.alert_id, "resolved", "cam-1-s2") in _lifecycle(out)
