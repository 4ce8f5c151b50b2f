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

import logging
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException

from driftline.errors import (
    ConfigError,
    DeliveryFailed,
    DriftlineError,
    PermanentError,
    TransientError,
)
from driftline.service_log import client_logging

if TYPE_CHECKING:
    from driftline.settings import Settings

log = logging.getLogger(__name__)

# Headroom for the record batch overhead above the largest event we accept.
_BATCH_OVERHEAD = 64 * 1024


def producer_config(
    bootstrap_servers: str,
    *,
    client_id: str = "driftline",
    max_event_bytes: int = 8 * 1024 * 1024,
    linger_ms: int = 5,
    delivery_timeout_ms: int = 30_000,
    options: Mapping[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Producer settings: idempotent, ``acks=all``, bounded delivery time.

    ``options``: librdkafka properties from ``Settings.kafka_client_options()``
    (security: ``security.protocol``, ``sasl.*``, ``ssl.*``), applied last.

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
        # librdkafka's logs and errors through the project's logging; a broker
        # that is down is reported once per change (driftline.service_log).
        **client_logging(bootstrap_servers),
    }
    conf.update({k.replace("_", "."): v for k, v in extra.items()})
    conf.update(options or {})
    return conf


def consumer_config(
    bootstrap_servers: str,
    group_id: str,
    *,
    client_id: str = "driftline",
    session_timeout_ms: int = 10_000,
    options: Mapping[str, str] | None = None,
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
        **client_logging(bootstrap_servers),
    }
    conf.update({k.replace("_", "."): v for k, v in extra.items()})
    conf.update(options or {})
    return conf


# -- security: one block of options for every client ----------------------------------


def client_options(settings: Settings) -> dict[str, str]:
    """The librdkafka security/tuning properties every client of ``settings`` gets."""
    return settings.kafka_client_options()


# What faust (aiokafka) can be given, mapped from librdkafka's names; other
# options apply to the confluent-kafka clients only (logged at start-up).
_FAUST_MAPPED = frozenset({
    "security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password",
    "ssl.ca.location", "ssl.certificate.location", "ssl.key.location", "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
})


def ssl_context(options: Mapping[str, str]) -> ssl.SSLContext:
    """A client TLS context from librdkafka's ``ssl.*`` options (CA, client cert, key)."""
    try:
        ctx = ssl.create_default_context(cafile=options.get("ssl.ca.location"))
        cert = options.get("ssl.certificate.location")
        if cert:
            ctx.load_cert_chain(cert, options.get("ssl.key.location"),
                                options.get("ssl.key.password"))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("DRIFTLINE_KAFKA_OPTIONS",
                          f"cannot build a TLS context from the ssl.* options: {exc}") from None
    if options.get("ssl.endpoint.identification.algorithm", "https").lower() == "none":
        ctx.check_hostname = False
    return ctx


def faust_credentials(options: Mapping[str, str]) -> Any:
    """``broker_credentials`` for ``faust.App`` from librdkafka options, or ``None``.

    ``security.protocol`` ``SSL`` -> ``faust.SSLCredentials``; ``SASL_SSL`` /
    ``SASL_PLAINTEXT`` -> ``faust.SASLCredentials`` (PLAIN, SCRAM-SHA-256/512;
    with a TLS context for ``SASL_SSL``).

    >>> faust_credentials({}) is None
    True
    >>> c = faust_credentials({"security.protocol": "SASL_PLAINTEXT",
    ...                        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "u",
    ...                        "sasl.password": "p"})
    >>> type(c).__name__, c.mechanism.value, c.username, c.ssl_context is None
    ('SASLCredentials', 'SCRAM-SHA-512', 'u', True)
    """
    import faust

    protocol = options.get("security.protocol", "PLAINTEXT").upper()
    ignored = sorted(set(options) - _FAUST_MAPPED)
    if ignored:
        log.warning("kafka options not applied to the faust worker's clients (aiokafka has "
                    "no equivalent): %s", ", ".join(ignored))
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(options))
    if protocol in ("SASL_SSL", "SASL_PLAINTEXT"):
        mechanism = options.get("sasl.mechanism", options.get("sasl.mechanisms", "PLAIN"))
        if mechanism.upper() not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise ConfigError("DRIFTLINE_KAFKA_OPTIONS",
                              f"sasl.mechanism {mechanism!r} is not supported by the worker "
                              "(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
        return faust.SASLCredentials(
            username=options.get("sasl.username"),
            password=options.get("sasl.password"),
            mechanism=mechanism.upper(),
            ssl_context=ssl_context(options) if protocol == "SASL_SSL" else None,
        )
    raise ConfigError("DRIFTLINE_KAFKA_OPTIONS", f"unknown security.protocol {protocol!r}")


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
