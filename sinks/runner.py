"""Start driftline's sinks from ``Settings`` (what ``driftline sinks`` runs).

Two consumer groups, each in its own thread:

- ``<consumer_group>.redis``: the alerts topic -> ``RedisStateWriter.write_alert``
  (firing alerts) and ``LifecycleWriter.write_alert`` (every lifecycle event),
  the state topic -> ``RedisStateWriter.write_state`` and
  ``LifecycleWriter.write_controls`` (``sinks.alert_lifecycle``);
- one webhook group per endpoint (``sinks.webhook_endpoints``):
  ``<consumer_group>.webhook`` for ``DRIFTLINE_WEBHOOK_URL``,
  ``<consumer_group>.webhook.<name>`` for each of ``DRIFTLINE_WEBHOOKS``: the
  alerts topic -> that endpoint's filters -> ``WebhookNotifier``; alerts with
  ``notify: false`` (snoozed signals) and streams an operator disabled or
  snoozed in Redis are skipped.

Separate groups mean a slow or failing webhook never holds back the Redis
state, and each sink commits its own progress.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from driftline.errors import TransientError, redact, redact_url
from driftline.metrics import WEBHOOK_DELIVERIES, serve_metrics
from driftline.service_log import ready_line, service_logging
from driftline.settings import Settings
from producers.publisher import Publisher
from schemas.events import Alert, StreamState
from sinks.alert_consumer import SinkStats, run_sink, run_sink_concurrent
from sinks.alert_lifecycle import LifecycleWriter
from sinks.redis_series import with_series
from sinks.redis_state import RedisStateWriter, muted
from sinks.webhook_endpoints import (
    DEFAULT_NAME,
    Sender,
    endpoints,
    message_id,
    notifier_for,
    sender,
)
from sinks.webhook_ledger import WebhookLedger

log = logging.getLogger(__name__)


@dataclass
class RunningSinks:
    """Handles on the sink threads started by ``start_sinks``."""

    stop: threading.Event
    threads: list[threading.Thread] = field(default_factory=list)
    stats: dict[str, SinkStats] = field(default_factory=dict)
    assigned: dict[str, threading.Event] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def wait_assigned(self, timeout_s: float = 60.0) -> bool:
        """Block until every sink has its partitions (a first group join takes seconds)."""
        return all(ev.wait(timeout_s) for ev in self.assigned.values())

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for the threads to end (set ``stop`` first), then release clients."""
        for t in self.threads:
            t.join(timeout_s)
        for close in self._closers:
            try:
                close()
            except Exception as exc:  # closing must not hide the real outcome
                log.warning("closing a sink client failed: %s", exc)
        self._closers.clear()

    def alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)


def _webhook_handler(
    send: Sender, redis_url: str, namespace: str, endpoint: str = DEFAULT_NAME
) -> Callable[[Alert], None]:
    client = redis.Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=1.0)
    ledger = WebhookLedger(client, namespace)

    def handle(alert: Alert) -> None:
        try:
            why = muted(client, alert.stream_id, namespace=namespace)
        except TransientError as exc:
            # Fail open: Redis being down must not stop notifications.
            log.warning("cannot read mute flags for %s (%s); notifying", alert.stream_id, exc)
            why = None
        if why is not None:
            log.info("webhook for alert %s skipped: stream %s is %s",
                     alert.alert_id, alert.stream_id, why)
            WEBHOOK_DELIVERIES.labels(f"skipped_{why}").inc()
            return
        # One ledger entry per endpoint and webhook-id (a lifecycle event has its own).
        key = message_id(alert)
        if endpoint != DEFAULT_NAME:
            key = f"{endpoint}/{key}"
        # The ledger's record is written by the notifier's 2xx callback, first.
        if not ledger.deliver_once(key, lambda accepted: send(alert, accepted)):
            # Read again after a restart or a rebalance: POSTed before (webhook_ledger).
            log.info("webhook %s for alert %s skipped: delivered before", endpoint, key)
            WEBHOOK_DELIVERIES.labels("skipped_delivered").inc()

    return handle


def _webhook_target(
    settings: Settings, name: str, handle: Callable[[Alert], None], stop: threading.Event,
    dead_letter: Publisher, consumer_conf: Mapping[str, Any] | None,
) -> Callable[[SinkStats, threading.Event], object]:
    def target(stats: SinkStats, assigned: threading.Event) -> object:
        # Several alerts in flight: a receiver that holds or refuses one
        # alert (retries with backoff) does not delay the others.
        return run_sink_concurrent(
            settings,
            f"{settings.consumer_group}.{name}",
            {settings.topics.alerts: (Alert, handle)},
            stop,
            dead_letter,
            concurrency=settings.webhook_concurrency,
            stage=name,
            stats=stats,
            assigned=assigned,
            consumer_conf=consumer_conf,
        )

    return target


