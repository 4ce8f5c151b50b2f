"""A newcomer's failures: one line with the remedy, bounded logs, ready lines (issue #13).

Real processes (``python -m driftline ...``), a real Tansu broker that this
test stops and starts again (its memory storage loses the topics: they are
created again, as ``driftline up`` would), the session's real Redis.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftline.cli import app
from driftline.errors import DriftlineError
from driftline.local_infra import LocalBroker, ensure_topics, free_port, settings_env
from driftline.service_log import BrokerWatch
from driftline.settings import Settings
from producers.publisher import Publisher
from schemas.events import Alert
from sinks.redis_state import read_alert
from tests.integration.processes import spawn, terminate

pytestmark = pytest.mark.integration


def _nowhere(tmp_path: Path) -> dict[str, str]:
    """Settings pointing at a broker and a Redis that do not exist (free ports)."""
    port = free_port()
    return settings_env(Settings(bootstrap_servers=f"127.0.0.1:{port}",
                                 redis_url=f"redis://127.0.0.1:{port}/0",
                                 data_dir=tmp_path / "data"))


def test_a_worker_without_a_broker_exits_with_one_line(tmp_path):
    started = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "driftline", "worker"], env=_nowhere(tmp_path),
                         capture_output=True, text=True, timeout=60)
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
    assert res.returncode == 1, (res.stdout, res.stderr)
    # It may first warn that control is unauthenticated; then one line, no traceback.
    assert len(lines) <= 2, lines
    assert "unreachable" in lines[-1] and "DRIFTLINE_BOOTSTRAP_SERVERS" in lines[-1], lines
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("args, setting", [
    (["rereference", "cam-1"], "DRIFTLINE_BOOTSTRAP_SERVERS"),
    (["ack", "cam-1", "quality.brightness"], "DRIFTLINE_REDIS_URL"),
    (["state", "cam-1"], "DRIFTLINE_REDIS_URL"),
])
def test_operator_commands_say_what_is_unreachable_at_once(tmp_path, args, setting):
    started = time.monotonic()
    res = CliRunner().invoke(app, args, env=_nowhere(tmp_path))
    # main() prints a DriftlineError as one line `error: ...` (exit code 1).
    assert isinstance(res.exception, DriftlineError), res.output
    assert "unreachable" in str(res.exception) and setting in str(res.exception)
    assert "\n" not in str(res.exception)
    assert time.monotonic() - started < 10  # not a 30 s delivery timeout


def test_retrain_gain_is_acknowledged_not_rereferenced_and_unknown_streams_refused(settings):
    env = settings_env(settings)
    res = CliRunner().invoke(app, ["rereference", "cam-1", "--signal",
                                   "performance.retrain_gain"], env=env)
    assert res.exit_code == 2 and "driftline ack" in res.output, res.output
    res = CliRunner().invoke(app, ["ack", "no-such-cam", "quality.brightness"], env=env)
    assert res.exit_code == 1 and "unknown stream 'no-such-cam'" in res.output, res.output


def test_broker_watch_reports_each_change_once(caplog):
    import socket

    port = free_port()
    watch = BrokerWatch(f"127.0.0.1:{port}", probe_every_s=0.2)
    with caplog.at_level("WARNING", logger="driftline.broker"):
        for _ in range(50):  # a client failing in a loop
            watch.failure("Connect to 127.0.0.1 failed: Connection refused")
        def said() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.name == "driftline.broker"]

        # Wait on the log lines, not on ``watch.down``: the probe flips the flag
        # before it logs, so leaving on the flag races the line (a failed CI run).
        # Each wait has its own generous deadline: a loaded machine is slow, not wrong.
        deadline = time.monotonic() + 30
        while len(said()) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        with socket.create_server(("127.0.0.1", port)):
            deadline = time.monotonic() + 30
            while len(said()) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        time.sleep(0.5)  # a duplicate line would land now
    lines = said()
    assert lines == [f"broker 127.0.0.1:{port} unreachable, retrying",
                     f"broker 127.0.0.1:{port} reachable again"]


def test_sinks_say_ready_stay_quiet_while_the_broker_is_down_and_recover(
        redis_url, topic_prefix, tmp_path):
    with LocalBroker(log_dir=tmp_path) as broker:
        settings = Settings(bootstrap_servers=broker.bootstrap, redis_url=redis_url,
                            topic_prefix=topic_prefix, consumer_group=f"{topic_prefix}.g",
                            partitions=1, data_dir=tmp_path / "data")
        ensure_topics(broker.bootstrap, settings.topics, settings.partitions)
        log = tmp_path / "sinks.log"
        sinks = spawn(["sinks"], {**settings_env(settings), "PYTHONUNBUFFERED": "1"}, log)
        try:
            _wait_for(log, "sinks ready: consuming", 60)
            broker.stop()
            down_at = time.monotonic()
            _wait_for(log, "unreachable, retrying", 30)
            time.sleep(max(0.0, 8 - (time.monotonic() - down_at)))  # ~150 librdkafka attempts
            while_down = log.read_text().splitlines()
            broker.start()  # same port
            ensure_topics(broker.bootstrap, settings.topics, settings.partitions)
            _wait_for(log, "reachable again", 30)
            alert = _alert(topic_prefix)
            with Publisher(broker.bootstrap) as pub:
                pub.publish(settings.topics.alerts, alert)
            deadline = time.monotonic() + 60
            while read_alert(redis_url, alert.alert_id, namespace=topic_prefix) is None:
                assert time.monotonic() < deadline, log.read_text()
                assert sinks.poll() is None, log.read_text()
                time.sleep(0.5)
        finally:
            terminate(sinks, timeout_s=30)
    # Ready line, then one line for the loss (plus at most a few of the group's own).
    assert len(while_down) <= 5, while_down
    assert sum("unreachable" in ln for ln in log.read_text().splitlines()) == 1


def _wait_for(log: Path, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {text!r} in:\n{log.read_text()}"
        time.sleep(0.2)


def _alert(prefix: str) -> Alert:
    return Alert(alert_id=f"a-{prefix}"[:64], stream_id="cam-1", model_version="v1",
                 signal="quality.brightness", detector="cusum", severity="warning",
                 message="test", statistic=1.0, threshold=0.5, detected_index=1,
                 change_index=1, detected_event_id="e1", ert=1000.0)



def test_simulate_help_lists_drift_kinds_and_scenes():
    res = CliRunner().invoke(app, ["simulate", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for word in ("Drift kinds:", "blur", "color_cast", "Scenes:", "astronaut", "coffee"):
        assert word in res.output, word


def test_the_worker_keeps_its_files_under_data_dir(tmp_path, monkeypatch):
    from processors.stream_app import build_app

    monkeypatch.chdir(tmp_path)
    settings = Settings(data_dir=tmp_path / "data", consumer_group="first-hour")
    worker_app = build_app(settings)
    assert worker_app.conf.datadir == tmp_path / "data" / "first-hour.worker-data"
    assert (tmp_path / "data").is_dir() and list(tmp_path.iterdir()) == [tmp_path / "data"]
