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
