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
``driftline_stage_seconds``            stage                   per event (decode, monitor) or per
                                                               batch (quality, embed, produce)
``driftline_consumer_lag``             topic, partition        the worker, every second: high
                                                               watermark - next offset to read
``driftline_snapshot_bytes``           --                      size of each state snapshot sent
``driftline_snapshot_seconds``         --                      building + delivering one flush
``driftline_snapshot_age_seconds``     --                      oldest applied event not yet in a
                                                               delivered snapshot (snapshot lag)
``driftline_alerts_by_severity_total`` signal, severity        ``count_alert``
``driftline_live_monitors``            state (live, packed)    the worker, every second
``driftline_signal_statistic``         stream, signal          ``observe_snapshot``: the streams
``driftline_signal_threshold``         stream, signal          of ``StreamSeries`` only (capped)
``driftline_signal_streams_untracked`` --                      streams left out by the cap
=====================================  ======================  =====================================

``/healthz`` answers ``200 ok`` on the same port (``serve_metrics``).

Cardinality: the per-stream signal series are capped at ``SIGNAL_STREAM_CAP``
streams (100; with ~25 signals each, at most ~2,500 series per gauge and
worker). A fleet of thousands of cameras would otherwise make Prometheus hold
a series per camera and signal. Streams are taken in as they come until the
cap; after that a stream that *alerts* replaces the tracked stream that
alerted least recently (never-alerted first), so the streams an operator looks
at are the ones on the dashboard; the others are counted in
``driftline_signal_streams_untracked`` and have their alerts in
``driftline_alerts_by_severity_total`` and Redis.

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

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

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
    "skipped_disabled, skipped_snoozed, skipped_delivered (delivered before a restart), "
    "resent_in_flight (claimed by a sink that stopped mid-delivery: sent again, same id).",
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


STAGE_SECONDS = Histogram(
    "driftline_stage_seconds",
    "Time spent per stage: decode and monitor per event, quality, embed and produce per batch.",
    ["stage"],
    buckets=(0.00001, 0.00003, 0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0,
             10.0),
)
CONSUMER_LAG = Gauge(
    "driftline_consumer_lag",
    "Messages not yet read, per input partition of this worker (high watermark - position).",
    ["topic", "partition"],
)
SNAPSHOT_BYTES = Histogram(
    "driftline_snapshot_bytes", "Size of each stream state snapshot produced.",
    buckets=(1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000),
)
SNAPSHOT_SECONDS = Histogram(
    "driftline_snapshot_seconds",
    "Time to build and deliver one flush of stream snapshots (all streams due at once).",
    buckets=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
)
SNAPSHOT_AGE = Gauge(
    "driftline_snapshot_age_seconds",
    "Age of the oldest applied event that no delivered snapshot covers yet (snapshot lag: "
    "its offset cannot be committed before).",
)
ALERTS_BY_SEVERITY = Counter(
    "driftline_alerts_by_severity", "Alerts fired, by signal and severity.", ["signal", "severity"]
)
LIVE_MONITORS = Gauge(
    "driftline_live_monitors",
    "Stream monitors held by this worker: live, or packed (evicted, compressed).", ["state"]
)
SIGNAL_STATISTIC = Gauge(
    "driftline_signal_statistic",
    "A signal's detector statistic at the stream's last snapshot (capped streams, see docs).",
    ["stream", "signal"],
)
SIGNAL_THRESHOLD = Gauge(
    "driftline_signal_threshold",
    "The threshold the statistic is compared with (capped streams, as the statistic).",
    ["stream", "signal"],
)
SIGNAL_UNTRACKED = Gauge(
    "driftline_signal_streams_untracked",
    "Streams whose signal series are left out by SIGNAL_STREAM_CAP.",
)

SIGNAL_STREAM_CAP = 100
"""Most streams with per-stream signal series (see the module docstring)."""


