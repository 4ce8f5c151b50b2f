"""Alerts already on the alerts topic: a restored stream does not send them again.

Why. The worker's invariant (``processors.stream_app``) acks an input event
only after its alerts are delivered *and then* a snapshot covering it is; a
worker killed between the two leaves alerts on the topic whose firing events
no snapshot holds. The stream's new owner applies those events again, from
the exact checkpoint, and fires the same alerts with the same deterministic
ids. Without this ledger they would be produced a second time.

How. A restore reads the alerts topic to its end together with the state
topic (``processors.topic_reader``) and keeps, per stream, the ids of its
latest ``KEEP`` alerts. An alert a monitor fires is produced only if its id
is not there (``already_sent`` answers once per id). Alerts of a stream
reach the topic in the order its events were applied, so the alerts that
can fire again -- those of events after the stream's snapshot, at most one
snapshot interval of them -- are its latest ones.

This holds on Apache Kafka as on the embedded broker (no transactions are
needed; the broker's read_committed isolation is not relied on). Its cost is
one read of the alerts topic per restore (alerts are rare: a few per stream
and day); a deployment keeps the alerts topic's retention longer than a
worker can stay down.

Examples
--------
>>> ledger = EmittedAlerts()
>>> ledger.replace({"cam-1": ["a1", "a2"]})
>>> ledger.already_sent("cam-1", "a2"), ledger.already_sent("cam-1", "a2")
(True, False)
>>> ledger.already_sent("cam-2", "a1")
False
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import Message
from pydantic import BaseModel

from driftline.errors import InvalidEvent
from schemas.events import Alert
from schemas.wire import decode_as

log = logging.getLogger("driftline.worker")

KEEP = 256
"""Alert ids kept per stream: far more than one snapshot interval can fire."""


def emitted_key(alert: Alert) -> str:
    """What identifies one emitted alert event: its id, plus its lifecycle after ``firing``.

    An ``acknowledged`` or ``resolved`` event carries its firing alert's id;
    keyed by the id alone, a restored worker would take it for a repeat of
    the firing and drop it.

    >>> from schemas.events import Alert
    >>> a = Alert(alert_id="a1", stream_id="s", model_version="v", signal="x", detector="d",
    ...           message="m", statistic=1.0, detected_index=1, change_index=1,
    ...           detected_event_id="e1")
    >>> emitted_key(a), emitted_key(a.model_copy(update={"lifecycle": "resolved"}))
    ('a1', 'a1.resolved')
    """
    return alert.alert_id if alert.lifecycle == "firing" else f"{alert.alert_id}.{alert.lifecycle}"


class EmittedAlerts:
    """Per stream, the ids of its latest alerts on the alerts topic (bounded)."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self.ids: dict[str, set[str]] = {}
        self.suppressed = 0

    def collector(self, max_bytes: int) -> tuple[dict[str, deque[str]], Collect]:
        """A record handler for ``read_to_end`` and the per-stream ids it fills."""
        found: dict[str, deque[str]] = {}
        return found, Collect(found, self.keep, max_bytes)

    def replace(self, found: Mapping[str, Iterable[str]]) -> None:
        """Take a fresh read of the topic as the ledger (after a restore)."""
        self.ids = {stream: set(ids) for stream, ids in found.items()}

    def already_sent(self, stream_id: str, alert_id: str) -> bool:
        """True (once) if this alert is on the topic already: do not produce it again."""
        ids = self.ids.get(stream_id)
        if ids is None or alert_id not in ids:
            return False
        ids.discard(alert_id)
        self.suppressed += 1
        return True


class Collect:
    """Keeps the latest ``keep`` ids per group from a topic's records.

    By default alert ids (``emitted_key``) per stream; ``model``, ``group``
    and ``key`` make it keep other ids (``processors.emitted_dead_letters``).
    """

    def __init__(self, found: dict[Any, deque[str]], keep: int, max_bytes: int,
                 model: type[BaseModel] = Alert,
                 group: Callable[[Any], Any] = lambda alert: alert.stream_id,
                 key: Callable[[Any], str] = emitted_key) -> None:
        self.found = found
        self.keep = keep
        self.max_bytes = max_bytes
        self.model, self.group, self.key = model, group, key

    def __call__(self, msg: Message) -> None:
        try:
            record = decode_as(self.model, msg.value() or b"", self.max_bytes)
        except InvalidEvent as exc:
            log.warning("restore: unreadable %s at %s[%s]@%s: %s", self.model.__name__,
                        msg.topic(), msg.partition(), msg.offset(), exc)
            return
        ids = self.found.get(self.group(record))
        if ids is None:
            ids = self.found[self.group(record)] = deque(maxlen=self.keep)
        ids.append(self.key(record))
