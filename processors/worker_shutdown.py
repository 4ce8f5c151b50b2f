"""A bounded shutdown for the worker: what still runs is logged, then the process exits.

faust stops a worker in steps (agents, the consumer thread and its group
leave, the producer's flush, the event loop, then the interpreter joins
every non-daemon thread). A step that waits for something that never comes
-- a broker that stopped answering, a thread that is never told to stop --
kept a worker alive for over an hour after its SIGTERM. So the first stop
signal (or a crash) arms a watchdog: if the process is still there
``DRIFTLINE_SHUTDOWN_GRACE_S`` later, the stack of every thread and the
asyncio tasks still pending are logged, and the process exits with
:data:`EXIT_SHUTDOWN_TIMEOUT` (``os._exit``: no further clean-up can hang).

An exit by the watchdog is as safe as a SIGKILL: offsets are committed only
below events whose outputs and snapshots were delivered
(``processors.stream_app``), so a restarted worker resumes from them.

Examples
--------
>>> codes = []
>>> dog = ShutdownWatchdog(0.01, exit=codes.append)
>>> dog.arm("SIGTERM"); dog.arm("again: ignored"); dog.join(5)
>>> codes
[70]
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

import faust

from driftline import early_stop

log = logging.getLogger("driftline.worker")

EXIT_SHUTDOWN_TIMEOUT = 70
"""Exit status of a worker the watchdog ended (``EX_SOFTWARE`` of sysexits.h)."""

MAX_TASKS_LOGGED = 50


def pending_tasks(loop: asyncio.AbstractEventLoop | None) -> list[str]:
    """One line per asyncio task still pending on ``loop`` (where its coroutine waits).

    Read from another thread than the loop's: a diagnostic, best effort.

    >>> pending_tasks(None)
    []
    """
    if loop is None or loop.is_closed():
        return []
    lines = []
    try:
        tasks = list(asyncio.all_tasks(loop))
    except RuntimeError:  # the loop changed its task set too often meanwhile
        return ["(tasks unavailable)"]
    for task in tasks[:MAX_TASKS_LOGGED]:
        coro: Any = task.get_coro()
        frame = getattr(coro, "cr_frame", None)
        where = (f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None
                 else "not started")
        lines.append(f"{task.get_name()} {getattr(coro, '__qualname__', coro)!s} at {where}")
    if len(tasks) > MAX_TASKS_LOGGED:
        lines.append(f"... and {len(tasks) - MAX_TASKS_LOGGED} more")
    return lines


class ShutdownWatchdog:
    """Ends the process ``grace_s`` seconds after :meth:`arm` unless it exited before.

    Parameters
    ----------
    grace_s : float
        Seconds a stop may take (``DRIFTLINE_SHUTDOWN_GRACE_S``).
    loop : asyncio event loop, optional
        Whose pending tasks are logged when the grace runs out.
    exit : callable
        Called with :data:`EXIT_SHUTDOWN_TIMEOUT` (``os._exit``; tests pass another).
    """

    def __init__(self, grace_s: float, *, loop: asyncio.AbstractEventLoop | None = None,
                 exit: Callable[[int], object] = os._exit) -> None:
        self.grace_s = grace_s
        self.loop = loop
        self._exit = exit
        self._why = ""
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def arm(self, why: str) -> None:
        """Start the countdown (once: a second stop signal does not restart it)."""
        with self._lock:
            if self._timer is not None:
                return
            self._why = why
            self._timer = threading.Timer(self.grace_s, self._expire)
            self._timer.name = "shutdown-watchdog"
            self._timer.daemon = True  # never itself what keeps the process alive
            self._timer.start()
        log.info("stopping (%s): a stop that takes over %g s ends the process "
                 "(DRIFTLINE_SHUTDOWN_GRACE_S)", why, self.grace_s)

    def join(self, timeout_s: float) -> None:
        """Wait for the countdown to end (tests)."""
        if self._timer is not None:
            self._timer.join(timeout_s)

    def _expire(self) -> None:
        try:
            tasks = pending_tasks(self.loop)
            names = {t.ident: t.name for t in threading.enumerate()}
            stacks = [f"thread {names.get(ident, ident)}:\n"
                      + "".join(traceback.format_stack(frame))
                      for ident, frame in sys._current_frames().items()]
            log.critical("worker still running %g s after %s: exiting with status %d "
                         "(DRIFTLINE_SHUTDOWN_GRACE_S); %d asyncio tasks pending:\n%s\n%s",
                         self.grace_s, self._why, EXIT_SHUTDOWN_TIMEOUT, len(tasks),
                         "\n".join(f"  {line}" for line in tasks), "".join(stacks))
            for handler in logging.getLogger().handlers:
                handler.flush()
        finally:  # whatever the logging did, the process ends
            self._exit(EXIT_SHUTDOWN_TIMEOUT)


class BoundedWorker(faust.Worker):
    """``faust.Worker`` whose stop is bounded by a :class:`ShutdownWatchdog`.

    The watchdog is armed by the first SIGTERM or SIGINT (one that came during
    start-up, before faust's handlers, as soon as they are installed:
    ``driftline.early_stop``), and when the worker leaves its run for any
    other reason (a crash). ``on_signal`` callbacks run at the signal, before
    faust's own stop (the worker's drain of unsnapshotted events); ``on_exit``
    ones once faust's stop is done and its event loop closed (threads nothing
    waits for any more are told to give up).
    """

    def __init__(self, app: faust.App, *, grace_s: float,
                 on_signal: tuple[Callable[[], None], ...] = (),
                 on_exit: tuple[Callable[[], None], ...] = (), **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.watchdog = ShutdownWatchdog(grace_s, loop=self.loop)
        self._on_signal = on_signal
        self._on_exit = on_exit

    def install_signal_handlers(self) -> None:
        # faust's handlers replace driftline.early_stop's. A signal that came
        # after run_worker's last check (while the app was built, or faust
        # started) is recorded there: read only now, after the replacement --
        # signal.signal first runs a handler still pending -- so none is lost
        # between the two, and handed to faust's own handler as if it came now.
        super().install_signal_handlers()
        early = early_stop.take()
        if early == signal.SIGINT:
            self._on_sigint()
        elif early is not None:
            self._on_sigterm()

    def _schedule_shutdown(self, signum: signal.Signals) -> None:
        first = not self._signal_stop_time
        self.watchdog.arm(signal.Signals(signum).name)
        if first:
            for callback in self._on_signal:
                callback()
        super()._schedule_shutdown(signum)

    def on_worker_shutdown(self) -> None:
        # Called as the worker's run ends (a signal or a crash), before faust's stop.
        self.watchdog.arm("the worker's end")
        super().on_worker_shutdown()

    def stop_and_shutdown(self) -> None:
        # Only once faust's stop is done: a batch still waiting for a state restore
        # must get it (or its events could never be acked, and the stop would wait
        # for them); after it, a restore nothing waits for must not hold the exit.
        try:
            super().stop_and_shutdown()
        finally:
            for callback in self._on_exit:
                callback()
