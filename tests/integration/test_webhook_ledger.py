"""The webhook ledger: an alert read again (concurrently, or after a restart) is POSTed once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import redis

from driftline.errors import TransientError
from schemas.events import Alert
from sinks.webhook import WebhookNotifier
from sinks.webhook_ledger import WebhookLedger, claimed_key, delivered_key
from sinks.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.integration

SECRET = "whsec_bGVkZ2VyLXRlc3Qtc2VjcmV0"


def alert(n: int) -> Alert:
    return Alert(alert_id=f"cam:v1:confidence:adwin:e{n}", stream_id="cam", model_version="v1",
                 signal="confidence", detector="adwin", message="confidence drifted",
                 statistic=0.4, threshold=0.2, detected_index=n, change_index=n - 2,
                 detected_event_id=f"e{n}", ts=datetime(2026, 1, 1, tzinfo=UTC))


def test_an_alert_read_again_is_posted_once(redis_url: str, topic_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    with WebhookReceiver(SECRET) as rx:
        notifier = WebhookNotifier(rx.url, SECRET, base_delay_s=0.01)
        ledger = WebhookLedger(client, topic_prefix)
        a = alert(7)
        # Four copies in flight at once (the concurrent webhook sink): one POST.
        threads = [threading.Thread(target=ledger.deliver_once,
                                    args=(a.alert_id, lambda done: notifier.send(a, done)))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        # A restarted sink (a new ledger on the same Redis) reads it again: no POST.
        assert not WebhookLedger(client, topic_prefix).deliver_once(
            a.alert_id, lambda done: notifier.send(a, done))
        # A delivery that failed is not recorded: the next attempt sends.
        b = alert(8)

        def fail(done: object) -> None:
            raise TransientError("receiver busy")

        with pytest.raises(TransientError):
            ledger.deliver_once(b.alert_id, fail)
        assert not client.exists(claimed_key(b.alert_id, topic_prefix))  # dropped on failure
        assert ledger.deliver_once(b.alert_id, lambda done: notifier.send(b, done))
        # A claim left by a sink killed mid-delivery: sent again (same id), counted.
        c = alert(9)
        client.set(claimed_key(c.alert_id, topic_prefix), "dead-host:1:0")
        assert ledger.deliver_once(c.alert_id, lambda done: notifier.send(c, done))
        assert ledger.resent_in_flight == 1
        assert not client.exists(claimed_key(c.alert_id, topic_prefix))
        assert client.exists(delivered_key(c.alert_id, topic_prefix))
        assert [d.webhook_id for d in rx.accepted()] == [a.alert_id, b.alert_id, c.alert_id]
        assert ledger._busy == {}  # nothing left behind
        notifier.close()
    client.close()
