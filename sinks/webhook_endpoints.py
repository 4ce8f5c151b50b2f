"""Webhooks for people: several endpoints, each with its own secret, filters and format.

``DRIFTLINE_WEBHOOKS`` lists endpoints (``driftline.settings.WebhookEndpoint``);
``DRIFTLINE_WEBHOOK_URL``/``_SECRET`` is one more, named ``default``, with
no filters. Each endpoint is its own consumer group on the alert topic
(``<consumer_group>.webhook`` for ``default``, ``.webhook.<name>`` for the
others, see ``sinks.runner``): a receiver that is down holds back only its
own deliveries, and each commits its own progress. Deliveries are the
``WebhookNotifier``'s (signed, retried, dead-lettered when undeliverable).

What an endpoint is sent: every event on the alert topic that passes its
filters (``matches``) and has ``notify`` true -- a snoozed signal's alerts
page no one. The ``webhook-id`` is the alert id for ``firing`` (as before
lifecycles existed) and ``<alert id>.<lifecycle>`` for the later events, so
a receiver deduplicates each once. ``slack`` endpoints get
``{"text": ...}`` (Slack and compatible incoming webhooks).

Examples
--------
>>> from driftline.settings import WebhookEndpoint
>>> from schemas.events import Alert
>>> a = Alert(alert_id="a1", stream_id="dock-3", model_version="v1",
...           signal="quality.brightness", detector="cusum", severity="critical",
...           message="quality.brightness fell from 120 to 40", statistic=30.0,
...           detected_index=9, change_index=5, detected_event_id="e9")
>>> ops = WebhookEndpoint(name="ops", url="https://x/h", secret="s", streams=["dock-*"],
...                       severities=["critical"], format="slack")
>>> matches(ops, a), matches(ops, a.model_copy(update={"stream_id": "gate-1"}))
(True, False)
>>> msg_id, body = payload(ops, a.model_copy(update={"lifecycle": "resolved"}))
>>> msg_id, json.loads(body)["text"][:51]
('a1.resolved', '[resolved] dock-3 / v1 critical: quality.brightness')
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from fnmatch import fnmatchcase

from pydantic import SecretStr

from driftline.metrics import WEBHOOK_DELIVERIES
from driftline.settings import Settings, WebhookEndpoint
from schemas.events import Alert
from schemas.wire import encode
from sinks.webhook import WebhookNotifier

log = logging.getLogger(__name__)

DEFAULT_NAME = "default"

Sender = Callable[[Alert, Callable[[], object] | None], None]
"""``handle(alert, accepted)``: what ``sender`` returns."""


def endpoints(settings: Settings) -> list[WebhookEndpoint]:
    """Every configured endpoint: ``DRIFTLINE_WEBHOOK_URL``'s (``default``) first."""
    out = []
    if settings.webhook_url and settings.webhook_secret is not None:
        out.append(WebhookEndpoint(name=DEFAULT_NAME, url=settings.webhook_url,
                                   secret=SecretStr(settings.webhook_secret.get_secret_value())))
    return out + list(settings.webhooks)


def matches(endpoint: WebhookEndpoint, alert: Alert) -> bool:
    """True when ``alert`` passes every filter of ``endpoint``."""
    return (any(fnmatchcase(alert.stream_id, g) for g in endpoint.streams)
            and (endpoint.signals is None
                 or any(fnmatchcase(alert.signal, g) for g in endpoint.signals))
            and (endpoint.severities is None or alert.severity in endpoint.severities)
            and alert.lifecycle in endpoint.lifecycle)


def message_id(alert: Alert) -> str:
    """The ``webhook-id``: the alert id, suffixed by the lifecycle after ``firing``."""
    return alert.alert_id if alert.lifecycle == "firing" else f"{alert.alert_id}.{alert.lifecycle}"


def slack_text(alert: Alert) -> str:
    """One line for a chat channel."""
    who = f" by {alert.lifecycle_by}" if alert.lifecycle_by else ""
    why = f" ({alert.lifecycle_reason})" if alert.lifecycle_reason else ""
    head = f"[{alert.lifecycle}{who}{why}]"
    return (f"{head} {alert.stream_id} / {alert.model_version} {alert.severity}: "
            f"{alert.message} (alert {alert.alert_id})")


def payload(endpoint: WebhookEndpoint, alert: Alert) -> tuple[str, bytes]:
    """``(webhook-id, body)`` of ``alert`` for ``endpoint``'s format."""
    if endpoint.format == "slack":
        return message_id(alert), json.dumps({"text": slack_text(alert)}).encode()
    return message_id(alert), encode(alert)


def notifier_for(endpoint: WebhookEndpoint, settings: Settings, *,
                 stop: threading.Event | None = None, **kwargs: float) -> WebhookNotifier:
    """A ``WebhookNotifier`` for one endpoint (timeouts and attempts from ``settings``)."""
    return WebhookNotifier(endpoint.url, endpoint.secret.get_secret_value(),
                           timeout_s=settings.webhook_timeout_s,
                           max_attempts=settings.webhook_max_attempts, stop=stop,
                           **kwargs)  # type: ignore[arg-type]


def sender(endpoint: WebhookEndpoint, notifier: WebhookNotifier) -> Sender:
    """The sink's handler for one endpoint: filter, skip what must not page, deliver.

    ``accepted`` is called at the receiver's 2xx (``WebhookNotifier.send_raw``).
    """

    def handle(alert: Alert, accepted: Callable[[], object] | None = None) -> None:
        if not alert.notify:
            WEBHOOK_DELIVERIES.labels("skipped_snoozed").inc()
            log.info("webhook %s: alert %s (%s) not sent: its signal is snoozed",
                     endpoint.name, alert.alert_id, alert.lifecycle)
            return
        if not matches(endpoint, alert):
            WEBHOOK_DELIVERIES.labels("skipped_filtered").inc()
            return
        notifier.send_raw(*payload(endpoint, alert), accepted)

    return handle
