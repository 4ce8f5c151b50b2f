"""The README's first command: ``driftline demo`` on embedded defaults, end to end."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_reports_the_injected_drift_and_nothing_before_it() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    run = subprocess.run(
        [sys.executable, "-m", "driftline", "demo"],
        env=env, capture_output=True, timeout=240, text=True,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "drift detected, no false alarm before it" in out
    assert "(0 before the drift," in out
    assert "0 rejected" in out
    # It ends by printing the operator's page URL (and, not on a TTY, does not wait).
    last = run.stdout.rstrip().splitlines()[-1]
    assert last.startswith("the operator's page: http://127.0.0.1:"), last
