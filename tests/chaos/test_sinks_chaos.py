"""A sink SIGKILLed after the receiver processed an alert, before its ledger write: processed once.

The window no HTTP sender can close (``sinks.webhook_ledger``), hit on
purpose with real processes: a ``driftline sinks`` process POSTs an alert to
a real receiver running the README's handler (``tests/integration/
test_readme.py``: verify, deduplicate on ``webhook-id``). The receiver
processes it and holds its 2xx until the test has SIGKILLed the sink: the
receiver has acted on the alert, the sink's ledger has only its claim --
the state a kill between the 2xx and the ledger write leaves (Redis reads
a write already sent, so freezing Redis cannot hold that write back). A
second sink starts: it finds the dead sink's claim, logs the alert as in
flight, and POSTs it again with the same ``webhook-id``; the receiver
answers 2xx without processing it again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from driftline.local_infra import settings_env
from driftline.settings import Settings
from producers.publisher import Publisher
from schemas.events import Alert
from sinks.redis_state import read_stream
from sinks.webhook import verify
from sinks.webhook_ledger import claimed_key, delivered_key
from sinks.webhook_receiver import Delivery, WebhookReceiver
from tests.integration.test_readme import receiver_snippet

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]

SECRET = "whsec_Y2hhb3Mtc2VjcmV0"


def wait_for(cond: Callable[[], Any], timeout_s: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := cond():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_sink_killed_before_its_ledger_write_resends_the_same_id_processed_once(
    settings: Settings, topic_prefix: str, tmp_path: Path,
) -> None:
    stream = f"{topic_prefix}-cam"
    alert = Alert(
        alert_id=f"{stream}:v1:confidence:adwin:7", stream_id=stream, model_version="v1",
        signal="confidence", detector="adwin", message="confidence drifted", statistic=0.4,
        threshold=0.2, detected_index=7, change_index=5, detected_event_id="e7",
        ts=datetime(2026, 1, 1, tzinfo=UTC),
    )
    with Publisher.from_settings(settings) as p:
        p.publish(settings.topics.alerts, alert)

    # The README's receiver, as is; `processed` is what it acted on.
    readme = receiver_snippet()
    processed: list[dict[str, Any]] = []
    arrived, release = threading.Event(), threading.Event()

    def hold_first(d: Delivery) -> None:
        if not arrived.is_set():
            arrived.set()  # processed (the README handler ran); the 2xx waits for the kill
            release.wait(60)

    rx = WebhookReceiver(respond=lambda h, b: readme["handle"](SECRET, h, b, processed.append),
                         before_reply=hold_first)
    env = settings_env(Settings(
        bootstrap_servers=settings.bootstrap_servers, redis_url=settings.redis_url,
        topic_prefix=settings.topic_prefix, consumer_group=settings.consumer_group,
        webhook_url=rx.url, webhook_secret=SECRET,
    ))

    def spawn(n: int) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"sinks-{n}.log", "wb")  # noqa: SIM115 - child owns it
        return subprocess.Popen([sys.executable, "-m", "driftline", "sinks"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)

    first = spawn(1)
    try:
        wait_for(arrived.is_set, what="the first POST")
        assert processed, "the README receiver acts before it answers"
        first.kill()
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
        release.set()
    client: Any = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    # Killed in the window: claimed, never recorded.
    assert client.get(claimed_key(alert.alert_id, topic_prefix))
    assert not client.exists(delivered_key(alert.alert_id, topic_prefix))

    second = spawn(2)
    try:
        # The dead member's session (10 s) ends before its partitions move.
        wait_for(lambda: client.exists(delivered_key(alert.alert_id, topic_prefix)),
                 timeout_s=90, what="the re-delivery recorded")
        # (and the Redis sink, its own consumer group, stored the alert)
        wait_for(lambda: read_stream(settings.redis_url, stream, namespace=topic_prefix)[
            "recent_alerts"], timeout_s=90, what="the alert in Redis")
    finally:
        second.terminate()
        second.wait(30)
    rx.close()
    raw = [d for d in rx.requests if 200 <= d.status < 300]
    print(f"\nsink killed after the receiver processed, before its ledger write: {len(raw)} "
          f"deliveries accepted (raw re-deliveries {len(raw) - 1}), processed {len(processed)}")
    assert [d.webhook_id for d in raw] == [alert.alert_id] * 2  # the same id, never a new one
    for d in raw:
        assert verify(SECRET, d.headers, d.body)
    assert processed == [json.loads(raw[0].body)]  # the README receiver acted once
    log2 = (tmp_path / "sinks-2.log").read_text()
    assert "was in flight when sink" in log2, log2[-3000:]
    assert not client.exists(claimed_key(alert.alert_id, topic_prefix))
    assert len(read_stream(settings.redis_url, stream,
                           namespace=topic_prefix)["recent_alerts"]) == 1
    assert second.returncode == 0, log2[-2000:]
    client.close()
