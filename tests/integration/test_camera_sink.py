"""A camera back online is not a drifting signal, and its alerts resolve: through the sinks.

Real events: ``CameraStatus`` and ``Prediction`` events through the router
(``processors.monitor.camera_health``), its alerts and the monitor's
snapshots published to a real broker, the Redis sink (``driftline sinks``)
writing a real Redis, the fleet read as the API reads it (``Views``).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from driftline.api.views import Views
from driftline.settings import Settings
from processors.monitor import MonitorRegistry
from processors.monitor.camera_health import CameraHealth
from processors.router import Router, Source
from producers.publisher import Publisher
from schemas.events import CameraStatus, Prediction
from schemas.wire import encode
from sinks.alert_lifecycle import fleet, mirror, read_lifecycles
from sinks.redis_state import read_stream
from sinks.runner import start_sinks
from tests.integration.test_sinks import FAST_JOIN, wait_for

pytestmark = pytest.mark.integration

class Camera:
    """One stream's events through a router whose clock the test moves."""

    def __init__(self, router: Router, stream: str) -> None:
        self.router, self.stream, self.n = router, stream, 0

    def route(self, event: Any) -> list[Any]:
        self.n += 1
        routed = self.router.route(encode(event), Source.INPUTS, ("t.predictions:0", self.n))
        out: list[Any] = list(routed.alerts)
        out += [m.snapshot() for m in routed.touched]
        return out

    def predict(self) -> list[Any]:
        return self.route(Prediction(event_id=f"{self.stream}-p{self.n}", stream_id=self.stream,
                                     top_class="cat", confidence=0.9, model_version="v1"))

    def status(self, what: str, attempt: int = 0, gap: float | None = None) -> list[Any]:
        return self.route(CameraStatus(event_id=f"{self.stream}-s{self.n}", stream_id=self.stream,
                                       model_version="v1", status=what, attempt=attempt,
                                       gap_s=gap))


def _publish(settings: Settings, items: list[Any]) -> None:
    with Publisher.from_settings(settings) as p:
        for it in items:
            topic = settings.topics.alerts if it.kind == "alert" else settings.topics.state
            p.publish(topic, it)


def test_back_online_clears_reconnecting_and_silent_and_is_never_drift(
    settings: Settings, topic_prefix: str
) -> None:
    now = [0.0]
    router = Router(MonitorRegistry(health=CameraHealth(clock=lambda: now[0])))
    a, b = Camera(router, f"{topic_prefix}-a"), Camera(router, f"{topic_prefix}-b")
    views, ns = Views(settings), topic_prefix

    def camera_statuses(stream: str) -> dict[str, str]:
        sigs = read_stream(settings.redis_url, stream, namespace=ns)["signals"]
        return {s["signal"]: s["status"] for s in sigs if s["signal"].startswith("camera.")}

    def expect(cam: Camera, **statuses: str) -> None:
        want = {f"camera.{k}": v for k, v in statuses.items()}
        wait_for(lambda: camera_statuses(cam.stream) == want, what=f"{cam.stream}: {want}")

    # a: frames, its source drops, it goes quiet past SILENT_AFTER_S. b: only quiet.
    first = a.predict() + b.predict() + a.status("reconnecting", 1) + a.status("reconnecting", 2)
    now[0] = 61.0
    silent = router.health.silent(60.0)
    assert sorted(x.stream_id for x in silent) == [a.stream, b.stream]
    _publish(settings, first + silent)
    running = start_sinks(settings, threading.Event(), consumer_conf=FAST_JOIN)
    try:
        expect(a, status="reconnecting", silent="silent")
        expect(b, silent="silent")
        rows = {r.stream_id: r for r in views.fleet().streams}
        assert (rows[a.stream].camera, rows[b.stream].camera) == ("reconnecting", "silent")
        assert rows[a.stream].signals_in_drift == [] and rows[a.stream].status != "drift"

        # a is back online (the publisher says so); b sends again without a word.
        back = a.status("online", 2, 7.5) + a.predict() + b.predict()
        assert [x.camera_state for x in back
                if x.kind == "alert" and x.lifecycle == "firing"] == ["online"]
        _publish(settings, back)
        expect(a, status="ok", silent="ok")
        expect(b, silent="ok")
        # Every camera alert is resolved (back online; b sends again), in Redis as on
        # the topic: no camera alert stays open on a camera that is back.
        fired = [x for x in first + silent + back if x.kind == "alert"]
        wait_for(lambda: all(set(read_lifecycles(settings.redis_url, s.stream,
                                                 namespace=ns).values()) == {"resolved"}
                             for s in (a, b)), what="every camera alert resolved")
        assert {x.alert_id for x in fired} == set(
            read_lifecycles(settings.redis_url, a.stream, namespace=ns)) | set(
            read_lifecycles(settings.redis_url, b.stream, namespace=ns))
        assert mirror(fired) == {x.alert_id: "resolved" for x in fired}
        assert views.alert(fired[0].alert_id).lifecycle == "resolved"
        rows = {r.stream_id: r for r in views.fleet().streams}
        for s in (a, b):
            assert rows[s.stream].open_alerts == 0
            assert rows[s.stream].camera == "online"
            assert rows[s.stream].signals_in_drift == [], rows[s.stream]
            assert rows[s.stream].status != "drift"
        cli = {r["stream_id"]: r for r in fleet(settings.redis_url, namespace=ns)}
        assert cli[a.stream]["drift"] == [] and cli[a.stream]["status"] != "drift"
        assert (cli[a.stream]["camera"], cli[b.stream]["camera"]) == ("online", "online")
        # A late redelivery of the old 'reconnecting' alert moves nothing back.
        _publish(settings, [first[2]])
        wait_for(lambda: running.stats["redis"].handled >= len(first + silent + back) + 1,
                 what="the redelivery handled")
        assert camera_statuses(a.stream)["camera.status"] == "ok"
    finally:
        running.stop.set()
        running.join(30)
    assert not running.errors, running.errors
