"""The publishing SDK: idempotent, keyed, with a delivery report for every event.

``Publisher`` wraps a confluent-kafka producer with driftline's delivery
guarantees: ``enable.idempotence=true`` and ``acks=all`` (no duplicates or
reordering from internal retries), bounded delivery time, events keyed by
``stream_id`` (one stream -> one partition, in order), and a delivery callback
on every message that counts deliveries and failures. ``flush()`` raises
``DeliveryFailed`` if anything failed or is still in flight, so a producer
never finishes "successfully" having lost events.

Examples
--------
>>> from datetime import datetime, timezone
>>> from schemas.events import Label
>>> ev = Label(event_id="l1", stream_id="cam-1", target_event_id="p1", true_class="cat",
...            ts=datetime(2026, 1, 1, tzinfo=timezone.utc))
>>> event_key(ev)
b'cam-1'

Typical use::

    with Publisher("127.0.0.1:19092") as pub:
        for event in events:
            pub.publish(settings.topics.predictions, event)
    # leaving the block flushed: every event was acknowledged, or it raised
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from pydantic import BaseModel

from driftline.errors import DeliveryFailed, InvalidEvent
from driftline.kafka_config import producer_config, translate
from driftline.metrics import count_out
from schemas.wire import encode

if TYPE_CHECKING:
    from driftline.settings import Settings

log = logging.getLogger(__name__)

DeliveryCallback = Callable[[KafkaError | None, Message], None]

MAX_KEPT_ERRORS = 20


def event_key(event: BaseModel) -> bytes | None:
    """The Kafka key of an event: its ``stream_id`` (UTF-8), or ``None``."""
    stream_id = getattr(event, "stream_id", None)
    return stream_id.encode() if isinstance(stream_id, str) else None


class Publisher:
    """Publish wire events to Kafka with a delivery report for each.

    Parameters
    ----------
    bootstrap_servers
        ``host:port[,host:port]``.
    client_id
        Shows up in broker logs and metrics.
    max_event_bytes
        Larger payloads are refused before they are sent (``InvalidEvent``,
        reason ``oversize``) -- the same limit the consumers enforce.
    linger_ms
        How long librdkafka waits to batch messages.
    on_delivery
        Optional ``callback(err, msg)`` called for every delivery report
        (from ``poll``/``flush``, on the calling thread).
    delivery_timeout_ms
        Bound on internal retries; after it a message is reported failed.
    buffer_full_timeout_s
        How long ``publish`` waits for room when the local queue is full
        before raising ``DeliveryFailed``.
    **extra_conf
        Extra librdkafka settings, ``_`` standing for ``.``
        (``compression_type="lz4"``).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "driftline",
        max_event_bytes: int = 8 * 1024 * 1024,
        linger_ms: int = 5,
        on_delivery: DeliveryCallback | None = None,
        delivery_timeout_ms: int = 30_000,
        buffer_full_timeout_s: float = 30.0,
        **extra_conf: Any,
    ) -> None:
        self.max_event_bytes = max_event_bytes
        self.buffer_full_timeout_s = buffer_full_timeout_s
        self._user_callback = on_delivery
        self._conf = producer_config(
            bootstrap_servers,
            client_id=client_id,
            max_event_bytes=max_event_bytes,
            linger_ms=linger_ms,
            delivery_timeout_ms=delivery_timeout_ms,
            **extra_conf,
        )
        try:
            self._producer = Producer(self._conf)
        except KafkaException as exc:
            raise translate(exc, "create producer") from exc
        self._lock = threading.Lock()
        self.produced = 0
        self.delivered = 0
        self.failed = 0
        self._failed_unreported = 0
        self.errors: list[str] = []

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Publisher:
        """A publisher for ``settings.bootstrap_servers`` with its event size limit."""
        kwargs.setdefault("max_event_bytes", settings.max_event_bytes)
        # DRIFTLINE_KAFKA_OPTIONS and the typed Kafka passwords (SASL/TLS).
        kwargs = {**settings.kafka_client_options(), **kwargs}
        return cls(settings.bootstrap_servers, **kwargs)

    # -- delivery reports ------------------------------------------------
    def _report(self, err: KafkaError | None, msg: Message) -> None:
        with self._lock:
            if err is None:
                self.delivered += 1
            else:
                self.failed += 1
                self._failed_unreported += 1
                if len(self.errors) < MAX_KEPT_ERRORS:
                    self.errors.append(f"{msg.topic()}[{msg.partition()}]: {err.name()}: "
                                       f"{err.str()}")
        if err is None:
            count_out(msg.topic() or "")
        else:
            log.warning("delivery to %s failed: %s", msg.topic(), err.str())
        if self._user_callback is not None:
            self._user_callback(err, msg)

    @property
    def in_flight(self) -> int:
        """Messages handed to librdkafka and not yet acknowledged or failed."""
        return len(self._producer)

    # -- publishing ------------------------------------------------------
    def publish(self, topic: str, event: BaseModel, *, key: bytes | None = None) -> None:
        """Serialize ``event`` and send it, keyed by its ``stream_id`` unless ``key`` is given."""
        self.publish_raw(topic, key if key is not None else event_key(event), encode(event))

    def publish_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        *,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        """Send bytes as they are (dead letters, replaying a recording).

        Raises ``InvalidEvent`` (reason ``oversize``) for a payload above
        ``max_event_bytes``, ``DeliveryFailed`` when the local queue stays full
        for ``buffer_full_timeout_s``.
        """
        if len(value) > self.max_event_bytes:
            raise InvalidEvent(
                f"payload of {len(value)} bytes exceeds {self.max_event_bytes}", reason="oversize"
            )

        def report(err: KafkaError | None, msg: Message) -> None:
            self._report(err, msg)
            if on_delivery is not None:
                on_delivery(err, msg)

        deadline = time.monotonic() + self.buffer_full_timeout_s
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=report)
                break
            except BufferError:
                # The local queue is full: serve delivery reports to make room,
                # then try again -- bounded, so a dead broker surfaces as an error.
                if time.monotonic() >= deadline:
                    raise DeliveryFailed(
                        f"local producer queue still full after {self.buffer_full_timeout_s}s "
                        f"({self.in_flight} in flight); is the broker reachable?"
                    ) from None
                self._producer.poll(0.1)
            except KafkaException as exc:
                raise translate(exc, f"produce to {topic}") from exc
        with self._lock:
            self.produced += 1
        self._producer.poll(0)

    def send_and_wait(
        self, topic: str, key: bytes | None, value: bytes, *, timeout_s: float = 30.0
    ) -> None:
        """Send one message and block until the broker acknowledged it.

        For effects that must be durable before an offset is committed (dead
        letters). Raises ``DeliveryFailed`` on a failed report or a timeout.
        """
        done = threading.Event()
        outcome: list[KafkaError | None] = []

        def report(err: KafkaError | None, _msg: Message) -> None:
            outcome.append(err)
            done.set()

        self.publish_raw(topic, key, value, on_delivery=report)
        deadline = time.monotonic() + timeout_s
        # Several threads may share this producer: each polls until *its*
        # report arrived (whichever thread serves it).
        while not done.is_set() and time.monotonic() < deadline:
            self._producer.poll(0.05)
        if not done.is_set():
            raise DeliveryFailed(f"no delivery report from {topic} within {timeout_s}s")
        if outcome[0] is not None:
            with self._lock:
                self._failed_unreported = max(0, self._failed_unreported - 1)
            raise translate(outcome[0], f"deliver to {topic}")

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve pending delivery reports; returns how many were served."""
        return int(self._producer.poll(timeout_s))

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for every in-flight message; raise ``DeliveryFailed`` if any failed.

        Returns the number still in flight (always 0 when it returns).
        Failures are reported once: a later ``flush`` raises only for new ones.
        """
        remaining = int(self._producer.flush(timeout_s))
        with self._lock:
            failed, self._failed_unreported = self._failed_unreported, 0
            errors = list(self.errors)
        if failed or remaining:
            raise DeliveryFailed(
                f"{failed} message(s) failed and {remaining} still in flight after "
                f"{timeout_s}s; first errors: {errors[:3]}"
            )
        return remaining

    def close(self, timeout_s: float = 30.0) -> None:
        """Flush (raising on failures); the producer is released by garbage collection."""
        self.flush(timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.flush()
        else:
            # Already failing: still try to deliver what was sent, but do not
            # mask the original exception with a DeliveryFailed.
            try:
                self.flush()
            except DeliveryFailed as flush_exc:
                log.error("while handling %s: %s", exc_type.__name__, flush_exc)
