"""Every command and snippet in the README, run as written (against a real broker).

Each fenced block of README.md is either run here or listed in ``NOT_RUN``
with the test that covers it instead; a new block that is neither fails
``test_every_readme_block_is_accounted_for``. The only change made to a
snippet before it runs: the example broker address ``kafka-1:9092`` becomes
the test broker's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from driftline.local_infra import ensure_topics
from driftline.settings import Topics
from schemas.events import Alert, Frame, Label, Prediction
from schemas.wire import decode_event, encode

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
BLOCKS = [(m.group(1), m.group(2)) for m in FENCE.finditer(README)]

# First line of a block -> what covers it instead of running it here.
NOT_RUN = {
    "camera / app ──SDK──►": "a diagram",
    "make demo    # the whole pipeline": "CI runs `make test` (.ci/run); test_demo runs the demo",
    "make test-fast   # unit tests and doctests only": "developer commands; CI runs lint",
    "{ns}:streams ": "the Redis layout; test_sinks.py and test_redis_keys.py read it",
    "export DRIFTLINE_API__TOKEN=": "test_api.py makes these requests over real HTTP",
    "read 1250 frames, kept 100": "sample output; test_the_camera_quick_start checks the "
    "progress and summary lines of a real run",
    "driftline publish rtsp://cam.local/h264": "needs a camera: test_publish_cameras.py runs "
    "--edge (a video file), --follow on a folder a camera writes into and an RTSP camera; "
    "/dev/video0 is not tested on hardware (no device here; test_camera_sources parses it)",
    "$ driftline streams": "test_operator_controls.py runs `driftline streams` on a live fleet",
}


def _block(first_line: str) -> str:
    found = [body for _, body in BLOCKS if body.startswith(first_line)]
    assert len(found) == 1, f"README block starting {first_line!r}: {len(found)} found"
    return found[0]


RUN = {
    "$ DRIFTLINE_MONITOR__ERT=5 driftline worker",
    "from pathlib import Path\nfrom producers.publisher import Publisher",
    "driftline publish ./shots",
    "driftline publish rtsp://admin:secret@10.0.0.5:554/stream1",
    "from confluent_kafka import Consumer",
    "import json\n\nfrom sinks.webhook import InvalidSignature, verify",
    "$ driftline snooze cam-7",
    "DRIFTLINE_WEBHOOKS=",
    "DRIFTLINE_MONITOR__MIN_DURATION_BY_SIGNAL=",
}


def test_every_readme_block_is_accounted_for():
    for _, body in BLOCKS:
        covered = [k for k in (*NOT_RUN, *RUN) if body.startswith(k)]
        assert covered, f"README block not run by a test nor listed in NOT_RUN:\n{body[:200]}"


def _env(broker: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if broker:
        env["DRIFTLINE_BOOTSTRAP_SERVERS"] = broker
    return env


def _shell_line(line: str) -> list[str]:
    """A README command line as argv: `driftline` is this checkout's CLI."""
    words = line.split("#", 1)[0].split()
    assert words[0] == "driftline", line
    return [sys.executable, "-m", "driftline", *words[1:]]


def test_a_misspelt_setting_fails_as_the_readme_shows():
    prompt, expected = _block("$ DRIFTLINE_MONITOR__ERT=5 driftline worker").splitlines()[:2]
    assignment, *command = prompt.removeprefix("$ ").split()
    name, value = assignment.split("=")
    env = {**_env(), name: value}
    res = subprocess.run(_shell_line(" ".join(command)), env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip() == expected


@pytest.fixture
def readme_topics(broker: str) -> Topics:
    # The README's snippets name the default prefix's topics.
    topics = Topics(prefix="driftline")
    ensure_topics(broker, topics, 2)
    return topics


def _jpeg(path: Path, seed: int = 0) -> None:
    img = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    cv2.imwrite(str(path), img)


def _run_snippet(code: str, broker: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    code = code.replace("kafka-1:9092", broker)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=_env(broker),
                          capture_output=True, text=True, timeout=timeout)


def _read(broker: str, topic: str, n: int, timeout_s: float = 20.0) -> list[bytes]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": broker, "group.id": f"readme-{time.time_ns()}",
                  "enable.auto.commit": False})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(out) < n:
            m = c.poll(0.2)
            if m is not None and not m.error():
                out.append(m.value() or b"")
        return out
    finally:
        c.close()


def test_the_python_publishing_snippet(broker, readme_topics, tmp_path):
    code = _block("from pathlib import Path\nfrom producers.publisher import Publisher")
    _jpeg(tmp_path / "frame-000123.jpg")
    res = _run_snippet(code, broker, tmp_path, timeout=60)
    assert res.returncode == 0, res.stderr
    kinds = {
        readme_topics.frames: Frame, readme_topics.predictions: Prediction,
        readme_topics.labels: Label,
    }
    for topic, kind in kinds.items():
        events = [decode_event(v) for v in _read(broker, topic, 50, timeout_s=5)]
        assert any(isinstance(e, kind) and e.stream_id == "cam7" for e in events), topic
    frame = next(e for e in map(decode_event, _read(broker, readme_topics.frames, 50, 5))
                 if isinstance(e, Frame) and e.event_id == "cam7-000123")
    assert frame.image == (tmp_path / "frame-000123.jpg").read_bytes()


