"""Camera health in the monitor's checkpoint: a restart changes no camera alert.

A recording of one camera (tile statistics, then a frozen feed from event
200; a reconnect episode on the predictions topic in the middle) is routed
straight through, and again with a crash in the middle of the frozen run:
the snapshot restored into a new router, reading resumed behind it. Both give
the same alerts (ids and indexes), resolve the same ones at the same events,
and end in the same checkpoint.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from driftline.settings import MonitorSettings
from processors.image_quality import TILE_KEYS
from processors.monitor import MonitorRegistry
from processors.monitor.camera_health import CameraHealth
from processors.monitor.camera_state import CameraRecord
from processors.router import Router, Source
from schemas.events import CameraStatus, Embedding
from schemas.wire import encode

SETTINGS = MonitorSettings(reference_size=50, embedding_dim=8)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
FROZEN_FROM = 200
# (offset in the recording, status, attempt, gap) on the predictions topic
STATUSES = {212: ("reconnecting", 1, None), 218: ("reconnecting", 2, None),
            260: ("online", 2, 4.5)}


def _recording(n: int = 300) -> list[tuple[bytes, tuple[str, int]]]:
    """``(line, position)``: embeddings on ``t.embeddings:0``, statuses on ``t.predictions:0``."""
    rng = np.random.default_rng(3)
    out: list[tuple[bytes, tuple[str, int]]] = []
    quality: dict[str, float] = {}
    for i in range(n):
        if i < FROZEN_FROM:  # a live camera: sensor noise; then one picture, repeated
            quality = {k: float(50.0 + rng.normal()) for k in TILE_KEYS}
        out.append((encode(Embedding(
            event_id=f"e{i}", stream_id="cam", model_version="v1", frame_id=f"f{i}",
            frame_index=i, vector=rng.normal(size=8).tolist(), quality=dict(quality),
            ts=T0 + timedelta(seconds=i))), ("t.embeddings:0", i)))
        if i in STATUSES:
            what, attempt, gap = STATUSES[i]
            out.append((encode(CameraStatus(event_id=f"s{i}", stream_id="cam", model_version="v1",
                                            status=what, attempt=attempt, gap_s=gap)),
                        ("t.predictions:0", i)))
    return out


def _router(now: list[float]) -> Router:
    return Router(MonitorRegistry(SETTINGS, health=CameraHealth(clock=lambda: now[0])))


def _run(router: Router, lines: list[tuple[bytes, tuple[str, int]]]) -> list[tuple[str, ...]]:
    out = []
    for raw, pos in lines:
        routed = router.route(raw, Source.INPUTS, pos)
        out += [(a.alert_id, a.signal, a.severity, str(a.detected_index), a.lifecycle,
                 str(a.lifecycle_event_id)) for a in routed.alerts]
    return out


@pytest.fixture(scope="module")
def recording() -> list[tuple[bytes, tuple[str, int]]]:
    return _recording()


def test_a_restart_in_a_frozen_run_and_a_reconnect_alerts_as_a_straight_run(recording):
    now = [0.0]
    straight = _router(now)
    expected = _run(straight, recording)
    signals = [(s, lifecycle) for _, s, _, _, lifecycle, _ in expected]
    # Back online resolves the reconnecting warning and its own notice (at the status event).
    assert signals == [("camera.status", "firing"), ("quality.frozen", "firing"),
                       ("camera.status", "firing"), ("camera.status", "resolved"),
                       ("camera.status", "resolved")], expected
    assert [e[0] for e in expected[3:]] == [expected[0][0], expected[2][0]]
    assert {e[5] for e in expected[3:]} == {"s260"}

    # Crash at the 230th embedding: frozen for 30 events, the camera reconnecting.
    crash = next(i for i, (_, pos) in enumerate(recording) if pos == ("t.embeddings:0", 230))
    first = _router(now)
    before = _run(first, recording[:crash])
    snap = first.registry.monitors[("cam", "v1")].snapshot()
    assert snap.monitor["camera"]["status"] == "reconnecting"
    assert snap.monitor["camera"]["open_status"]["alert_id"] == expected[0][0]
    camera_bytes = len(json.dumps(snap.monitor["camera"]))
    assert camera_bytes < 2000, camera_bytes  # the record and its one open alert

    again = _router(now)
    again.registry.restore(snap)
    # Reading resumes behind the snapshot (its last commit): all of it skipped.
    resume = next(i for i, (_, pos) in enumerate(recording) if pos == ("t.embeddings:0", 190))
    behind = [again.route(raw, Source.INPUTS, pos) for raw, pos in recording[resume:crash]]
    assert all(r.skipped and not r.alerts for r in behind)
    assert before + _run(again, recording[crash:]) == expected
    back, ref = (r.registry.monitors[("cam", "v1")] for r in (again, straight))
    assert back.state() == ref.state()

    # Silence: the restored camera is watched from its restore, with the same alert id.
    now[0] = 1000.0
    assert [a.alert_id for a in again.health.silent(60.0)] == [
        a.alert_id for a in straight.health.silent(60.0)]


def test_a_silence_alerted_before_the_snapshot_is_not_alerted_again():
    now = [0.0]
    router = _router(now)
    lines = _recording(60)
    _run(router, lines)
    now[0] = 100.0
    [alert] = router.health.silent(60.0)
    mon = router.registry.monitors[("cam", "v1")]
    again = _router(now)
    again.registry.restore(mon.snapshot())
    now[0] = 500.0
    assert again.health.silent(60.0) == []
    # The next input re-arms it, and that is checkpointed too.
    _run(again, _recording(61)[-1:])
    assert again.registry.monitors[("cam", "v1")].state()["camera"]["silent_alerted"] is False
    assert alert.detected_event_id == "e59"


def test_the_fresher_record_wins_on_restore_and_bad_checkpoints_name_the_field():
    now = [0.0]
    router = _router(now)
    _run(router, _recording(60))
    old = router.registry.monitors[("cam", "v1")].snapshot()
    _run(router, _recording(70)[60:])
    # A stale snapshot (fewer camera events) does not roll the live record back.
    router.registry.restore(old)
    assert router.health.cameras["cam"].events == 70
    assert router.registry.monitors[("cam", "v1")].camera is router.health.cameras["cam"]
    with pytest.raises(ValueError, match="camera checkpoint: events"):
        CameraRecord.from_state({**old.monitor["camera"], "events": -1})


def test_a_camera_that_reports_before_any_input_keeps_its_status_across_a_restart():
    def st(i: int, what: str, version: str = "v1") -> bytes:
        return encode(CameraStatus(event_id=f"s{i}", stream_id="cam", model_version=version,
                                   status=what, attempt=1, gap_s=2.0))

    lines = [(st(0, "online"), ("t.predictions:0", 0)),
             (st(1, "reconnecting"), ("t.predictions:0", 1)),
             (st(2, "online"), ("t.predictions:0", 2))]
    now = [0.0]
    straight = _run(_router(now), lines)
    assert [(s, lc) for _, s, _, _, lc, _ in straight] == [
        ("camera.status", "firing"), ("camera.status", "firing"),
        ("camera.status", "resolved"), ("camera.status", "resolved")]
    # A restart after the outage began: the status-only stream has a monitor, whose
    # snapshot holds the record and its open alert; back online resolves it as before.
    first = _router(now)
    before = _run(first, lines[:2])
    [snap] = [m.snapshot() for m in first.registry.monitors.values()]
    assert snap.events_seen == 0 and snap.monitor["camera"]["status"] == "reconnecting"
    again = _router(now)
    again.registry.restore(snap)
    assert again.route(*lines[1][:1], Source.INPUTS, lines[1][1]).skipped
    assert before + _run(again, lines[2:]) == straight
    # A status of another version than the stream's inputs goes to the inputs' monitor.
    r = _router(now)
    r.route(encode(Embedding(event_id="e0", stream_id="cam", model_version="v2", frame_id="f",
                             vector=[0.0] * 8)), Source.INPUTS, ("t.embeddings:0", 0))
    r.route(st(3, "reconnecting", "unknown"), Source.INPUTS, ("t.predictions:0", 3))
    assert list(r.registry.monitors) == [("cam", "v2")]
    assert r.registry.monitors[("cam", "v2")].state()["camera"]["status"] == "reconnecting"
