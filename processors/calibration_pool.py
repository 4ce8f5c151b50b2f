"""Signal calibrations off the worker's event loop: a process pool and its bookkeeping.

A signal whose reference fills calibrates its detector's threshold by
Monte-Carlo (0.05-0.35 s; ``output.class_mix``'s MixCusum ~0.25 s). Inline,
inside ``StreamMonitor.observe``, that ran on the worker's event loop: 100
streams warming up together stalled it for up to 17.3 s (70 stalls of 1 s
or more; ``bench/bench_warmup.py``), long enough to miss heartbeats and
delay every other stream's alerts.

With ``DRIFTLINE_CALIBRATION_WORKERS`` > 0 the worker's registry is deferred
(``MonitorRegistry(deferred=True)``): a signal whose reference fills leaves a
``CalibrationRequest`` (plain data) instead, ``Calibrations.submit`` hands it
to a ``CalibrationPool`` (child processes) and ``Calibrations.settle`` installs
the result **before that stream's next event is applied**, awaiting its
future if it is not ready: the loop keeps running meanwhile, and the stream's
detectors see exactly the values they would have seen inline, so the worker
gives the alerts (and ids) of replay, which calibrates inline.

Failure modes it protects against:

- A child that dies or raises (``BrokenProcessPool``, an exception): the
  request is calibrated inline (logged, at most once a minute) and the pool
  is recreated for the next ones. A result that never arrives cannot change
  an alert either: a deferred signal fed its next value without a detector
  calibrates inline first (``ScalarSignal.update``).
- Orphans: children are started with *spawn* (a fork of a process running an
  event loop and threads copies their locks mid-use) and exit when the
  worker's process is gone (``_watch_parent``), even after a ``kill -9``.
- A checkpoint taken while a request is pending holds the full reference and
  no detector: the restored signal builds the same request again and
  calibrates on it (``ScalarSignal.pending_calibration``).

Examples
--------
>>> from processors.monitor import MonitorRegistry
>>> reg = MonitorRegistry(deferred=True)
>>> calibrations = Calibrations(pool=None)   # no pool: settle calibrates inline
>>> calibrations.submit([reg.get("cam", "v1")]), calibrations.in_flight
(0, 0)
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from processors.monitor import StreamMonitor
from processors.signal_tracker import Calibrated, CalibrationRequest, calibrate

log = logging.getLogger("driftline.calibration")

# A failing pool is logged at most this often (each failure falls back inline).
LOG_EVERY_S = 60.0
# How often a child checks that the worker that started it is alive.
PARENT_POLL_S = 1.0


def _watch_parent(parent: int) -> None:
    """Exit this child once ``parent`` is gone (its parent id changes on re-parenting)."""

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(0)
            time.sleep(PARENT_POLL_S)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _child_start(parent: int) -> None:
    """A child's initializer: no orphan, one BLAS thread (the machine's cores are the pool's)."""
    _watch_parent(parent)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


