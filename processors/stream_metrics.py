"""What the worker measures about itself, kept out of ``processors.stream_app``.

The worker calls these at its seams: ``decode_timed`` and ``apply_timed``
instead of ``Router.route`` (decode and monitor timed per event; the worker
settles the stream's calibrations between the two), ``snapshot_observed``
for every snapshot it sends, and ``sample`` once a second (consumer lag,
live monitors, snapshot lag). The metric families are in
``driftline.metrics``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from driftline import metrics
from driftline.errors import PermanentError
from processors.monitor import MonitorRegistry
from processors.router import Positions, Rejected, Routed, Router, Source
from schemas.events import StreamState
from schemas.wire import decode_event

log = logging.getLogger("driftline.worker")


def decode_timed(router: Router, raw: bytes, source: Source) -> object:
    """The decoded event, or a ``Routed`` with its rejection; timed as ``decode``.

    A decode failure is a rejection, as in ``Router.route``.
    """
    t0 = time.perf_counter()
    try:
        event = decode_event(raw, router.max_bytes)
    except PermanentError as exc:
        metrics.observe_stage("decode", time.perf_counter() - t0)
        stage = "embedder" if source is Source.FRAMES else "monitor"
        return Routed(rejected=[Rejected(exc.reason, str(exc), stage)])
    metrics.observe_stage("decode", time.perf_counter() - t0)
    return event


def apply_timed(router: Router, event: object, source: Source, position: Positions) -> Routed:
    """``router.route_event`` timed as ``monitor``."""
    t1 = time.perf_counter()
    routed = router.route_event(event, source, position)
    metrics.observe_stage("monitor", time.perf_counter() - t1)
    return routed


def snapshot_observed(state: StreamState, nbytes: int) -> None:
    """A snapshot of ``nbytes`` was built: its size and its signals' statistic and threshold."""
    metrics.observe_snapshot(
        state.stream_id, nbytes,
        ((name, s.statistic, s.threshold) for name, s in state.signals.items()))


async def sample(app: Any, registry: MonitorRegistry, topics: frozenset[str],
                 oldest_unsnapshotted: float | None) -> None:
    """Once a second: lag of every assigned input partition, live monitors, snapshot lag."""
    metrics.set_live_monitors(len(registry.monitors), len(registry.evicted))
    metrics.SNAPSHOT_AGE.set(0.0 if oldest_unsnapshotted is None
                             else max(0.0, time.monotonic() - oldest_unsnapshotted))
    consumer = getattr(app, "consumer", None)
    if consumer is None:
        return
    try:
        assigned = [tp for tp in consumer.assignment() if tp.topic in topics]
        for tp in assigned:
            high = consumer.highwater(tp)
            position = await consumer.position(tp)
            if high is not None and position is not None:
                metrics.set_lag(tp.topic, tp.partition, int(high) - int(position))
    except Exception as exc:  # a consumer mid-rebalance: the next second tries again
        log.debug("consumer lag not sampled: %r", exc)
