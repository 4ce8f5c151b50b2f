"""Re-drive dead-lettered webhook deliveries (``driftline redrive``).

An alert the webhook sink could not deliver (the receiver was down for the
whole retry budget, or refused it) is on ``<prefix>.dead-letter`` with reason
``webhook_undeliverable`` and the alert's bytes. Once the receiver is back,
``redrive`` sends those alerts again, signed as before and with the same
``webhook-id`` (the alert id), so a receiver that already has one (a
delivery whose answer was lost) deduplicates it.

Idempotent on the alert id:

- within one run an alert id is sent at most once (an alert dead-lettered
  twice, after a redelivery, is sent once);
- across runs, progress is the offsets of the ``<consumer_group>.redrive``
  group, committed after each alert was accepted (or skipped): a second run
  sends nothing again. ``from_beginning`` reads the whole topic with a fresh
  group (receivers deduplicate on ``webhook-id``).

A receiver still unreachable stops the run at that alert (nothing after it is
committed: the next run starts there). An alert the receiver refuses (4xx) is
counted as ``refused`` and passed (it stays on the dead-letter topic).

No group join: partitions are assigned at the group's committed offsets.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from driftline.errors import DriftlineError, InvalidEvent
from driftline.kafka_config import consumer_config, translate
from driftline.settings import Settings
from schemas.events import Alert, DeadLetter
from schemas.wire import decode_as
from sinks.webhook import WebhookNotifier, WebhookUndeliverable

log = logging.getLogger(__name__)

REASON = "webhook_undeliverable"


@dataclass
class RedriveReport:
    """What one ``redrive`` run did."""

    sent: int = 0
    duplicates: int = 0
    refused: int = 0
    unreadable: int = 0
    other_reasons: int = 0
    stopped_at: str | None = None  # why the run stopped early (receiver still down)
    alert_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.stopped_at is None


def redrive(
    settings: Settings,
    notifier: WebhookNotifier,
    *,
    from_beginning: bool = False,
    idle_s: float = 3.0,
    timeout_s: float = 600.0,
    stop: threading.Event | None = None,
) -> RedriveReport:
    """Send the dead-lettered webhook alerts again; see the module docstring."""
    topic = settings.topics.dead_letter
    group = (f"{settings.consumer_group}.redrive-{uuid.uuid4().hex[:8]}" if from_beginning
             else f"{settings.consumer_group}.redrive")
    stop = stop or threading.Event()
    report = RedriveReport()
    try:
        consumer = Consumer(consumer_config(settings.bootstrap_servers, group,
                                            client_id="driftline-redrive",
                                            options=settings.kafka_client_options()))
    except KafkaException as exc:
        raise translate(exc, "create redrive consumer") from exc
    seen: set[str] = set()
    try:
        meta = consumer.list_topics(topic, timeout=30).topics.get(topic)
        if meta is None or meta.error is not None:
            raise DriftlineError(f"topic {topic} not found")
        parts = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        committed = consumer.committed(parts, timeout=30)
        consumer.assign([TopicPartition(topic, tp.partition,
                                        tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                         for tp in committed])
        last = time.monotonic()
        deadline = last + timeout_s
        while not stop.is_set() and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                if time.monotonic() - last >= idle_s:
                    break
                continue
            last = time.monotonic()
            if msg.error():
                log.warning("redrive: consumer error %s", msg.error())
                continue
            if not _one(msg.value() or b"", notifier, settings, seen, report):
                # The receiver is still down: stop here, uncommitted.
                break
            consumer.commit(message=msg, asynchronous=False)
    finally:
        consumer.close()
    return report


def _one(raw: bytes, notifier: WebhookNotifier, settings: Settings, seen: set[str],
         report: RedriveReport) -> bool:
    """Handle one dead letter; ``False`` when the run must stop (receiver down)."""
    try:
        letter = decode_as(DeadLetter, raw, settings.max_event_bytes)
    except InvalidEvent:
        report.unreadable += 1
        return True
    if letter.reason != REASON:
        report.other_reasons += 1
        return True
    try:
        if letter.truncated:
            raise InvalidEvent("original truncated", reason="oversize")
        alert = decode_as(Alert, letter.original, settings.max_event_bytes)
    except InvalidEvent as exc:
        log.warning("redrive: dead letter without a readable alert (%s)", exc)
        report.unreadable += 1
        return True
    if alert.alert_id in seen:
        report.duplicates += 1
        return True
    try:
        notifier.send(alert)
    except WebhookUndeliverable as exc:
        if exc.status is not None and 400 <= exc.status < 500:
            log.warning("redrive: alert %s refused again: %s", alert.alert_id, exc)
            report.refused += 1
            seen.add(alert.alert_id)
            return True
        report.stopped_at = f"alert {alert.alert_id}: {exc}"
        return False
    seen.add(alert.alert_id)
    report.sent += 1
    report.alert_ids.append(alert.alert_id)
    return True
