"""``driftline publish`` from real sources through a real broker into a real worker.

One worker (``driftline worker``, a child process) serves the module; each
test runs ``driftline publish`` as a child process too:

- an RTSP camera: GStreamer's RTSP server (Debian, run with the system
  Python, ``rtsp_camera.py``) plays two videos made by the simulated camera
  from the packaged scenes; the served video is switched live (an alert),
  the server is killed and restarted (the publisher reconnects; the monitor
  reports ``camera.status`` and ``camera.silent``), and Ctrl-C ends it;
- a video file published as frames and, with ``--edge``, as embeddings
  made on the publisher's side: the worker's alerts agree;
- a folder a "camera" writes into, followed (``--follow``).

Small frames, short clips and low rates keep the module near a minute.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from driftline.local_infra import ensure_topics, free_port, settings_env
from driftline.settings import Settings
from producers.simulated_camera import SimulatedCamera
from schemas.events import Alert, CameraStatus, Embedding, Frame, Prediction
from schemas.wire import decode_event
from tests.integration.processes import spawn, terminate
from tests.integration.test_sinks import wait_for

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"
FPS = 10  # of the clips
SERVER_FPS, SAMPLE_FPS = 30, 20  # the RTSP camera's rate; what the publisher keeps of it
CLEAN = 110  # frames before the switch: the monitor's warm-up (PCA, then references of 50)


def _has_gst_rtsp() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = ("import gi; gi.require_version('Gst', '1.0'); "
             "gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer")
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


def _clip(path: Path, scenes: list[tuple[str, int]]) -> Path:
    """An MJPEG AVI of the simulated camera: ``(scene, frames)`` one after the other."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (160, 120))
    for scene, n in scenes:
        for f in SimulatedCamera(scene, seed=1, size=(160, 120), fps=FPS).frames(n):
            writer.write(f.rgb[:, :, ::-1])
    writer.release()
    return path


@pytest.fixture(scope="module")
def cam_settings(broker: str, redis_url: str) -> Settings:
    prefix = f"t-cams-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        bootstrap_servers=broker, redis_url=redis_url, topic_prefix=prefix, partitions=2,
        consumer_group=f"{prefix}.g", silent_after_s=3.0,
        monitor={"ert": 10_000, "min_duration": 0, "reference_size": 50,
                 "edge_learners": True},
    )
    ensure_topics(broker, settings.topics, 2)
    return settings


@pytest.fixture(scope="module")
def worker(cam_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = spawn(["worker", "--loglevel", "info"], settings_env(cam_settings), log)
    try:
        yield log
    finally:
        terminate(proc, timeout_s=3)  # its outputs are read already; no need to wait for faust


def _publish(settings: Settings, log: Path, *args: str) -> subprocess.Popen[bytes]:
    return spawn(["publish", *args], settings_env(settings), log)


def _events(read_topic: Callable, topic: str, n: int, timeout_s: float) -> list[object]:
    return [decode_event(r.value) for r in read_topic(topic, n, timeout_s=timeout_s)]


def _wait(what: str, check: Callable[[], object], timeout_s: float,
          logs: Sequence[Path] = ()) -> object:
    try:
        return wait_for(check, timeout_s, what)
    except AssertionError as exc:  # with what the processes said
        tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs)
        raise AssertionError(f"{exc}\n{tails}") from None


def _alerts(read_topic: Callable, settings: Settings, stream: str) -> list[Alert]:
    evs = _events(read_topic, settings.topics.alerts, 500, timeout_s=1.0)
    return [a for a in evs if isinstance(a, Alert) and a.stream_id == stream]


class RtspCamera:
    """``rtsp_camera.py`` as a child process: start, kill, start again on the same port."""

    def __init__(self, videos: list[Path], control: Path, log: Path) -> None:
        self.videos, self.control, self.log = videos, control, log
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self) -> None:
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [SYSTEM_PYTHON, str(HERE / "rtsp_camera.py"), "--port", str(self.port),
                 "--fps", str(SERVER_FPS), "--control", str(self.control),
                 *map(str, self.videos)], stdout=subprocess.PIPE, stderr=out, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready", self.log.read_text()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.mark.skipif(not _has_gst_rtsp(), reason="needs Debian's GStreamer RTSP server "
                    "(gir1.2-gst-rtsp-server-1.0, python3-gst-1.0: scripts/install.sh)")