class CalibrationPool:
    """``calibrate`` in ``workers`` spawned child processes; recreated when it breaks.

    >>> pool = CalibrationPool(1)
    >>> pool.workers, pool.restarts
    (1, 0)
    >>> pool.close()
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"a calibration pool needs at least 1 worker, not {workers}")
        self.workers = workers
        self.restarts = 0  # also the generation of the present pool
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # Children start on the first submit (ProcessPoolExecutor spawns lazily).
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_child_start, initargs=(os.getpid(),))
        return self._executor

    def submit(self, request: CalibrationRequest) -> Future[Calibrated]:
        """Calibrate ``request`` in a child (``BrokenProcessPool`` if the pool is broken)."""
        return self._pool().submit(calibrate, request)

    def restart(self, generation: int) -> None:
        """Drop the pool of ``generation`` if it is the present one; ``submit`` starts a new one.

        Every request in flight on a broken pool fails: only the first
        failure restarts it, the others name a generation already replaced.
        """
        if generation != self.restarts:
            return
        executor, self._executor = self._executor, None
        if executor is not None:
            self.restarts += 1
            executor.shutdown(wait=False, cancel_futures=True)

    def close(self, *, wait: bool = False) -> None:
        """Stop the children (requests in flight are cancelled: settle calibrates them inline).

        ``wait``: until they have exited (their CPU time is then in
        ``resource.getrusage(RUSAGE_CHILDREN)``).
        """
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)


# (monitor, request, its future or None: inline, the pool generation it went to)
InFlight = tuple[StreamMonitor, CalibrationRequest, "Future[Calibrated] | None", int]


class Calibrations:
    """Requests of deferred monitors in flight, by stream; installed before the stream's next event.

    Parameters
    ----------
    pool : CalibrationPool or None
        Where requests are computed; None computes each inline when it is
        settled (tests, and a pool that could not be started).
    """

    def __init__(self, pool: CalibrationPool | None) -> None:
        self.pool = pool
        self._flight: dict[str, list[InFlight]] = {}
        self._sent: set[tuple[int, str, int]] = set()
        self.inline = 0  # requests calibrated inline after a pool failure
        self._logged = -LOG_EVERY_S

    @property
    def in_flight(self) -> int:
        """Requests submitted and not installed yet."""
        return sum(len(v) for v in self._flight.values())

    def submit(self, monitors: Iterable[StreamMonitor]) -> int:
        """Hand the new calibration requests of ``monitors`` to the pool; how many."""
        n = 0
        for mon in monitors:
            for request in mon.calibrations():
                key = (id(mon), request.signal, request.token)
                if key in self._sent:
                    continue
                future, generation = None, 0
                if self.pool is not None:
                    generation = self.pool.restarts
                    try:
                        future = self.pool.submit(request)
                    except (BrokenProcessPool, RuntimeError) as exc:
                        self._failed(exc, generation)  # computed inline when settled
                self._sent.add(key)
                self._flight.setdefault(mon.stream_id, []).append(
                    (mon, request, future, generation))
                n += 1
        return n

    async def settle(self, stream_id: str) -> None:
        """Install every result of ``stream_id``'s monitors, awaiting those not ready.

        Call before applying any event of the stream (input, command, status):
        the event loop runs on while a child computes.
        """
        for mon, request, future, generation in self._flight.pop(stream_id, []):
            result = None
            if future is not None:
                try:
                    result = await asyncio.wrap_future(future)
                except BaseException as exc:  # BrokenProcessPool, a child's exception, cancelled
                    if isinstance(exc, asyncio.CancelledError) and not future.cancelled():
                        raise  # this task was cancelled, not the request
                    self._failed(exc, generation)
            self._install(mon, request, result)

    def settle_now(self, stream_id: str) -> None:
        """``settle`` for a caller without an event loop (blocks on the futures)."""
        for mon, request, future, generation in self._flight.pop(stream_id, []):
            result = None
            if future is not None:
                try:
                    result = future.result()
                except Exception as exc:  # concurrent.futures.CancelledError is one
                    self._failed(exc, generation)
            self._install(mon, request, result)

    def install_done(self) -> int:
        """Install the results that are ready (before snapshots: their detectors are shown)."""
        n = 0
        for stream_id in list(self._flight):
            entries = self._flight[stream_id]
            if all(f is not None and f.done() for _, _, f, _ in entries):
                self.settle_now(stream_id)
                n += len(entries)
        return n

    def _install(self, mon: StreamMonitor, request: CalibrationRequest,
                 result: Calibrated | None) -> None:
        self._sent.discard((id(mon), request.signal, request.token))
        if result is None:
            self.inline += 1
            result = calibrate(request)
        # False when stale (the monitor was replaced by a restore or an
        # eviction, or the signal re-referenced): nothing changes then.
        mon.install(result)

    def _failed(self, exc: BaseException, generation: int) -> None:
        now = time.monotonic()
        if now - self._logged >= LOG_EVERY_S:
            self._logged = now
            log.warning("calibration pool failed (%r): calibrating inline, and starting a new "
                        "pool (logged at most once a minute)", exc)
        if self.pool is not None and isinstance(exc, BrokenProcessPool):
            self.pool.restart(generation)

    def close(self) -> None:
        """Stop the pool (what is in flight is calibrated inline if settled)."""
        if self.pool is not None:
            self.pool.close()
