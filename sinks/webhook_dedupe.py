"""What a webhook receiver keeps to process each ``webhook-id`` once (standard library only).

A POST cannot be exactly-once: a sender killed after the receiver's 2xx and
before it could record the delivery (``sinks.webhook_ledger``) sends it again,
with the same ``webhook-id`` -- the idempotency key of the Standard Webhooks
scheme. So a receiver remembers the ids it processed, for longer than a
sender takes to come back (the webhook sink: a consumer group's session
timeout plus its restart), and answers a repeat 2xx without acting on it.

``RecentIds`` is that memory, bounded twice: ids expire after ``ttl_s`` and
at most ``max_ids`` are kept (the oldest go first). ``add`` is atomic (the
receiver's threads can race on one id: a sender that died mid-request and its
successor); ``discard`` gives an id back when acting on it failed, so the
sender's retry is processed. Copy it, or use any TTL'd store (Redis ``SET
NX EX`` for a receiver running as several processes). The README's receiver
uses it, and so does ``tests/chaos`` (the same code, run from the README).

Examples
--------
>>> seen = RecentIds(max_ids=2, ttl_s=60.0, clock=lambda: now[0])
>>> now = [0.0]
>>> seen.add("a"), seen.add("a"), seen.add("b"), seen.add("c"), len(seen)
(True, False, True, True, 2)
>>> seen.add("a")  # the oldest went first: "a" was forgotten
True
>>> now[0] = 61.0
>>> seen.add("c")  # expired
True
>>> seen.discard("c"); seen.add("c")
True
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class RecentIds:
    """Ids seen in the last ``ttl_s`` seconds, at most ``max_ids`` (see the module docstring)."""

    def __init__(self, max_ids: int = 100_000, ttl_s: float = 24 * 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_ids < 1 or ttl_s <= 0:
            raise ValueError("max_ids must be >= 1 and ttl_s > 0")
        self.max_ids = max_ids
        self.ttl_s = ttl_s
        self.clock = clock
        self._ids: OrderedDict[str, float] = OrderedDict()  # id -> when added, oldest first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, msg_id: str) -> bool:
        """``True`` (and remember it) if ``msg_id`` was not seen recently; else ``False``."""
        now = self.clock()
        with self._lock:
            while self._ids and now - next(iter(self._ids.values())) > self.ttl_s:
                self._ids.popitem(last=False)
            if msg_id in self._ids:
                return False
            self._ids[msg_id] = now
            while len(self._ids) > self.max_ids:
                self._ids.popitem(last=False)
            return True

    def discard(self, msg_id: str) -> None:
        """Forget ``msg_id`` (acting on it failed: its retry must be processed)."""
        with self._lock:
            self._ids.pop(msg_id, None)
