"""``driftline`` commands as child processes of a test: started with a log file, always stopped.

``spawn`` starts ``python -m driftline ARGS`` with its output in a log file
(closed here: the child keeps its own descriptor, so no test leaks one);
``terminate`` ends children the way every test wants it: SIGTERM, a bounded wait,
SIGKILL if that ran out, and the exit codes back.

Examples
--------
>>> import subprocess, sys
>>> sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
>>> terminate(sleeper, timeout_s=10) == [-15]   # SIGTERM
True
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


def spawn(args: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m driftline ARGS`` with ``env``; stdout and stderr to ``log`` (overwritten)."""
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "driftline", *args], env=dict(env),
                                stdout=out, stderr=subprocess.STDOUT)


def terminate(*procs: subprocess.Popen[bytes] | subprocess.Popen[str],
         timeout_s: float = 15.0, sig: int = signal.SIGTERM) -> list[int]:
    """Signal every child still running (``sig``: SIGTERM, or SIGINT for Ctrl-C), wait
    ``timeout_s`` for each, SIGKILL the rest.

    Returns their exit codes, in order (negative: the signal that ended one).
    """
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=timeout_s))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait())
    return codes
