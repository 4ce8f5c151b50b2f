"""``driftline up``: a second one on the same ports fails loudly, the first keeps running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from driftline.local_infra import free_port, port_holder

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _up(broker: int, redis: int, tmp: Path, name: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env["DRIFTLINE_TOPIC_PREFIX"] = f"up-{name}"
    return subprocess.Popen(
        [sys.executable, "-m", "driftline", "up", "--broker-port", str(broker),
         "--redis-port", str(redis)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp,
    )


def _children(pid: int) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(proc.name))
    return out


def test_a_second_up_on_the_same_ports_exits_non_zero_naming_the_port(tmp_path):
    broker, redis = free_port(), free_port()
    first = _up(broker, redis, tmp_path, "first")
    try:
        assert first.stdout is not None
        lines = [first.stdout.readline() for _ in range(2)]
        assert lines[0].startswith("export DRIFTLINE_BOOTSTRAP_SERVERS="), lines
        assert port_holder(broker) is not None and port_holder(redis) is not None

        second = _up(broker, redis, tmp_path, "second")
        out, err = second.communicate(timeout=60)
        assert second.returncode != 0
        assert out == "", "no export lines: nothing of its own started"
        problem = [line for line in err.splitlines() if line.strip()]
        assert len(problem) == 1, err
        assert f"127.0.0.1:{broker} is in use by pid {first.pid}" in problem[0] or (
            f"127.0.0.1:{broker} is in use by pid" in problem[0]), problem

        # The first is untouched: still serving, with its own two children.
        time.sleep(0.5)
        assert first.poll() is None
        assert len(_children(first.pid)) == 2
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=30)
    assert port_holder(broker) is None and port_holder(redis) is None


def test_up_prints_where_its_logs_are(tmp_path):
    broker, redis = free_port(), free_port()
    proc = _up(broker, redis, tmp_path, "logs")
    try:
        assert proc.stdout is not None and proc.stderr is not None
        [proc.stdout.readline() for _ in range(2)]
        ready = proc.stderr.readline()
        while ready and "are up" not in ready:
            ready = proc.stderr.readline()
        assert "logs:" in ready
        paths = ready.split("logs:")[1].split(";")[0].split()
        assert len(paths) == 2 and all(Path(p).exists() for p in paths), ready
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