def test_rtsp_camera_switch_drop_and_reconnect(
    cam_settings: Settings, worker: Path, read_topic: Callable, tmp_path: Path
) -> None:
    videos = [_clip(tmp_path / "coffee.avi", [("coffee", 100)]),
              _clip(tmp_path / "chelsea.avi", [("chelsea", 100)])]
    control = tmp_path / "playing"
    control.write_text("0")
    cam = RtspCamera(videos, control, tmp_path / "rtsp.log")
    cam.start()
    log = tmp_path / "publish.log"
    # The server sends 30 fps; the publisher keeps 20 per second of wall clock.
    pub = _publish(cam_settings, log, cam.url, "--stream", "cam-rtsp", "--model-version", "v1",
                   "--fps", str(SAMPLE_FPS), "--timeout", "2", "--reconnect-max", "1",
                   "--progress-every", "2")
    topics = cam_settings.topics
    logs = [log, worker, cam.log]
    try:
        def embedded() -> int:
            return sum(isinstance(e, Embedding) and e.stream_id == "cam-rtsp"
                       for e in _events(read_topic, topics.embeddings, 2000, timeout_s=1.0))

        _wait("the clean embeddings", lambda: embedded() >= CLEAN, 90, logs)
        assert not [a for a in _alerts(read_topic, cam_settings, "cam-rtsp")
                    if a.signal.startswith("embedding.")]
        control.write_text("1")  # the camera now sees another scene
        switch = _wait("an alert for the switched scene", lambda: [
            a for a in _alerts(read_topic, cam_settings, "cam-rtsp")
            if a.signal.startswith("embedding.")], 30, logs)
        assert switch

        before = embedded()
        cam.kill()  # the camera loses power
        _wait("camera.silent and camera.status", lambda: {"camera.silent", "camera.status"} <= {
            a.signal for a in _alerts(read_topic, cam_settings, "cam-rtsp")}, 60, logs)
        # 60 s, not 20: on a loaded machine (CI runs two pytest workers on two
        # cores) the worker can be tens of seconds behind the camera's frames.
        cam.start()  # back, same address
        _wait("frames again after the reconnect", lambda: embedded() >= before + 20, 40, logs)
    finally:
        code = terminate(pub, timeout_s=30, sig=signal.SIGINT)  # Ctrl-C: offline, flushed
        cam.kill()
    assert code == [0], log.read_text()[-3000:]

    statuses = [e for e in _events(read_topic, topics.predictions, 500, timeout_s=1.0)
                if isinstance(e, CameraStatus) and e.stream_id == "cam-rtsp"]
    seq = [s.status for s in statuses]
    assert seq[0] == "online" and seq[-1] == "offline" and "reconnecting" in seq, seq
    back = [s for s in statuses[1:] if s.status == "online"]
    assert back and back[0].gap_s is not None and back[0].gap_s > 1.0, back
    _wait("the offline notice", lambda: any(
        "offline" in a.message for a in _alerts(read_topic, cam_settings, "cam-rtsp")), 20, logs)
    camera = [a for a in _alerts(read_topic, cam_settings, "cam-rtsp")
              if a.signal.startswith("camera.")]
    health = [(a.signal, a.severity, a.message) for a in camera if a.lifecycle == "firing"]
    kinds = [(signal, severity) for signal, severity, _ in health]
    assert kinds.count(("camera.status", "warning")) == 1, health  # lost: one per episode
    # ... and resolved once it was back online (processors.monitor.camera_health).
    resolved = [a.lifecycle_reason or "" for a in camera if a.lifecycle == "resolved"
                and a.severity == "warning" and a.signal == "camera.status"]
    assert resolved and resolved[0].startswith("back online"), camera
    assert any("back online" in m for _, _, m in health), health
    assert ("camera.silent", "warning") in kinds, health
    text = log.read_text()
    assert "camera status" in text and "KB/frame" in text
    assert text.strip().splitlines()[-1].startswith("published ")