def start_sinks(
    settings: Settings,
    stop: threading.Event,
    *,
    webhook_base_delay_s: float = 0.5,
    webhook_max_delay_s: float = 30.0,
    consumer_conf: Mapping[str, Any] | None = None,
) -> RunningSinks:
    """Start the Redis sink and (if configured) the webhook sink; returns at once.

    ``consumer_conf`` adds librdkafka settings to both consumers (tests pass
    ``{"session.timeout.ms": 6000}`` for a faster first group join).
    """
    running = RunningSinks(stop=stop)
    dead_letter = Publisher.from_settings(settings, client_id="driftline-sinks")
    # Keys under the deployment's topic prefix: two deployments can share a Redis.
    writer = RedisStateWriter(settings.redis_url, history=settings.redis_history,
                              namespace=settings.topic_prefix)
    running._closers.append(writer.close)
    lifecycles = LifecycleWriter(settings.redis_url, namespace=settings.topic_prefix)
    running._closers.append(lifecycles.close)

    def on_alert(alert: Alert) -> None:
        if alert.lifecycle == "firing":
            writer.write_alert(alert)
        lifecycles.write_alert(alert)

    write_state = with_series(writer, settings.api.series_points)  # state, then chart points

    def on_state(state: StreamState) -> None:
        write_state(state)
        lifecycles.write_controls(state)

    def launch(name: str, target: Callable[[SinkStats, threading.Event], object]) -> None:
        stats, assigned = SinkStats(), threading.Event()
        running.stats[name], running.assigned[name] = stats, assigned

        def body() -> None:
            try:
                target(stats, assigned)
            except BaseException as exc:
                running.errors[name] = exc
                log.exception("sink %s stopped with an error", name)
                stop.set()  # one sink dying takes the process down, loudly

        t = threading.Thread(target=body, name=f"driftline-sink-{name}", daemon=True)
        running.threads.append(t)
        t.start()

    topics = settings.topics
    launch(
        "redis",
        lambda stats, assigned: run_sink(
            settings,
            f"{settings.consumer_group}.redis",
            {
                topics.alerts: (Alert, on_alert),
                topics.state: (StreamState, on_state),
            },
            stop,
            dead_letter,
            stage="redis",
            stats=stats,
            assigned=assigned,
            consumer_conf=consumer_conf,
        ),
    )
    for endpoint in endpoints(settings):
        notifier = notifier_for(endpoint, settings, stop=stop, base_delay_s=webhook_base_delay_s,
                                max_delay_s=webhook_max_delay_s)
        running._closers.append(notifier.close)
        handle = _webhook_handler(sender(endpoint, notifier), settings.redis_url,
                                  settings.topic_prefix, endpoint.name)
        name = "webhook" if endpoint.name == DEFAULT_NAME else f"webhook.{endpoint.name}"
        launch(name, _webhook_target(settings, name, handle, stop, dead_letter, consumer_conf))
    return running


def _destinations(settings: Settings) -> str:
    """Where the sinks write, safe to log: ``redis → …; webhook → …``."""
    out = f"redis → {redact(settings.redis_url)}"
    if settings.webhook_url:
        out += f"; webhook → {redact_url(settings.webhook_url)}"
    return out


def run_sinks(settings: Settings, stop: threading.Event) -> dict[str, SinkStats]:
    """Run the sinks until ``stop`` is set; raise the first sink error, if any.

    With ``metrics_port`` set (``DRIFTLINE_METRICS_PORT``) the process serves
    Prometheus metrics on ``/metrics`` there while the sinks run.
    """
    service_logging()
    metrics = serve_metrics(settings.metrics_port)
    running = start_sinks(settings, stop)
    announced = False
    try:
        while running.alive() and not stop.wait(0.5):
            if not announced and all(ev.is_set() for ev in running.assigned.values()):
                announced = True
                ready_line("sinks", [settings.topics.alerts, settings.topics.state],
                      _destinations(settings))
    finally:
        stop.set()
        running.join(30.0)
        if metrics is not None:
            metrics.shutdown()
    if running.errors:
        name, exc = next(iter(running.errors.items()))
        raise TransientError(f"sink {name} failed: {exc}") from exc
    return running.stats