def test_the_publish_commands(broker, readme_topics, tmp_path):
    (tmp_path / "shots").mkdir()
    for i in range(3):
        _jpeg(tmp_path / "shots" / f"{i:03d}.jpg", seed=i)
    writer = cv2.VideoWriter(str(tmp_path / "lobby.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10,
                             (64, 48))
    for i in range(20):
        frame = np.full((48, 64, 3), 10 * i, np.uint8)
        writer.write(frame)
    writer.release()
    pred = Prediction(event_id="r-1", stream_id="rec", top_class="cat", confidence=0.9)
    (tmp_path / "rec.jsonl").write_bytes(encode(pred) + b"\n")
    for line in _block("driftline publish ./shots").splitlines():
        res = subprocess.run(_shell_line(line), cwd=tmp_path, env=_env(broker),
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, (line, res.stderr)


def test_the_alert_consumer_snippet(broker, readme_topics, tmp_path):
    from producers.publisher import Publisher

    alert = Alert(alert_id="a" * 32, stream_id="cam7", model_version="v1",
                  signal="quality.brightness", detected_event_id="e5",
                  detector="cusum", severity="warning", message="brightness fell",
                  statistic=12.0, threshold=10.0, detected_index=5, change_index=3)
    with Publisher(broker) as pub:
        pub.publish(readme_topics.alerts, alert)
    code = _block("from confluent_kafka import Consumer")
    # The loop runs forever, as a consumer should: let it print for a while, then stop it.
    proc = subprocess.Popen([sys.executable, "-u", "-c", code.replace("kafka-1:9092", broker)],
                            cwd=tmp_path, env=_env(broker), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    with pytest.raises(subprocess.TimeoutExpired):
        # Tansu completes a group join after half the session timeout (45 s by default).
        proc.communicate(timeout=40)
    proc.kill()
    out, err = proc.communicate()
    assert "cam7 quality.brightness brightness fell" in out.splitlines(), (out, err[-2000:])


def receiver_snippet() -> dict[str, Any]:
    """The README's webhook receiver, run: its names (``handle``, ``seen``)."""
    namespace: dict[str, Any] = {}
    exec(compile(_block("import json\n\nfrom sinks.webhook import InvalidSignature, verify"),
                 "README.md", "exec"), namespace)
    return namespace


def test_the_webhook_receiver_snippet_verifies_and_processes_each_id_once():
    from sinks.webhook import signed_headers

    handle = receiver_snippet()["handle"]
    secret, body = "whsec_" + "c2VjcmV0LWZvci10aGUtcmVhZG1l", b'{"alert_id": "x"}'
    acted: list[dict] = []
    headers = {k.title(): v for k, v in signed_headers(secret, "x", body).items()}
    assert handle(secret, headers, body, acted.append) == 204
    assert handle(secret, headers, body + b" ", acted.append) == 401
    stale = signed_headers(secret, "x", body, timestamp=int(time.time()) - 3600)
    assert handle(secret, stale, body, acted.append) == 401
    # A re-delivery (same webhook-id, a fresh signature): answered, not acted on.
    assert handle(secret, signed_headers(secret, "x", body), body, acted.append) == 204
    assert acted == [{"alert_id": "x"}]

    def broken(alert: dict) -> None:
        raise RuntimeError("ticket system down")

    other = signed_headers(secret, "y", body)
    assert handle(secret, other, body, broken) == 500  # its retry is processed
    assert handle(secret, other, body, acted.append) == 204
    assert len(acted) == 2


def test_snippets_are_valid_python():
    for lang, body in BLOCKS:
        if lang == "python":
            compile(textwrap.dedent(body), "README.md", "exec")


def test_the_readme_api_table_lists_exactly_the_served_api_routes():
    """Each ``/api/v1`` row of the README's route table is served, and each served one is a
    row (``{action}``: one POST per ``Command.action``, ``set_budget`` as ``set-budget``)."""
    import json

    from driftline.api.controls import ACTIONS
    from driftline.cli_api import openapi_document

    paths = json.loads(openapi_document())["paths"]
    served = {(method.upper(), path) for path, ops in paths.items() for method in ops
              if path.startswith("/api/v1/")}
    rows = re.findall(r"^\| `(GET|POST) (/api/v1/\S+)` \|", README, re.M)
    assert ("GET", "/api/v1/drift") in rows
    listed = set()
    for method, path in rows:
        names = [a.replace("_", "-") for a in ACTIONS] if "{action}" in path else [None]
        listed |= {(method, path.replace("{action}", n) if n else path) for n in names}
    assert listed == served


def test_the_camera_quick_start(broker, readme_topics, tmp_path):
    """The README's RTSP line against a real RTSP camera (GStreamer's server) until Ctrl-C."""
    import signal

    from tests.integration.test_publish_cameras import RtspCamera, _clip, _has_gst_rtsp

    if not _has_gst_rtsp():
        pytest.skip("needs Debian's GStreamer RTSP server (scripts/install.sh)")
    line = _block("driftline publish rtsp://admin:secret@10.0.0.5:554/stream1").strip()
    control = tmp_path / "playing"
    control.write_text("0")
    cam = RtspCamera([_clip(tmp_path / "gate.avi", [("coffee", 30)])], control,
                     tmp_path / "rtsp.log")
    cam.start()
    line = line.replace("10.0.0.5:554/stream1", f"127.0.0.1:{cam.port}/cam")
    log = tmp_path / "publish.log"
    try:
        with log.open("w") as out:
            proc = subprocess.Popen([*_shell_line(line), "--progress-every", "1"],
                                    env=_env(broker), stdout=out, stderr=subprocess.STDOUT,
                                    text=True)
        deadline = time.monotonic() + 60
        while "kept 3 " not in log.read_text() and "kept 4 " not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, log.read_text()
    finally:
        cam.kill()
    *_, progress, summary = log.read_text().strip().splitlines()
    assert "secret" not in log.read_text()
    assert re.fullmatch(r"read \d+ frames, kept \d+ \(\d+\.\d/s\), sent \d+, dropped 0, "
                        r"pending 0, \d+\.\d KB/frame, camera status offline 1, online 1",
                        progress), progress
    assert re.fullmatch(rf"published \d+ events from rtsp://\*\*\*@127.0.0.1:{cam.port}/cam "
                        r"\(driftline.frames \d+\)", summary), summary
    frames = [decode_event(v) for v in _read(broker, readme_topics.frames, 500, timeout_s=5)]
    gate = [f for f in frames if isinstance(f, Frame) and f.stream_id == "gate-3"]
    assert gate and {f.model_version for f in gate} == {"yolo-2026.11"}
    assert {cv2.imdecode(np.frombuffer(f.image, np.uint8), 1).shape for f in gate} == {
        (240, 320, 3)}


def test_the_control_commands_print_what_the_readme_shows(broker, redis_url, readme_topics):
    import json
    import shlex

    import redis
    from typer.testing import CliRunner

    from driftline.cli import app
    from sinks.redis_state import streams_key

    lines = _block("$ driftline snooze cam-7").splitlines()
    # A stream Redis knows (the sinks, not running here, would have added it):
    # `ack` refuses a stream id it has never seen.
    known = redis.Redis.from_url(redis_url)
    known.sadd(streams_key(), "cam-7")
    known.close()
    volatile = {"command_id", "ts", "until"}
    # In this process (CliRunner): seven interpreters would cost a minute of imports.
    env = {"DRIFTLINE_BOOTSTRAP_SERVERS": broker, "DRIFTLINE_REDIS_URL": redis_url,
           "USER": "ana", "LOGNAME": "ana"}
    for prompt, shown in zip(lines[::2], lines[1::2], strict=True):
        driftline, *argv = shlex.split(prompt.removeprefix("$ "))
        assert driftline == "driftline", prompt
        res = CliRunner().invoke(app, argv, env=env)
        assert res.exit_code == 0, (prompt, res.output)
        got, want = json.loads(res.stdout), json.loads(shown)
        assert list(got) == list(want), prompt
        assert {k: v for k, v in got.items() if k not in volatile} == \
            {k: v for k, v in want.items() if k not in volatile}, prompt
        if "until" in want:  # --for 2h
            span = (datetime.fromisoformat(got["until"]) - datetime.fromisoformat(got["ts"]))
            assert span.total_seconds() == 7200


def test_the_webhooks_setting_of_the_readme_is_valid(monkeypatch):
    import shlex

    from driftline.settings import load_settings

    (assignment,) = shlex.split(_block("DRIFTLINE_WEBHOOKS="))
    monkeypatch.setenv("DRIFTLINE_WEBHOOKS", assignment.removeprefix("DRIFTLINE_WEBHOOKS="))
    hooks = load_settings().webhooks
    assert [(h.name, h.format) for h in hooks] == [("dock-ops", "standard"), ("chat", "slack")]


def test_the_outputs_hold_setting_of_the_readme_is_valid(monkeypatch):
    import shlex

    from driftline.settings import load_settings
    from processors.monitor import MonitorRegistry

    name = "DRIFTLINE_MONITOR__MIN_DURATION_BY_SIGNAL"
    (assignment,) = shlex.split(_block(name + "="))
    monkeypatch.setenv(name, assignment.removeprefix(name + "="))
    monitor = load_settings().monitor
    MonitorRegistry(monitor)  # every name is a catalogue signal
    assert monitor.min_duration_by_signal == {
        "output.confidence": 30.0, "output.entropy": 30.0, "output.new_classes": 30.0}
    assert monitor.min_duration == 45.0
