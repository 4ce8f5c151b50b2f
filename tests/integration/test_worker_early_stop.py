"""A worker stopped at any moment of its start-up exits 0, with no traceback.

Kubernetes and systemd send SIGTERM during rollouts whenever they like. A
``driftline worker`` spends its first ~2 s importing and building its app
before faust installs its signal handlers, and a SIGTERM then killed it
(exit status -15: a crash, to its supervisor). Now a stop signal is recorded
from the first line of ``python -m driftline`` (``driftline.early_stop``):
before anything started the worker returns (nothing consumed, nothing to
snapshot); after that, faust's own stop takes it, as soon as its handlers
are in place (``processors.worker_shutdown.BoundedWorker``), and later
signals are faust's as before (``test_worker_stop`` stops one under load).

Real worker processes against one real broker: a signal during the imports
(three moments, one of them Ctrl-C, one followed by a second SIGTERM), one
raised between the worker's last check and faust's handlers (the window
where a signal could be lost), and one right after the ready line.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from driftline.local_infra import settings_env
from driftline.settings import Settings
from tests.chaos.test_worker_chaos import wait_for
from tests.integration.processes import spawn, terminate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STOP_WITHIN_S = 15.0
EARLY_LINE = "during start-up, before consuming anything: nothing to snapshot"

# The worker as `python -m driftline worker` runs it, with a SIGTERM raised
# right after the app is built: after run_worker's last check, before faust
# installs its handlers. Recorded there, it must reach faust's stop.
BETWEEN_CHECK_AND_FAUST = """
import signal, sys
from driftline import early_stop
early_stop.install()
from driftline.settings import Settings
import processors.stream_app as stream_app
build_app = stream_app.build_app
def build_then_signal(settings):
    app = build_app(settings)
    signal.raise_signal(signal.SIGTERM)
    return app
stream_app.build_app = build_then_signal
sys.argv = [sys.argv[0], "worker", "--loglevel", "info"]
stream_app.run_worker(Settings(), loglevel="info")
"""


def _stop(worker: subprocess.Popen[bytes], log: Path) -> tuple[int, float, str]:
    """Wait for ``worker`` to end by itself: its exit status, how long it took, its log."""
    started = time.monotonic()
    try:
        code = worker.wait(STOP_WITHIN_S + 15)
    finally:
        terminate(worker, timeout_s=5, sig=signal.SIGKILL)
    return code, time.monotonic() - started, log.read_text()


def _clean(code: int, took: float, text: str) -> None:
    assert code == 0 and took < STOP_WITHIN_S, (code, took, text[-3000:])
    assert "Traceback" not in text and "Exception ignored" not in text, text[-3000:]


@pytest.mark.parametrize(("sig", "after_s"), [
    (signal.SIGTERM, (0.2,)),
    (signal.SIGTERM, (0.8, 1.0)),  # a second one during the stop changes nothing
    (signal.SIGTERM, (1.5,)),
    (signal.SIGINT, (0.8,)),
], ids=["sigterm-0.2s", "sigterm-0.8s-twice", "sigterm-1.5s", "sigint-0.8s"])
def test_a_stop_signal_during_the_imports_exits_0(
    settings: Settings, tmp_path: Path, sig: signal.Signals, after_s: tuple[float, ...]
) -> None:
    log = tmp_path / "worker.log"
    worker = spawn(["worker", "--loglevel", "info"], settings_env(settings), log)
    spawned = time.monotonic()
    for at in after_s:
        time.sleep(max(0.0, spawned + at - time.monotonic()))
        worker.send_signal(sig)
    code, took, text = _stop(worker, log)
    _clean(code, took, text)
    # Stopped where it was (the imports take ~1.8 s here), or -- a fast machine --
    # by faust's stop; either way, said once.
    said = [line for line in text.splitlines()
            if EARLY_LINE in line or f"stopping ({sig.name})" in line]
    assert len(said) == 1 and sig.name in said[0], text[-3000:]
    if after_s[0] < 0.5:
        assert EARLY_LINE in said[0], text[-3000:]


def test_a_sigterm_between_the_last_check_and_fausts_handlers_is_not_lost(
    settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([sys.executable, "-c", BETWEEN_CHECK_AND_FAUST],
                                  env=settings_env(settings), stdout=out, stderr=subprocess.STDOUT)
    code, took, text = _stop(worker, log)
    _clean(code, took, text)
    # faust's stop, bounded by the watchdog, as for a signal that comes later.
    assert "stopping (SIGTERM): a stop that takes over 60 s ends the process" in text, text
    assert EARLY_LINE not in text and " ready: consuming" not in text, text[-3000:]


def test_a_sigterm_right_after_the_ready_line_exits_0(
    settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    worker = spawn(["worker", "--loglevel", "info"], settings_env(settings), log)
    try:
        wait_for(lambda: " ready: consuming" in log.read_text(), 60, "the ready line",
                 lambda: log.read_text()[-3000:])
    except BaseException:
        terminate(worker, timeout_s=5)
        raise
    worker.send_signal(signal.SIGTERM)
    code, took, text = _stop(worker, log)
    _clean(code, took, text)
    assert "stopping (SIGTERM): a stop that takes over 60 s ends the process" in text, text
