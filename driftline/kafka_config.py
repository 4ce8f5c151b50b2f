"""Shared confluent-kafka configuration and error translation.

Every Kafka client driftline creates (publisher, sink consumers, admin) is
configured here, so the delivery guarantees in ``docs/architecture.md`` live in one
place, and every ``KafkaError`` is turned into a ``driftline.errors`` type at
the boundary.

Examples
--------
>>> conf = producer_config("127.0.0.1:9092", client_id="cam-1")
>>> conf["enable.idempotence"], conf["acks"]
(True, 'all')
>>> consumer_config("127.0.0.1:9092", "g1")["enable.auto.commit"]
False
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException

from driftline.errors import DeliveryFailed, DriftlineError, PermanentError, TransientError

# Headroom for the record batch overhead above the largest event we accept.
_BATCH_OVERHEAD = 64 * 1024


def producer_config(
    bootstrap_servers: str,
    *,
    client_id: str = "driftline",
    max_event_bytes: int = 8 * 1024 * 1024,
    linger_ms: int = 5,
    delivery_timeout_ms: int = 30_000,
    **extra: Any,
) -> dict[str, Any]:
    """Producer settings: idempotent, ``acks=all``, bounded delivery time.

    ``message.timeout.ms`` (librdkafka's ``delivery.timeout.ms``) bounds the
    retries: an idempotent producer retries internally until it expires, then
    the delivery report carries the error (never a silent drop).
    """
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": linger_ms,
        "message.timeout.ms": delivery_timeout_ms,
        "message.max.bytes": max(1_000_000, max_event_bytes + _BATCH_OVERHEAD),
    }
    conf.update({k.replace("_", "."): v for k, v in extra.items()})
    return conf


def consumer_config(
    bootstrap_servers: str,
    group_id: str,
    *,
    client_id: str = "driftline",
    session_timeout_ms: int = 10_000,
    **extra: Any,
) -> dict[str, Any]:
    """Consumer settings for at-least-once sinks: manual commits, start at earliest.

    ``enable.auto.commit=false``: an offset is committed only after the
    message's effect happened, so a crash re-delivers instead of losing.

    ``session.timeout.ms`` is 10 s rather than librdkafka's 45 s: a dead sink
    is noticed sooner, and Tansu completes a group join only after half the
    session timeout (measured: 45 s -> 23 s, 10 s -> 5 s, 6 s -> 3 s; 6 s is
    Apache Kafka's default minimum).
    """
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "client.id": client_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "session.timeout.ms": session_timeout_ms,
        "heartbeat.interval.ms": min(3000, session_timeout_ms // 3),
    }
    conf.update({k.replace("_", "."): v for k, v in extra.items()})
    return conf


def translate(err: KafkaError | KafkaException | BaseException, what: str) -> DriftlineError:
    """Map a confluent-kafka error to ``TransientError``/``PermanentError``.

    Examples
    --------
    >>> e = translate(KafkaError(KafkaError._MSG_TIMED_OUT), "deliver")
    >>> type(e).__name__
    'DeliveryFailed'
    >>> type(translate(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), "deliver")).__name__
    'PermanentError'
    """
    kerr = err.args[0] if isinstance(err, KafkaException) and err.args else err
    if not isinstance(kerr, KafkaError):
        return TransientError(f"{what}: {err}")
    msg = f"{what}: {kerr.name()}: {kerr.str()}"
    if kerr.code() in (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_CONFIG) or kerr.fatal():
        return PermanentError(msg, reason="kafka_" + kerr.name().lower().lstrip("_"))
    if kerr.code() in (KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError._QUEUE_FULL):
        return DeliveryFailed(msg)
    return TransientError(msg)