class StreamSeries:
    """Which streams get per-stream signal series: bounded, alerting streams first.

    >>> s = StreamSeries(cap=2)
    >>> [s.admit(x) for x in ("a", "b", "c")]
    [True, True, False]
    >>> s.alerted("c")  # c takes the place of the least recently alerted (a, never)
    'a'
    >>> sorted(s.tracked), s.untracked
    (['b', 'c'], 1)
    """

    def __init__(self, cap: int = SIGNAL_STREAM_CAP) -> None:
        self.cap = cap
        self.tracked: dict[str, int] = {}  # stream -> clock of its last alert (0: never)
        self.left_out: set[str] = set()
        self._clock = 0

    @property
    def untracked(self) -> int:
        return len(self.left_out)

    def admit(self, stream: str) -> bool:
        """True if ``stream`` has (or now gets) its own series."""
        if stream in self.tracked:
            return True
        if len(self.tracked) < self.cap:
            self.tracked[stream] = 0
            self.left_out.discard(stream)
            return True
        if len(self.left_out) < 100 * self.cap:  # bounded too
            self.left_out.add(stream)
        return False

    def alerted(self, stream: str) -> str | None:
        """``stream`` alerted: track it; returns the stream it replaced, if any."""
        self._clock += 1
        if stream in self.tracked or len(self.tracked) < self.cap:
            self.tracked[stream] = self._clock
            self.left_out.discard(stream)
            return None
        victim = min(self.tracked, key=lambda k: self.tracked[k])
        del self.tracked[victim]
        self.tracked[stream] = self._clock
        self.left_out.discard(stream)
        self.left_out.add(victim)
        return victim


SERIES = StreamSeries()
_SERIES_SIGNALS: dict[str, set[str]] = {}


def _drop_stream_series(stream: str) -> None:
    for signal in _SERIES_SIGNALS.pop(stream, set()):
        for gauge in (SIGNAL_STATISTIC, SIGNAL_THRESHOLD):
            try:
                gauge.remove(stream, signal)
            except KeyError:
                continue


def observe_stage(stage: str, seconds: float) -> None:
    """``stage`` (decode, quality, embed, monitor, produce) took ``seconds``."""
    STAGE_SECONDS.labels(stage).observe(seconds)


def set_lag(topic: str, partition: int, lag: int) -> None:
    """Consumer lag of one input partition."""
    CONSUMER_LAG.labels(topic, str(partition)).set(max(0, lag))


def set_live_monitors(live: int, packed: int) -> None:
    LIVE_MONITORS.labels("live").set(live)
    LIVE_MONITORS.labels("packed").set(packed)


def observe_snapshot(stream: str, nbytes: int,
                     signals: Iterable[tuple[str, float | None, float | None]]) -> None:
    """One snapshot of ``stream`` sent: its size, and its signals' (name, statistic, threshold)."""
    SNAPSHOT_BYTES.observe(nbytes)
    if not SERIES.admit(stream):
        SIGNAL_UNTRACKED.set(SERIES.untracked)
        return
    names = _SERIES_SIGNALS.setdefault(stream, set())
    for name, statistic, threshold in signals:
        if statistic is None:
            continue
        names.add(name)
        SIGNAL_STATISTIC.labels(stream, name).set(statistic)
        if threshold is not None:
            SIGNAL_THRESHOLD.labels(stream, name).set(threshold)


def count_in(topic: str, n: int = 1) -> None:
    """``n`` messages consumed from ``topic``."""
    EVENTS_IN.labels(topic).inc(n)


def count_out(topic: str, n: int = 1) -> None:
    """``n`` messages produced to ``topic`` and acknowledged by the broker."""
    EVENTS_OUT.labels(topic).inc(n)


def count_alert(signal: str, severity: str = "warning", stream: str | None = None) -> None:
    """One alert fired on ``signal`` (of ``stream``: it gets its signal series, see the cap)."""
    ALERTS.labels(signal).inc()
    ALERTS_BY_SEVERITY.labels(signal, severity).inc()
    if stream is not None:
        victim = SERIES.alerted(stream)
        if victim is not None:
            _drop_stream_series(victim)
        SIGNAL_UNTRACKED.set(SERIES.untracked)


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


def health_app(metrics_app: Callable[..., Any]) -> Callable[..., Any]:
    """A WSGI app: ``/healthz`` answers ``200 ok``, every other path the metrics."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        return metrics_app(environ, start_response)

    return app


def serve_metrics(port: int | None, addr: str = "0.0.0.0") -> WSGIServer | None:
    """Serve ``/metrics`` and ``/healthz`` on ``addr:port`` from a daemon thread.

    ``None``/0 = disabled. Returns the server (``shutdown()`` stops it), or
    ``None`` when disabled. A port that cannot be bound is a ``ConfigError``
    naming the setting. ``/healthz`` answers while the process's threads
    run; it is the liveness probe of compose and Kubernetes.
    """
    if not port:
        return None
    try:
        server = make_server(addr, port, health_app(make_wsgi_app()),
                             ThreadingWSGIServer, handler_class=_SilentHandler)
    except OSError as exc:
        raise ConfigError("DRIFTLINE_METRICS_PORT", f"cannot serve metrics on {addr}:{port}: "
                          f"{exc.strerror or exc}") from None
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()
    return server
