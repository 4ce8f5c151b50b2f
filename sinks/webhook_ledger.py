"""Which alerts the webhook sink has delivered: a redelivered alert is not POSTed again.

The webhook sink commits an alert's offset after the receiver accepted it;
a sink killed between the two reads the alert again after its restart (and
so does the member that takes over its partitions). Before POSTing, the
sink asks this ledger whether the alert was delivered already; after a 2xx
it records the delivery, in Redis, under the deployment's namespace::

    {ns}:webhook:delivered:{alert_id}    STRING "1", expires with the alert documents

What is left: a sink killed after the receiver's 2xx and before the record
(a Redis round trip) sends that alert once more, with the same
``webhook-id``; so receivers must still deduplicate on ``webhook-id``, as
the Standard Webhooks scheme asks. Redis being down does not stop
notifications: the check fails open (the alert is sent) and a record that
cannot be written is logged.

Examples
--------
>>> delivered_key("cam-1:v1:confidence:e7", ns="acme")
'acme:webhook:delivered:cam-1%3Av1%3Aconfidence%3Ae7'
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from driftline.errors import TransientError
from sinks.redis_state import DEFAULT_ALERT_TTL_S, PREFIX, _guard, esc

log = logging.getLogger(__name__)


def delivered_key(alert_id: str, ns: str = PREFIX) -> str:
    return f"{ns}:webhook:delivered:{esc(alert_id)}"


class WebhookLedger:
    """Delivered alert ids in Redis (see the module docstring).

    Parameters
    ----------
    client
        A ``redis.Redis`` client.
    namespace
        The deployment's namespace (its topic prefix).
    ttl_s
        How long a delivery is remembered (the alert documents' lifetime).
    """

    def __init__(self, client: Any, namespace: str = PREFIX,
                 ttl_s: int = DEFAULT_ALERT_TTL_S) -> None:
        self.client = client
        self.ns = namespace
        self.ttl_s = ttl_s
        # Per alert id being delivered: its lock and how many copies wait on it.
        self._busy: dict[str, tuple[threading.Lock, list[int]]] = {}
        self._lock = threading.Lock()

    def deliver_once(self, alert_id: str, send: Callable[[], object]) -> bool:
        """``send()`` unless this alert was delivered; record it after. ``True`` if sent.

        Two copies of one alert in flight at once (the webhook sink handles
        several messages concurrently) are delivered one after the other, so
        the second finds the first's record. An exception from ``send``
        propagates, nothing recorded.
        """
        with self._lock:
            lock, waiting = self._busy.setdefault(alert_id, (threading.Lock(), [0]))
            waiting[0] += 1
        try:
            with lock:
                if self.delivered(alert_id):
                    return False
                send()
                self.record(alert_id)
                return True
        finally:
            with self._lock:
                waiting[0] -= 1
                if not waiting[0]:
                    del self._busy[alert_id]

    def delivered(self, alert_id: str) -> bool:
        """True when this alert was delivered before; ``False`` if unknown or Redis is down."""
        try:
            return bool(_guard("webhook ledger", lambda: self.client.exists(
                delivered_key(alert_id, self.ns))))
        except TransientError as exc:
            log.warning("cannot read the webhook ledger for %s (%s); sending", alert_id, exc)
            return False

    def record(self, alert_id: str) -> None:
        """Remember a delivery (logged, not raised, when Redis is down: it was delivered)."""
        try:
            _guard("webhook ledger", lambda: self.client.set(
                delivered_key(alert_id, self.ns), "1", ex=self.ttl_s))
        except TransientError as exc:
            log.warning("delivery of %s not recorded (%s): a redelivery would send it again",
                        alert_id, exc)
