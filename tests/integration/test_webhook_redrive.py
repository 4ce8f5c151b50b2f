"""Webhooks without head-of-line blocking, and re-driving what failed during an outage.

Real broker, real sink threads (``start_sinks``), real HTTP receivers.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from typer.testing import CliRunner

from driftline.cli import app
from driftline.settings import Settings
from producers.publisher import Publisher
from schemas.events import DeadLetter
from schemas.wire import encode
from sinks.redrive import redrive
from sinks.webhook import WebhookNotifier
from sinks.webhook_receiver import Delivery, WebhookReceiver
from tests.integration.test_sinks import (
    SECRET,
    alert,
    committed,
    publish,
    receiver,  # noqa: F401 - fixture
    sinks,  # noqa: F401 - fixture
    wait_for,
    with_webhook,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_held_alert_does_not_delay_the_alerts_behind_it(
    settings: Settings, sinks: Any, topic_prefix: str  # noqa: F811
) -> None:
    release = threading.Event()
    held = alert(f"{topic_prefix}-cam", 1)

    def hold(d: Delivery) -> None:
        if d.webhook_id == held.alert_id:
            release.wait(60)

    rx = WebhookReceiver(before_reply=hold)
    try:
        s = with_webhook(settings, rx.url, webhook_timeout_s=60, webhook_concurrency=4)
        # One stream, one partition, in order: the held alert first.
        behind = [alert(f"{topic_prefix}-cam", n) for n in range(2, 8)]
        publish(s, held, *behind)
        started = time.monotonic()
        sinks(s)
        want = {a.alert_id for a in behind}
        wait_for(lambda: want <= {d.webhook_id for d in rx.accepted()}, timeout_s=60,
                 what="the alerts behind the held one")
        assert not release.is_set()
        took = time.monotonic() - started
        # Offsets in order: nothing committed past the alert still in flight.
        time.sleep(1.0)
        group = f"{s.consumer_group}.webhook"
        assert committed(s, group, s.topics.alerts) == 0
        release.set()
        wait_for(lambda: committed(s, group, s.topics.alerts) == 7, what="all committed")
        ids = [d.webhook_id for d in rx.accepted()]
        assert sorted(set(ids)) == sorted({held.alert_id, *want}) and len(ids) == 7
        print(f"6 alerts behind a held one delivered in {took:.1f}s")
    finally:
        release.set()
        rx.close()


def test_redrive_resends_what_failed_during_an_outage_once(
    settings: Settings, sinks: Any, read_topic: Any, topic_prefix: str  # noqa: F811
) -> None:
    # The receiver is down (503) for the whole retry budget of the first 3 alerts.
    rx = WebhookReceiver(SECRET, script=[503] * 6, retry_after="0")
    try:
        s = with_webhook(settings, rx.url, webhook_max_attempts=2, webhook_concurrency=1)
        lost = [alert(f"{topic_prefix}-cam", n) for n in range(1, 4)]
        publish(s, *lost)
        running = sinks(s)
        wait_for(lambda: running.stats["webhook"].dead_lettered == 3, what="3 dead letters")
        letters = [r.value for r in read_topic(s.topics.dead_letter, 3, timeout_s=20)]
        assert len(letters) == 3
        # One of them dead-lettered twice (a redelivery after a crash would do that),
        # and a dead letter of another kind: neither is sent (again).
        with Publisher.from_settings(s) as pub:
            pub.publish_raw(s.topics.dead_letter, b"k", letters[0])
            pub.publish(s.topics.dead_letter, DeadLetter(
                reason="invalid_json", detail="d", source_topic="x", original=b"{", stage="s"))
        assert not rx.accepted()

        notifier = WebhookNotifier(rx.url, SECRET, max_attempts=1)
        report = redrive(s, notifier, idle_s=2.0)
        assert report.ok, report.stopped_at
        assert sorted(report.alert_ids) == sorted(a.alert_id for a in lost)
        assert (report.sent, report.duplicates, report.other_reasons) == (3, 1, 1)
        got = rx.accepted()
        # Same webhook-id as the first attempts, valid signatures.
        assert sorted(d.webhook_id for d in got) == sorted(a.alert_id for a in lost)
        assert all(d.verified for d in got)
        assert {d.body for d in got} == {encode(a) for a in lost}
        # A second run sends nothing again.
        again = redrive(s, notifier, idle_s=2.0)
        assert (again.sent, again.duplicates) == (0, 0) and len(rx.accepted()) == 3
        notifier.close()
    finally:
        rx.close()


def test_redrive_stops_while_the_receiver_is_still_down_and_resumes_there(
    settings: Settings, read_topic: Any, topic_prefix: str
) -> None:
    lost = [alert(f"{topic_prefix}-cam", n) for n in range(1, 3)]
    with Publisher.from_settings(settings) as pub:
        for a in lost:  # keyed by stream, as the sinks do: one partition, in order
            pub.publish(settings.topics.dead_letter, key=a.stream_id.encode(),
                        event=DeadLetter.bounded(
                original=encode(a), detail="did not accept", max_event_bytes=1 << 20,
                reason="webhook_undeliverable", source_topic=settings.topics.alerts,
                stage="webhook", key=a.stream_id.encode()))
    rx = WebhookReceiver(SECRET, script=[503])
    try:
        s = with_webhook(settings, rx.url)
        notifier = WebhookNotifier(rx.url, SECRET, max_attempts=1)
        first = redrive(s, notifier, idle_s=2.0)
        assert not first.ok and first.sent == 0 and lost[0].alert_id in (first.stopped_at or "")
        notifier.close()
        # The command line, receiver back: exit 0 and the counts as JSON.
        env = {"DRIFTLINE_BOOTSTRAP_SERVERS": s.bootstrap_servers,
               "DRIFTLINE_REDIS_URL": s.redis_url, "DRIFTLINE_TOPIC_PREFIX": s.topic_prefix,
               "DRIFTLINE_CONSUMER_GROUP": s.consumer_group, "DRIFTLINE_WEBHOOK_URL": rx.url,
               "DRIFTLINE_WEBHOOK_SECRET": SECRET}
        res = CliRunner().invoke(app, ["redrive", "--idle", "2"], env=env)
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["sent"] == 2
        assert [d.webhook_id for d in rx.accepted()] == [a.alert_id for a in lost]
    finally:
        rx.close()