def test_edge_embeddings_alert_like_the_worker_embedding_the_same_frames(
    cam_settings: Settings, worker: Path, read_topic: Callable, tmp_path: Path
) -> None:
    clip = _clip(tmp_path / "clip.avi", [("coffee", CLEAN), ("chelsea", 15)])
    logs = {s: tmp_path / f"{s}.log" for s in ("frames", "edge")}
    procs = [
        _publish(cam_settings, logs["frames"], str(clip), "--stream", "cam-frames",
                 "--model-version", "v1"),
        _publish(cam_settings, logs["edge"], str(clip), "--stream", "cam-edge",
                 "--model-version", "v1", "--edge"),
    ]
    for p, log in zip(procs, logs.values(), strict=True):
        assert p.wait(120) == 0, log.read_text()[-3000:]
    topics = cam_settings.topics
    edge = [e for e in _events(read_topic, topics.predictions, 2000, timeout_s=2.0)
            if isinstance(e, Prediction) and e.stream_id == "cam-edge"]
    assert len(edge) == CLEAN + 15 and all(len(e.embedding or []) == 1280 for e in edge)
    assert not [e for e in _events(read_topic, topics.frames, 4000, timeout_s=1.0)
                if isinstance(e, Frame) and e.stream_id == "cam-edge"]  # no frame left

    def families() -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {"cam-frames": {}, "cam-edge": {}}
        for stream, prefix in (("cam-frames", "embedding."), ("cam-edge", "edge.")):
            for a in _alerts(read_topic, cam_settings, stream):
                if a.signal.startswith(prefix):
                    out[stream][a.signal.removeprefix(prefix)] = a.detected_frame_index or 0
        return out

    got = _wait("embedding alerts of both streams",
                lambda: (f := families())["cam-frames"] and f["cam-edge"] and
                f["cam-frames"].keys() == f["cam-edge"].keys() and f, 60,
                [*logs.values(), worker])
    assert isinstance(got, dict)
    worker_side, edge_side = got["cam-frames"], got["cam-edge"]
    assert {"distance", "residual"} <= worker_side.keys()
    for signal_name, index in worker_side.items():
        assert index >= CLEAN and abs(edge_side[signal_name] - index) <= 2, got
    for log in logs.values():  # bytes per frame are reported
        assert "KB/frame" in log.read_text()


def test_a_folder_a_camera_writes_into_is_followed(
    cam_settings: Settings, worker: Path, read_topic: Callable, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    shots = list(SimulatedCamera("chelsea", seed=3, size=(160, 120)).frames(12))
    for s in shots[:4]:  # already there when the publisher starts
        (folder / f"shot-{s.index:04d}.jpg").write_bytes(s.jpeg())
    log = tmp_path / "publish.log"
    pub = _publish(cam_settings, log, str(folder), "--stream", "cam-drop", "--follow",
                   "--order", "mtime", "--resize", "80x60", "--progress-every", "1",
                   "--predictions")
    try:
        for s in shots[4:]:  # the camera writes a file, then renames it into place
            time.sleep(0.15)
            tmp = folder / f".writing-{s.index}.jpg"
            tmp.write_bytes(s.jpeg())
            tmp.rename(folder / f"shot-{s.index:04d}.jpg")
        (folder / "notes.txt").write_text("not an image")
        topics = cam_settings.topics

        def frames() -> list[Frame]:
            return [e for e in _events(read_topic, topics.frames, 4000, timeout_s=1.0)
                    if isinstance(e, Frame) and e.stream_id == "cam-drop"]

        _wait("every file as a frame", lambda: len(frames()) == 12, 30, [log])
    finally:
        code = terminate(pub, timeout_s=30, sig=signal.SIGINT)
    assert code == [0], log.read_text()[-3000:]
    got = frames()
    assert [f.meta["source"] for f in got] == [f"shot-{s.index:04d}.jpg" for s in shots]
    assert {cv2.imdecode(np.frombuffer(f.image, np.uint8), 1).shape for f in got} == {(60, 80, 3)}
    assert log.read_text().strip().splitlines()[-1] == (
        f"published 24 events from {folder} ({topics.frames} 12, {topics.predictions} 12)")
    # --predictions: the packaged classifier's verdict on each frame, linked to it.
    preds = [e for e in _events(read_topic, topics.predictions, 4000, timeout_s=1.0)
             if isinstance(e, Prediction) and e.stream_id == "cam-drop"]
    assert [p.frame_id for p in preds] == [f.event_id for f in got]
    assert all(p.top_class and p.scores and p.embedding is None for p in preds)
    _wait("the worker's embeddings of the folder", lambda: sum(
        isinstance(e, Embedding) and e.stream_id == "cam-drop"
        for e in _events(read_topic, topics.embeddings, 4000, timeout_s=1.0)) == 12, 30,
        [worker])
