"""A bounded outbox in front of the publisher: a broker outage costs the oldest events, not memory.

A camera keeps producing while the broker is unreachable. librdkafka would
queue every message (up to its own large limits) and fail each one when
its delivery timeout expires; an edge box would rather keep the *latest*
events and know how many it lost. So at most ``max_in_flight`` events are
handed to librdkafka at a time (retried by the idempotent producer, in
order, until delivered), and at most ``max_buffered`` more wait here; when
that is full the oldest waiting event is dropped and counted. Memory is
bounded by ``(max_in_flight + max_buffered) x`` the largest event.

Examples
--------
>>> from collections import deque
>>> box = Outbox.__new__(Outbox)  # (the buffer arithmetic alone, without a producer)
>>> box.queue, box.max_buffered, box.dropped = deque(), 2, 0
>>> for i in range(5):
...     box._enqueue("t", None, str(i).encode())
>>> [v for _, _, v in box.queue], box.dropped
([b'3', b'4'], 3)
"""

from __future__ import annotations

import time
from collections import deque

from driftline.errors import InvalidEvent
from producers.publisher import Publisher


class Outbox:
    """Bounded buffering for ``pub`` (see the module docstring).

    Parameters
    ----------
    pub : Publisher
        Its delivery timeout should be long (minutes): an event handed over is
        retried until then, and counted in ``pub.failed`` after.
    max_buffered : int
        Events waiting here at most; beyond it the oldest is dropped.
    max_in_flight : int
        Events handed to librdkafka and not yet acknowledged, at most.
    """

    def __init__(self, pub: Publisher, *, max_buffered: int = 1000,
                 max_in_flight: int = 100) -> None:
        if max_buffered < 1 or max_in_flight < 1:
            raise ValueError("max_buffered and max_in_flight must be >= 1")
        self.pub = pub
        self.max_buffered = max_buffered
        self.max_in_flight = max_in_flight
        self.queue: deque[tuple[str, bytes | None, bytes]] = deque()
        self.dropped = 0
        self.bytes_put = 0

    def _enqueue(self, topic: str, key: bytes | None, value: bytes) -> None:
        if len(self.queue) >= self.max_buffered:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append((topic, key, value))

    def put(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Queue one event and send what the in-flight window allows.

        Raises ``InvalidEvent`` (``oversize``) for an event above the
        publisher's ``max_event_bytes``, before queueing it.
        """
        if len(value) > self.pub.max_event_bytes:
            raise InvalidEvent(f"payload of {len(value)} bytes exceeds "
                               f"{self.pub.max_event_bytes}", reason="oversize")
        self.bytes_put += len(value)
        self._enqueue(topic, key, value)
        self.pump()

    def pump(self) -> None:
        """Serve delivery reports, then hand waiting events over while the window has room."""
        self.pub.poll(0)
        while self.queue and self.pub.in_flight < self.max_in_flight:
            topic, key, value = self.queue.popleft()
            self.pub.publish_raw(topic, key, value)

    @property
    def pending(self) -> int:
        """Events not yet acknowledged: waiting here or in flight."""
        return len(self.queue) + self.pub.in_flight

    def drain(self, timeout_s: float) -> bool:
        """Send everything waiting; True when all was acknowledged within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self.pending and time.monotonic() < deadline:
            self.pump()
            self.pub.poll(0.05)
        return not self.pending
