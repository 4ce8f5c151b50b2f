"""A stop signal that reaches a worker before faust's handlers: recorded, never lost.

``driftline worker`` spends its first ~2 s importing (faust, numpy, the
models) and building its app before faust installs its own SIGTERM and
SIGINT handlers. A signal in that window used to find the default
disposition, so the worker died by it (exit status -15, or a
``KeyboardInterrupt`` traceback): a rollout that stopped a worker early
looked to its supervisor like a crash.

:func:`install` -- the first thing ``driftline worker`` runs
(``driftline.__main__.run``: the console script and ``python -m
driftline``), again at the start of the ``worker`` command for a CLI run
another way -- records the first SIGTERM or SIGINT instead. The worker then stops at the first of:

- a check before anything starts (``processors.stream_app.run_worker``,
  before and after its broker check): nothing was consumed, so nothing is
  to be snapshotted; it returns, and the process exits 0;
- faust's handlers being installed (``processors.worker_shutdown.BoundedWorker``):
  a signal recorded up to then, after the last check (while the app is
  built, or faust starts), is handed to faust's own handler as if it had
  come then -- the graceful, bounded stop of every later signal.

No signal falls between the two: ``signal.signal`` runs a handler that is
still pending before it replaces it (CPython), and ``BoundedWorker`` reads
the record only after faust's handlers replaced this one. A second signal
is recorded as nothing more, as faust ignores one during a stop (the stop's
bound is the watchdog the first one arms). A signal whose disposition was
"ignore" at start stays ignored until faust's handlers.

Examples
--------
>>> import signal
>>> install()
>>> requested() is None
True
>>> signal.raise_signal(signal.SIGTERM)   # recorded: this process goes on
>>> requested()
<Signals.SIGTERM: 15>
>>> take()
<Signals.SIGTERM: 15>
>>> requested() is None   # taken once: faust's handler is the one that acts now
True
>>> uninstall()
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_received: signal.Signals | None = None
_previous: dict[signal.Signals, Any] = {}


def _record(signum: int, frame: FrameType | None) -> None:
    global _received
    if _received is None:  # the first one counts (faust too ignores a second one)
        _received = signal.Signals(signum)


def install() -> None:
    """Record SIGTERM and SIGINT from now on, until faust installs its handlers.

    Idempotent; does nothing outside the main thread (only it may set handlers).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in STOP_SIGNALS:
        current = signal.getsignal(sig)
        if current is _record or current is signal.SIG_IGN:
            continue
        _previous[sig] = current
        signal.signal(sig, _record)


def uninstall() -> None:
    """Restore the handlers :func:`install` replaced (those still its own); forget the record."""
    global _received
    for sig, previous in _previous.items():
        if signal.getsignal(sig) is _record:
            signal.signal(sig, previous)
    _previous.clear()
    _received = None


def requested() -> signal.Signals | None:
    """The first stop signal recorded and not taken yet, if any."""
    return _received


def take() -> signal.Signals | None:
    """:func:`requested`, then forget it (it is handed on once)."""
    global _received
    sig, _received = _received, None
    return sig
