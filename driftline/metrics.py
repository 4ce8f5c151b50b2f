"""Prometheus metrics of driftline's services, and the ``/metrics`` endpoint.

One set of metrics for every process (worker, sinks, publishers), in
prometheus-client's default registry. A process exposes them with
``serve_metrics(settings.metrics_port)`` (``DRIFTLINE_METRICS_PORT``; unset
or 0 = not served); ``deploy/prometheus.yml`` scrapes the compose services.

=====================================  ======================  =====================================
metric                                 labels                  counted by
=====================================  ======================  =====================================
``driftline_events_in_total``          topic                   ``count_in``: every consumed message
``driftline_events_out_total``         topic                   ``count_out``: every acknowledged
                                                               produce (``Publisher`` does it)
``driftline_alerts_total``             signal                  ``count_alert``: the worker, per
                                                               alert fired
``driftline_dead_letters_total``       stage, reason           ``count_dead_letter``
``driftline_monitor_errors_total``     --                      ``count_monitor_error``
``driftline_processing_seconds``       stage                   ``observe_processing`` / ``timed``
``driftline_webhook_deliveries_total`` outcome                 the webhook notifier and sink
``driftline_redis_writes_total``       kind, outcome           the Redis writer
``driftline_sink_messages_total``      sink, outcome           the sink loop
``driftline_api_requests_total``       route, method, status   the HTTP API, per request
``driftline_api_controls_total``       action                  the HTTP API, per published control
=====================================  ======================  =====================================

Examples
--------
>>> before = EVENTS_IN.labels("demo.frames")._value.get()
>>> count_in("demo.frames", 3)
>>> EVENTS_IN.labels("demo.frames")._value.get() - before
3.0
>>> serve_metrics(None) is None and serve_metrics(0) is None
True
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Histogram, start_http_server

from driftline.errors import ConfigError

EVENTS_IN = Counter("driftline_events_in", "Messages consumed from Kafka, by topic.", ["topic"])
EVENTS_OUT = Counter(
    "driftline_events_out", "Messages produced to Kafka and acknowledged, by topic.", ["topic"]
)
ALERTS = Counter("driftline_alerts", "Alerts fired, by signal.", ["signal"])
DEAD_LETTERS = Counter(
    "driftline_dead_letters",
    "Inputs sent to the dead-letter topic, by stage (worker, redis, webhook, publish) and "
    "reason (invalid_json, oversize, monitor_error, webhook_undeliverable, ...).",
    ["stage", "reason"],
)
MONITOR_ERRORS = Counter(
    "driftline_monitor_errors", "Events a stream monitor failed on (dead-lettered)."
)
PROCESSING_SECONDS = Histogram(
    "driftline_processing_seconds",
    "Time to process one message (or one batch, for the embedder), by stage.",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
             10.0, 30.0),
)
WEBHOOK_DELIVERIES = Counter(
    "driftline_webhook_deliveries",
    "Webhook outcomes: delivered, retried (a failed attempt that is retried), undeliverable, "
    "skipped_disabled, skipped_snoozed, skipped_delivered (delivered before a restart).",
    ["outcome"],
)
REDIS_WRITES = Counter(
    "driftline_redis_writes",
    "Writes to Redis by kind (alert, state) and outcome (written, unchanged: a redelivered "
    "alert or an older snapshot).",
    ["kind", "outcome"],
)
API_REQUESTS = Counter(
    "driftline_api_requests",
    "HTTP API requests (driftline api), by route template, method and status code.",
    ["route", "method", "status"],
)
API_CONTROLS = Counter(
    "driftline_api_controls",
    "Operator controls the API published on the control topic, by action.",
    ["action"],
)
SINK_MESSAGES = Counter(
    "driftline_sink_messages",
    "Messages taken from Kafka by a sink, by outcome (handled, dead_lettered, retried).",
    ["sink", "outcome"],
)


def count_in(topic: str, n: int = 1) -> None:
    """``n`` messages consumed from ``topic``."""
    EVENTS_IN.labels(topic).inc(n)


def count_out(topic: str, n: int = 1) -> None:
    """``n`` messages produced to ``topic`` and acknowledged by the broker."""
    EVENTS_OUT.labels(topic).inc(n)


def count_alert(signal: str) -> None:
    """One alert fired on ``signal``."""
    ALERTS.labels(signal).inc()


def count_dead_letter(stage: str, reason: str) -> None:
    """One input dead-lettered by ``stage`` for ``reason``."""
    DEAD_LETTERS.labels(stage, reason).inc()


def count_monitor_error() -> None:
    """A stream monitor raised on an event."""
    MONITOR_ERRORS.inc()


def observe_processing(stage: str, seconds: float) -> None:
    """Record how long ``stage`` took over one message (or batch)."""
    PROCESSING_SECONDS.labels(stage).observe(seconds)


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """``with timed("monitor"): ...`` records the block's duration (raising or not)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        observe_processing(stage, time.perf_counter() - start)


def serve_metrics(port: int | None, addr: str = "0.0.0.0") -> WSGIServer | None:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread; ``None``/0 = disabled.

    Returns the server (``shutdown()`` stops it), or ``None`` when disabled.
    A port that cannot be bound is a ``ConfigError`` naming the setting.
    """
    if not port:
        return None
    try:
        server, _thread = start_http_server(port, addr)
    except OSError as exc:
        raise ConfigError("DRIFTLINE_METRICS_PORT", f"cannot serve metrics on {addr}:{port}: "
                          f"{exc.strerror or exc}") from None
    return server
