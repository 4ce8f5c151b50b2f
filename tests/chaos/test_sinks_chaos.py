"""A sink process SIGKILLed mid-delivery: the alert is delivered again, same id, stored once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from driftline.local_infra import settings_env
from driftline.settings import Settings
from producers.publisher import Publisher
from schemas.events import Alert
from sinks.redis_state import read_stream
from sinks.webhook import verify
from sinks.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]

SECRET = "whsec_Y2hhb3Mtc2VjcmV0"

@pytest.fixture
def holding_receiver() -> Iterator[tuple[WebhookReceiver, threading.Event]]:
    """Holds the first request open (the sink is mid-send when killed), accepts the rest."""
    release = threading.Event()
    rx = WebhookReceiver(before_reply=lambda d: len(rx.requests) == 1 and release.wait(60))
    yield rx, release
    release.set()
    rx.close()


def wait_for(cond: Callable[[], Any], timeout_s: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := cond():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_sink_killed_mid_webhook_redelivers_same_id(
    settings: Settings,
    holding_receiver: tuple[WebhookReceiver, threading.Event],
    topic_prefix: str,
    tmp_path: Any,
) -> None:
    rx, release = holding_receiver
    stream = f"{topic_prefix}-cam"
    alert = Alert(
        alert_id=f"{stream}:v1:confidence:adwin:7", stream_id=stream, model_version="v1",
        signal="confidence", detector="adwin", message="confidence drifted", statistic=0.4,
        threshold=0.2, detected_index=7, change_index=5, detected_event_id="e7",
        ts=datetime(2026, 1, 1, tzinfo=UTC),
    )
    with Publisher.from_settings(settings) as p:
        p.publish(settings.topics.alerts, alert)

    env = settings_env(Settings(
        bootstrap_servers=settings.bootstrap_servers, redis_url=settings.redis_url,
        topic_prefix=settings.topic_prefix, consumer_group=settings.consumer_group,
        webhook_url=rx.url, webhook_secret=SECRET, webhook_timeout_s=60,
    ))

    def spawn(n: int) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"sinks-{n}.log", "wb")  # noqa: SIM115 - child owns it
        return subprocess.Popen([sys.executable, "-m", "driftline", "sinks"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)

    first = spawn(1)
    try:
        wait_for(lambda: rx.requests, what="first webhook request")
        wait_for(lambda: read_stream(settings.redis_url, stream,
                namespace=topic_prefix)["recent_alerts"], what="redis")
        first.kill()  # mid-request: the webhook sink never committed
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    release.set()

    second = spawn(2)
    try:
        # The old member's session must expire before its partitions move.
        wait_for(lambda: len(rx.requests) >= 2, timeout_s=90,
                 what="redelivery after restart")
    finally:
        second.terminate()
        second.wait(30)
    assert {d.webhook_id for d in rx.requests} == {alert.alert_id}
    for d in rx.requests:
        assert verify(SECRET, d.headers, d.body)
    assert len(read_stream(settings.redis_url, stream,
            namespace=topic_prefix)["recent_alerts"]) == 1
    assert second.returncode == 0, (tmp_path / "sinks-2.log").read_text()[-2000:]
