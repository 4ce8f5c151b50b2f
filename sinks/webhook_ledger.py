"""Which alerts the webhook sink has delivered, and which were in flight when a sink died.

The webhook sink commits an alert's offset after the receiver accepted it;
a sink killed between the two reads the alert again after its restart (and
so does the member that takes over its partitions). Per endpoint and
``webhook-id`` the sink keeps two Redis keys under the deployment's
namespace::

    {ns}:webhook:claimed:{id}      STRING "<host>:<pid>:<unix s>"  while its POST is in flight
    {ns}:webhook:delivered:{id}    STRING "1", expires with the alert documents

``deliver_once`` asks, in one round trip (a Lua script), whether the id was
delivered -- then it is not POSTed again -- and claims it otherwise. The
receiver's 2xx calls back *from inside the notifier*, before anything else
runs, and that callback records the delivery and drops the claim in one
round trip (``MULTI``). What is left is that round trip: a sink killed
after the receiver's 2xx and before Redis has the record sends the alert
once more. Its new owner finds the claim of the dead sink, logs the id as
"in flight when a sink stopped" (``driftline_webhook_deliveries{outcome=
"resent_in_flight"}``) and re-sends it with the **same** ``webhook-id``,
never a new one: a receiver that deduplicates on ``webhook-id``
(``sinks.webhook_dedupe``, the README's receiver) processes it once. No
sender can do better over HTTP: the 2xx and the record are two systems.

Redis being down does not stop notifications: the check fails open (the
alert is sent) and a record that cannot be written is logged.

Examples
--------
>>> delivered_key("cam-1:v1:confidence:e7", ns="acme")
'acme:webhook:delivered:cam-1%3Av1%3Aconfidence%3Ae7'
>>> claimed_key("cam-1:v1:confidence:e7", ns="acme")
'acme:webhook:claimed:cam-1%3Av1%3Aconfidence%3Ae7'
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from driftline.errors import TransientError
from driftline.metrics import WEBHOOK_DELIVERIES
from sinks.redis_state import DEFAULT_ALERT_TTL_S, PREFIX, _guard, esc

log = logging.getLogger(__name__)

CLAIM_TTL_S = 24 * 3600
"""How long a claim outlives a sink that died with it (it only informs the next owner)."""

# KEYS: delivered, claimed; ARGV: this sink's claim, its TTL. Returns "1" when
# delivered, else the previous claim ("" if none) after claiming.
_CHECK_AND_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return '1' end
local previous = redis.call('GET', KEYS[2]) or ''
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return previous
"""

Send = Callable[[Callable[[], None]], object]
"""``send(accepted)``: POST, calling ``accepted()`` the moment the receiver answers 2xx."""


def delivered_key(alert_id: str, ns: str = PREFIX) -> str:
    return f"{ns}:webhook:delivered:{esc(alert_id)}"


def claimed_key(alert_id: str, ns: str = PREFIX) -> str:
    return f"{ns}:webhook:claimed:{esc(alert_id)}"


class WebhookLedger:
    """Delivered and in-flight webhook ids in Redis (see the module docstring).

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
        self.me = f"{socket.gethostname()}:{os.getpid()}"
        self.resent_in_flight = 0
        self._check = client.register_script(_CHECK_AND_CLAIM)
        # Per alert id being delivered: its lock and how many copies wait on it.
        self._busy: dict[str, tuple[threading.Lock, list[int]]] = {}
        self._lock = threading.Lock()

    def deliver_once(self, alert_id: str, send: Send) -> bool:
        """``send(accepted)`` unless this id was delivered; ``True`` if sent.

        ``accepted`` records the delivery; call it right after the 2xx (if
        ``send`` returns without calling it -- nothing to POST, e.g. a
        filtered alert -- it is recorded then). Two copies of one id in
        flight at once (the webhook sink handles several messages
        concurrently) are delivered one after the other, so the second
        finds the first's record. An exception from ``send`` propagates,
        nothing recorded, the claim dropped.
        """
        with self._lock:
            lock, waiting = self._busy.setdefault(alert_id, (threading.Lock(), [0]))
            waiting[0] += 1
        try:
            with lock:
                previous = self._claim(alert_id)
                if previous == "1":
                    return False
                if previous:
                    self.resent_in_flight += 1
                    WEBHOOK_DELIVERIES.labels("resent_in_flight").inc()
                    log.warning("webhook %s was in flight when sink %s stopped (maybe accepted, "
                                "not recorded): sent again with the same webhook-id; receivers "
                                "deduplicate on it", alert_id, previous)
                done = [False]

                def accepted() -> None:
                    if not done[0]:
                        done[0] = True
                        self.record(alert_id)

                try:
                    send(accepted)
                except BaseException:
                    if not done[0]:
                        self._unclaim(alert_id)
                    raise
                accepted()
                return True
        finally:
            with self._lock:
                waiting[0] -= 1
                if not waiting[0]:
                    del self._busy[alert_id]

    def _claim(self, alert_id: str) -> str:
        """"1" if delivered; else claim it and return the previous claim ("" if none)."""
        token = f"{self.me}:{int(time.time())}"
        try:
            out = _guard("webhook ledger", lambda: self._check(
                keys=[delivered_key(alert_id, self.ns), claimed_key(alert_id, self.ns)],
                args=[token, CLAIM_TTL_S]))
        except TransientError as exc:
            log.warning("cannot read the webhook ledger for %s (%s); sending", alert_id, exc)
            return ""
        return out.decode() if isinstance(out, bytes) else str(out)

    def _unclaim(self, alert_id: str) -> None:
        try:
            _guard("webhook ledger", lambda: self.client.delete(claimed_key(alert_id, self.ns)))
        except TransientError as exc:
            log.warning("claim of %s not dropped (%s)", alert_id, exc)

    def delivered(self, alert_id: str) -> bool:
        """True when this id was delivered before; ``False`` if unknown or Redis is down."""
        try:
            return bool(_guard("webhook ledger", lambda: self.client.exists(
                delivered_key(alert_id, self.ns))))
        except TransientError as exc:
            log.warning("cannot read the webhook ledger for %s (%s); sending", alert_id, exc)
            return False

    def record(self, alert_id: str) -> None:
        """Remember a delivery and drop its claim, one round trip (logged if Redis is down)."""
        def write() -> object:
            pipe = self.client.pipeline(transaction=True)
            pipe.set(delivered_key(alert_id, self.ns), "1", ex=self.ttl_s)
            pipe.delete(claimed_key(alert_id, self.ns))
            return pipe.execute()

        try:
            _guard("webhook ledger", write)
        except TransientError as exc:
            log.warning("delivery of %s not recorded (%s): a redelivery would send it again",
                        alert_id, exc)
