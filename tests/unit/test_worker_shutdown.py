"""The worker's shutdown watchdog: a stop that hangs is logged and ends with status 70.

A real child process arms the watchdog on SIGTERM (as ``BoundedWorker`` does)
while a non-daemon thread that never ends holds the interpreter's exit: the
process must still end, within its grace, with ``EXIT_SHUTDOWN_TIMEOUT`` and
the stacks of its threads in its log.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from driftline.errors import ConfigError
from driftline.settings import Settings
from processors.worker_shutdown import EXIT_SHUTDOWN_TIMEOUT, ShutdownWatchdog, pending_tasks

HANGING_CHILD = """
import logging, signal, sys, threading, time
from processors.worker_shutdown import ShutdownWatchdog
logging.basicConfig(stream=sys.stdout, level=logging.INFO)
dog = ShutdownWatchdog(0.5)
stuck = threading.Event()
threading.Thread(target=stuck.wait, name="never-told-to-stop").start()  # not a daemon
signal.signal(signal.SIGTERM, lambda *_: dog.arm("SIGTERM"))
print("ready", flush=True)
time.sleep(60)  # the signal interrupts this; then the exit waits for the thread forever
"""


def test_a_stop_that_hangs_ends_with_status_70_and_the_threads_logged() -> None:
    child = subprocess.Popen([sys.executable, "-c", HANGING_CHILD], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        started = time.monotonic()
        child.send_signal(signal.SIGTERM)
        code = child.wait(20)
        took = time.monotonic() - started
    finally:
        child.kill()
    out = child.stdout.read()
    assert code == EXIT_SHUTDOWN_TIMEOUT and 0.4 < took < 15, (code, took, out)
    assert "still running 0.5 s after SIGTERM: exiting with status 70" in out
    assert "thread never-told-to-stop:" in out and "thread MainThread:" in out, out


def test_the_watchdog_is_armed_once_and_logs_pending_tasks() -> None:
    import asyncio

    codes: list[int] = []
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(asyncio.sleep(30), name="sleeper")
        dog = ShutdownWatchdog(0.05, loop=loop, exit=codes.append)
        dog.arm("SIGINT")
        dog.arm("SIGTERM")  # a second signal does not restart the countdown
        dog.join(5)
        assert codes == [EXIT_SHUTDOWN_TIMEOUT]
        assert any(line.startswith("sleeper ") for line in pending_tasks(loop))
        task.cancel()
    finally:
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
    assert pending_tasks(loop) == []


@pytest.mark.parametrize("value", ["0", "-1", "3601", "soon"])
def test_a_bad_shutdown_grace_fails_at_start_up_naming_the_setting(value: str,
                                                                  monkeypatch) -> None:
    monkeypatch.setenv("DRIFTLINE_SHUTDOWN_GRACE_S", value)
    with pytest.raises(ConfigError, match="DRIFTLINE_SHUTDOWN_GRACE_S"):
        Settings()
