"""``GET /api/v1/drift`` over real HTTP: is it this camera, or the model?

A fleet of six streams (four of model ``v2``, two of ``v1``) is written to a
real Redis by the real Redis sink (``start_sinks``), its snapshots and camera
alerts published on a real broker's state and alerts topics; the API
(uvicorn on a free port, a bearer token set) groups what Redis holds.

The fleet was rolled out: three of the ``v2`` cameras ran ``v0`` and one ran
``v1`` until two hours ago (their snapshots and a camera alert are that old,
two of them in drift on ``v0``), and a camera that ran ``v0`` only has been
gone as long. The API's default staleness window (1 h, by its wall clock)
leaves those streams out of the groups and denominators and counts them;
a camera still on ``v0`` (updated minutes ago) counts.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from driftline.api import ApiServer
from driftline.settings import Settings
from schemas.events import Alert, SignalState, StreamState
from sinks.redis_fleet import read_signals
from sinks.runner import start_sinks
from tests.integration.test_sinks import FAST_JOIN, publish, wait_for

pytestmark = [pytest.mark.integration]

TOKEN = "drift-test-token-0123456789"
CONF, BRIGHT, CAMERA = "output.confidence", "quality.brightness", "camera.status"


def _state(stream: str, mv: str, seconds: float, base: datetime,
           **drift: bool) -> StreamState:
    """A snapshot of a stream whose ``conf``/``bright`` signals are in drift or ok."""
    names = {"conf": CONF, "bright": BRIGHT}
    signals = {names[k]: SignalState(signal=names[k], status="drift" if v else "ok",
                                     detector="cusum", statistic=1.0, threshold=5.0)
               for k, v in drift.items()}
    return StreamState(stream_id=stream, model_version=mv, events_seen=500, signals=signals,
                       ts=base + timedelta(seconds=seconds))


def _offline(stream: str, mv: str, seconds: float, base: datetime) -> Alert:
    """A ``camera.status`` alert: the camera went offline (as ``CameraHealth`` makes it)."""
    return Alert(alert_id=f"{stream}:{mv}:{CAMERA}:camera_status:s{seconds:g}",
                 stream_id=stream, model_version=mv, signal=CAMERA, detector="camera_status",
                 severity="critical", message=f"camera {stream} offline", statistic=0.0,
                 detected_index=499, change_index=499, detected_event_id=f"s{seconds:g}",
                 camera_state="offline", ts=base + timedelta(seconds=seconds))


@pytest.fixture
def served(settings: Settings) -> Any:
    settings = settings.model_copy(update={
        "api": settings.api.model_copy(update={"token": SecretStr(TOKEN), "port": 0})})
    with ApiServer(settings) as server:
        yield server, settings


def test_drift_is_grouped_by_model_version_and_signal_with_its_scope(served) -> None:
    server, settings = served
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # Snapshot times are the worker's wall clock (StreamState.ts), judged by the API's (at
    # the request, not at collection): the fresh fleet updated ten minutes ago, the retired
    # streams two hours ago.
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    old = t0 - timedelta(hours=2)
    items: list[Alert | StreamState] = [
        # v2: 3 of its 4 streams drift on the confidence -> the model.
        _state("cam-v2-a", "v2", 10, t0, conf=True, bright=False),
        _state("cam-v2-b", "v2", 11, t0, conf=True, bright=False),
        _state("cam-v2-c", "v2", 12, t0, conf=True, bright=False),
        _state("cam-v2-d", "v2", 13, t0, conf=False, bright=False),
        # v1: one of its 2 streams drifts on brightness -> that camera (half, but 1 stream).
        _state("cam-v1-a", "v1", 20, t0, conf=False, bright=True),
        _state("cam-v1-b", "v1", 21, t0, conf=False, bright=False),
        # Two cameras offline, of two model versions: one group, by signal alone.
        _offline("cam-v1-b", "v1", 30, t0),
        _offline("cam-v2-d", "v2", 31, t0),
        # Retired two hours ago (stale): v0 on three of the v2 cameras, two of them in drift
        # on the confidence (with cam-v0-live 3 of 5: "model" if they counted), one offline
        # then; v1 on cam-v2-d (v1's denominator would be 3); cam-old, gone with v0 (the
        # cameras would be 8).
        _state("cam-v2-a", "v0", 1, old, conf=True, bright=False),
        _state("cam-v2-b", "v0", 2, old, conf=True, bright=False),
        _state("cam-v2-c", "v0", 3, old, conf=False, bright=False),
        _offline("cam-v2-c", "v0", 4, old),
        _state("cam-v2-d", "v1", 5, old, conf=False, bright=False),
        _state("cam-old", "v0", 6, old, conf=False, bright=False),
        # Still on v0, fresh: it counts, alone in v0's denominator.
        _state("cam-v0-live", "v0", 40, t0, conf=True, bright=False),
    ]
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/api/v1/drift").status_code == 401
        assert http.get("/api/v1/drift", headers={"Authorization": "Bearer nope"}
                        ).status_code == 401
        empty = http.get("/api/v1/drift", headers=auth)
        assert empty.status_code == 200
        assert empty.json() == {"streams_known": 0, "groups_total": 0, "groups": [],
                                "stale_after_s": 3600.0, "stale_total": 0, "stale": []}

        publish(settings, *items)
        stop = threading.Event()
        running = start_sinks(settings, stop, consumer_conf=FAST_JOIN)
        try:
            wait_for(lambda: running.stats["redis"].handled >= len(items),
                     what=f"the sinks wrote {len(items)} records: {running.stats}")
        finally:
            stop.set()
            running.join(10)
        assert not running.errors, running.errors

        res = http.get("/api/v1/drift", headers=auth)
        assert res.status_code == 200, res.text
        got = res.json()

    # The one pass over the fleet reads the same in chunks smaller than the fleet.
    ids = sorted({it.stream_id for it in items})
    whole = read_signals(settings.redis_url, ids, namespace=settings.topic_prefix)
    assert len(whole) == 8 and all(whole.values())
    assert read_signals(settings.redis_url, ids, namespace=settings.topic_prefix,
                        chunk=4) == whole

    ts, then = t0.timestamp(), old.timestamp()
    assert (got["streams_known"], got["groups_total"]) == (8, 4)
    assert got["groups"] == [
        {"model_version": "v2", "signal": CONF, "camera": False, "scope": "model",
         "in_drift": 3, "streams_known": 4, "stream_ids": ["cam-v2-a", "cam-v2-b", "cam-v2-c"],
         "statuses": {"drift": 3}, "first_updated_ts": ts + 10, "last_updated_ts": ts + 12},
        # Not cam-v2-c (offline on v0 before the rollout); the cameras with a fresh version.
        {"model_version": None, "signal": CAMERA, "camera": True, "scope": "streams",
         "in_drift": 2, "streams_known": 7, "stream_ids": ["cam-v1-b", "cam-v2-d"],
         "statuses": {"offline": 2}, "first_updated_ts": ts + 30, "last_updated_ts": ts + 31},
        # Not cam-v2-a and cam-v2-b (in drift on v0 when it was retired): 1 of 1.
        {"model_version": "v0", "signal": CONF, "camera": False, "scope": "streams",
         "in_drift": 1, "streams_known": 1, "stream_ids": ["cam-v0-live"],
         "statuses": {"drift": 1}, "first_updated_ts": ts + 40, "last_updated_ts": ts + 40},
        {"model_version": "v1", "signal": BRIGHT, "camera": False, "scope": "streams",
         "in_drift": 1, "streams_known": 2, "stream_ids": ["cam-v1-a"],
         "statuses": {"drift": 1}, "first_updated_ts": ts + 20, "last_updated_ts": ts + 20},
    ]
    # Left out, not dropped: per model version, those in drift then, their newest update.
    assert (got["stale_after_s"], got["stale_total"]) == (3600.0, 5)
    assert got["stale"] == [
        {"model_version": "v0", "streams": 4, "in_drift": 3, "last_updated_ts": then + 6},
        {"model_version": "v1", "streams": 1, "in_drift": 0, "last_updated_ts": then + 5},
    ]
