"""The consumer loop that drives a sink: commit an offset only after its effect.

For every message on the subscribed topic(s):

1. decode it (``decode_as`` the route's model); bytes that do not decode go
   to the dead-letter topic with reason ``invalid_json``/``invalid_event``/...;
2. call the sink's ``handle(event)``;
3. commit the message's offset -- only now, after the effect happened (or
   after the message was acknowledged by the dead-letter topic).

``handle`` raising ``TransientError`` (Redis restarting, broker busy) means
"not now": the consumer seeks back to the same offset and tries again after a
backoff -- nothing is committed, nothing is skipped. ``PermanentError`` (the
webhook receiver refused or never accepted the alert) means "never": the
original bytes go to the dead-letter topic with the error's ``reason`` and the
stream goes on. Any other exception is retried a few times (it may be a
glitch) and then dead-lettered with reason ``sink_error``, so one poison
message cannot block a partition forever.

Delivery is at-least-once: a crash between the effect and the commit
re-delivers the message, so ``handle`` must be idempotent (the Redis writer
and the webhook's ``webhook-id`` are).

Every message counts in ``driftline_events_in_total``, its handling time in
``driftline_processing_seconds{stage}``, its outcome in
``driftline_sink_messages_total`` and a dead letter in
``driftline_dead_letters_total`` (``driftline.metrics``).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from pydantic import BaseModel

from driftline.errors import DriftlineError, InvalidEvent, PermanentError, TransientError
from driftline.kafka_config import consumer_config, translate
from driftline.metrics import SINK_MESSAGES, count_dead_letter, count_in, timed
from driftline.settings import Settings
from producers.publisher import Publisher
from schemas.events import DeadLetter, StreamState
from schemas.wire import decode_as, encode
from sinks.backoff import full_jitter

log = logging.getLogger(__name__)

UNEXPECTED_ERROR_ATTEMPTS = 5

Route = tuple[type[BaseModel], Callable[[Any], object]]


@dataclass
class SinkStats:
    """What one sink loop did; updated live (read it from another thread)."""

    handled: int = 0
    dead_lettered: int = 0
    retried: int = 0
    commit_failures: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)


def run_sink(
    settings: Settings,
    group_id: str,
    routes: Mapping[str, Route],
    stop: threading.Event,
    dead_letter: Publisher,
    *,
    stage: str | None = None,
    assigned: threading.Event | None = None,
    stats: SinkStats | None = None,
    poll_timeout_s: float = 0.5,
    max_backoff_s: float = 5.0,
    consumer_conf: Mapping[str, Any] | None = None,
) -> SinkStats:
    """Run one consumer group member over ``routes`` until ``stop`` is set.

    Parameters
    ----------
    settings
        Broker address, topic names (dead-letter topic) and ``max_event_bytes``.
    group_id
        Consumer group; each sink has its own (``<consumer_group>.redis``...).
    routes
        ``{topic: (model, handle)}``: messages on ``topic`` are decoded as
        ``model`` and passed to ``handle``.
    stop
        Set it to make the loop return (after the message in hand).
    dead_letter
        Publisher used for dead letters; each is acknowledged before the
        offset of the message it replaces is committed.
    stage
        Recorded in dead letters (default ``sink:<group_id>``).
    assigned
        Set once partitions are assigned (tests wait on it instead of sleeping).
    stats
        Updated in place; also returned.
    """
    stage = stage or f"sink:{group_id}"
    stats = stats if stats is not None else SinkStats()
    consumer = _open_consumer(settings, group_id, stage, consumer_conf)

    def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("%s assigned %s", stage, [(p.topic, p.partition) for p in partitions])
        if assigned is not None:
            assigned.set()

    consumer.subscribe(list(routes), on_assign=on_assign)
    attempts: dict[tuple[str, int], int] = {}
    pending: Message | None = None
    try:
        while not stop.is_set():
            msg = pending if pending is not None else consumer.poll(poll_timeout_s)
            pending = None
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise translate(err, f"consume {group_id}")
                log.warning("%s: consumer error %s", stage, err.str())
                continue
            tp = _where(msg)[:2]
            n = attempts.get(tp, 0) + 1
            if n == 1:
                count_in(tp[0])  # once per message, not per retry
            with timed(stage):
                done = _process(msg, routes, settings, dead_letter, stage, stats, n)
            if done:
                attempts.pop(tp, None)
                _commit(consumer, msg, stage, stats)
                continue
            # Not done: go back to the same offset and retry after a backoff;
            # never move past a message whose effect did not happen.
            attempts[tp] = n
            stats.retried += 1
            SINK_MESSAGES.labels(stage, "retried").inc()
            try:
                consumer.seek(TopicPartition(*_where(msg)))
            except KafkaException as exc:
                # Seek refused (partition state in flux): hold the message and
                # retry it in place instead of polling past it.
                log.info("%s: seek failed (%s); retrying in place", stage, exc)
                pending = msg
            stop.wait(full_jitter(n, max_s=max_backoff_s))
    finally:
        consumer.close()
    return stats


def _where(msg: Message) -> tuple[str, int, int]:
    """Topic, partition, offset of a consumed (non-error) message."""
    return msg.topic() or "", msg.partition() or 0, msg.offset() or 0


def _process(
    msg: Message,
    routes: Mapping[str, Route],
    settings: Settings,
    dead_letter: Publisher,
    stage: str,
    stats: SinkStats,
    attempt: int,
) -> bool:
    """Handle one message; ``True`` when its offset may be committed."""
    model, handle = routes[_where(msg)[0]]
    raw = msg.value() or b""
    try:
        # Snapshots are the worker's own output, bounded by its producer, not by
        # the input limit (a stream's snapshot in a PCA warm-up nears 1 MB).
        limit = settings.output_max_bytes if model is StreamState else settings.max_event_bytes
        event = decode_as(model, raw, max_bytes=limit)
    except InvalidEvent as exc:
        return _dead_letter(msg, exc.reason, str(exc), settings, dead_letter, stage, stats)
    try:
        handle(event)
    except TransientError as exc:
        log.warning("%s: transient failure at %s[%d]@%d (attempt %d): %s",
                    stage, msg.topic(), msg.partition(), msg.offset(), attempt, exc)
        return False
    except PermanentError as exc:
        return _dead_letter(msg, exc.reason, str(exc), settings, dead_letter, stage, stats)
    except Exception as exc:
        log.exception("%s: unexpected error at %s[%d]@%d (attempt %d)",
                      stage, msg.topic(), msg.partition(), msg.offset(), attempt)
        if attempt < UNEXPECTED_ERROR_ATTEMPTS:
            return False
        detail = f"{type(exc).__name__}: {exc}"
        return _dead_letter(msg, "sink_error", detail, settings, dead_letter, stage, stats)
    stats.handled += 1
    SINK_MESSAGES.labels(stage, "handled").inc()
    return True


def _dead_letter(
    msg: Message,
    reason: str,
    detail: str,
    settings: Settings,
    dead_letter: Publisher,
    stage: str,
    stats: SinkStats,
) -> bool:
    """Publish the original bytes with the reason; ``True`` once acknowledged."""
    letter = DeadLetter.bounded(
        original=msg.value() or b"",
        detail=detail,
        max_event_bytes=dead_letter.max_event_bytes,
        reason=reason,
        source_topic=_where(msg)[0],
        source_partition=msg.partition(),
        source_offset=msg.offset(),
        key=msg.key(),
        stage=stage,
    )
    try:
        dead_letter.send_and_wait(settings.topics.dead_letter, msg.key(), encode(letter))
    except DriftlineError as exc:
        log.warning("%s: dead letter for %s[%d]@%d not delivered (%s); will retry",
                    stage, msg.topic(), msg.partition(), msg.offset(), exc)
        return False
    log.warning("%s: dead-lettered %s[%d]@%d: %s: %s",
                stage, msg.topic(), msg.partition(), msg.offset(), reason, detail[:200])
    stats.dead_lettered += 1
    stats.dead_letter_reasons[reason] = stats.dead_letter_reasons.get(reason, 0) + 1
    SINK_MESSAGES.labels(stage, "dead_lettered").inc()
    count_dead_letter(stage, reason)
    return True


def _commit(consumer: Consumer, msg: Message, stage: str, stats: SinkStats) -> None:
    try:
        consumer.commit(message=msg, asynchronous=False)
    except KafkaException as exc:
        # The effect already happened; a failed commit (rebalance, coordinator
        # moved) only means this message may be delivered again, and every
        # sink effect is idempotent.
        stats.commit_failures += 1
        log.warning("%s: commit of %s[%d]@%d failed: %s",
                    stage, msg.topic(), msg.partition(), msg.offset(), exc)


# -- concurrent delivery (webhooks): no head-of-line blocking ---------------------------


def run_sink_concurrent(
    settings: Settings,
    group_id: str,
    routes: Mapping[str, Route],
    stop: threading.Event,
    dead_letter: Publisher,
    *,
    concurrency: int,
    stage: str | None = None,
    assigned: threading.Event | None = None,
    stats: SinkStats | None = None,
    poll_timeout_s: float = 0.2,
    max_backoff_s: float = 5.0,
    consumer_conf: Mapping[str, Any] | None = None,
) -> SinkStats:
    """``run_sink`` with up to ``concurrency`` messages handled at once.

    One slow or failing message (a receiver that hangs on it, or retries
    with backoff for minutes) no longer holds back the messages behind it:
    they are handled by the other workers. Offsets are still committed in
    order, only up to the first message whose effect has not happened yet
    (delivered, or dead-lettered), so a crash re-delivers, never loses; what
    is re-delivered was maybe handled already, and ``handle`` is idempotent.

    A message's ``TransientError`` is retried in its worker with backoff
    (not by seeking), until ``stop``.
    """
    stage = stage or f"sink:{group_id}"
    stats = stats if stats is not None else SinkStats()
    consumer = _open_consumer(settings, group_id, stage, consumer_conf)
    lock = threading.Lock()
    # Per partition, offsets in the order consumed -> their outcome (None: in flight).
    window: dict[tuple[str, int], OrderedDict[int, bool | None]] = {}

    def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("%s assigned %s", stage, [(p.topic, p.partition) for p in partitions])
        if assigned is not None:
            assigned.set()

    def on_revoke(c: Consumer, partitions: list[TopicPartition]) -> None:
        commit_ready()
        with lock:
            for p in partitions:
                # Still in flight: their effect may happen, but the new owner
                # re-delivers them (at least once, idempotent).
                window.pop((p.topic, p.partition), None)

    def handle_one(msg: Message) -> bool:
        n = 0
        while True:
            n += 1
            if n == 1:
                count_in(_where(msg)[0])
            with timed(stage):
                done = _process(msg, routes, settings, dead_letter, stage, stats, n)
            if done:
                return True
            with lock:
                stats.retried += 1
            SINK_MESSAGES.labels(stage, "retried").inc()
            if stop.wait(full_jitter(n, max_s=max_backoff_s)):
                return False

    def finished(tp: tuple[str, int], offset: int, fut: Future[bool]) -> None:
        try:
            ok = fut.result()
        except BaseException as exc:  # _process contains its errors; be safe anyway
            log.exception("%s: worker failed at %s[%d]@%d: %s", stage, *tp, offset, exc)
            ok = False
        with lock:
            offsets = window.get(tp)
            if offsets is not None and offset in offsets:
                offsets[offset] = ok

    def commit_ready() -> None:
        ready: list[TopicPartition] = []
        with lock:
            for (topic, partition), offsets in window.items():
                last = None
                while offsets:
                    first_offset, outcome = next(iter(offsets.items()))
                    if outcome is not True:
                        break
                    offsets.popitem(last=False)
                    last = first_offset
                if last is not None:
                    ready.append(TopicPartition(topic, partition, last + 1))
        if ready:
            try:
                consumer.commit(offsets=ready, asynchronous=False)
            except KafkaException as exc:
                stats.commit_failures += 1
                log.warning("%s: commit of %s failed: %s", stage,
                            [(t.topic, t.partition, t.offset) for t in ready], exc)

    def in_flight() -> int:
        with lock:
            return sum(1 for offsets in window.values() for v in offsets.values() if v is None)

    consumer.subscribe(list(routes), on_assign=on_assign, on_revoke=on_revoke)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"{stage}-send")
    try:
        while not stop.is_set():
            commit_ready()
            if in_flight() >= concurrency:
                stop.wait(0.01)
                continue
            msg = consumer.poll(poll_timeout_s)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise translate(err, f"consume {group_id}")
                log.warning("%s: consumer error %s", stage, err.str())
                continue
            topic, partition, offset = _where(msg)
            with lock:
                window.setdefault((topic, partition), OrderedDict())[offset] = None
            fut = pool.submit(handle_one, msg)
            fut.add_done_callback(_callback(finished, (topic, partition), offset))
    finally:
        # Stopping: workers in a backoff give up at once (they wait on `stop`),
        # a notifier mid-retry raises TransientError; on an error, do not wait.
        pool.shutdown(wait=stop.is_set(), cancel_futures=True)
        commit_ready()
        consumer.close()
    return stats


def _callback(
    finished: Callable[[tuple[str, int], int, Future[bool]], None], tp: tuple[str, int],
    offset: int,
) -> Callable[[Future[bool]], None]:
    return lambda fut: finished(tp, offset, fut)


def _open_consumer(
    settings: Settings, group_id: str, stage: str, consumer_conf: Mapping[str, Any] | None
) -> Consumer:
    """A sink's consumer: manual commits, the deployment's Kafka options, test overrides."""
    conf = consumer_config(settings.bootstrap_servers, group_id, client_id=stage,
                           options=settings.kafka_client_options())
    conf.update(consumer_conf or {})
    try:
        return Consumer(conf)
    except KafkaException as exc:
        raise translate(exc, f"create consumer {group_id}") from exc
