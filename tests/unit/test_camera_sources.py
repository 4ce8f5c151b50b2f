"""What ``driftline publish`` makes of its SOURCE, sampling by time, reconnects, followed folders.

Real files, real OpenCV/FFmpeg and a real (refused) TCP connection; no camera
device exists here, so USB sources are tested as far as their parsing.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from driftline.cli_publish import parse_resize
from driftline.errors import ConfigError, UndecodableImage
from driftline.local_infra import free_port
from producers.camera_publish import CameraOptions, edge_vector, resize_rgb
from producers.camera_source import Backoff, Capture, TimeSampler, parse_source
from producers.folder_follow import folder_files


def test_parse_source_kinds(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"")
    (tmp_path / "rec.jsonl.gz").write_bytes(b"")
    assert parse_source("rtsp://cam.local:554/h264").kind == "url"
    assert parse_source("HTTPS://cam/mjpeg").kind == "url"
    assert [parse_source(s).device for s in ("/dev/video0", "/dev/video12", "3")] == [0, 12, 3]
    assert parse_source("/dev/video1").live and parse_source("rtsp://x/y").live
    assert parse_source(str(tmp_path)).kind == "folder"
    assert parse_source(str(tmp_path / "clip.mp4")).kind == "video"
    assert parse_source(str(tmp_path / "rec.jsonl.gz")).kind == "jsonl"
    assert not parse_source(str(tmp_path)).live
    with pytest.raises(ConfigError, match="source"):
        parse_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(ConfigError) as err:
        parse_source("/dev/videoX")
    assert err.value.setting == "source"


def test_a_url_password_is_never_shown() -> None:
    spec = parse_source("rtsp://admin:hunter2@10.0.0.5:554/stream1")
    assert "hunter2" not in spec.shown and "10.0.0.5" in spec.shown
    with pytest.raises(ConfigError) as err:
        parse_source("ftp://admin:hunter2@cam/x")
    assert "hunter2" not in str(err.value)


def test_options_parse_and_refuse() -> None:
    assert parse_resize("320x240") == (320, 240) and parse_resize(None) is None
    with pytest.raises(ConfigError, match="resize"):
        parse_resize("big")
    with pytest.raises(ConfigError, match="jpeg-quality"):
        CameraOptions(stream_id="s", jpeg_quality=0)
    with pytest.raises(ConfigError, match="resize"):
        CameraOptions(stream_id="s", resize=(4, 4))
    assert resize_rgb(np.zeros((480, 640, 3), np.uint8), (320, 240)).shape == (240, 320, 3)


def test_time_sampler_keeps_one_frame_per_slot_whatever_the_frame_rate() -> None:
    # A camera that changes from 25 to 7 fps is still sampled at 2 per second.
    times = [i / 25 for i in range(50)] + [2 + i / 7 for i in range(14)]
    s = TimeSampler(2.0)
    kept = [t for t in times if s.due(t)]
    assert [int(t * 2) for t in kept] == list(range(8))  # the first frame of each 0.5 s
    assert all(TimeSampler(None).due(t) for t in times)
    loop = TimeSampler(1.0)
    assert [loop.due(t) for t in (0.0, 5.0, 0.2, 0.3)] == [True, True, True, False]
    with pytest.raises(ConfigError, match="fps"):
        TimeSampler(0)


def test_edge_vectors_are_short_and_close() -> None:
    rng = np.random.default_rng(0)
    v = rng.gamma(1.0, 0.3, 1280)
    short = edge_vector(v, 4)
    cos = np.dot(short, v) / np.linalg.norm(short) / np.linalg.norm(v)
    assert 1 - cos < 1e-6
    assert len(repr(short)) < 0.5 * len(repr(v.tolist()))


def _video(path: Path, n: int, fps: float) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (32, 24))
    for i in range(n):
        w.write(np.full((24, 32, 3), 10 * i, np.uint8))
    w.release()
    return path


def test_a_video_file_is_read_once_with_its_stream_time(tmp_path: Path) -> None:
    statuses: list[tuple[str, str]] = []
    cap = Capture(parse_source(str(_video(tmp_path / "v.avi", 12, 4.0))),
                  on_status=lambda st, why, *_: statuses.append((st, why)))
    got = [(g.index, g.t, g.rgb().shape) for g in cap.frames()]
    assert [i for i, _, _ in got] == list(range(12))
    assert got[4][1] == pytest.approx(1.0) and got[4][2] == (24, 32, 3)
    assert statuses == [("online", str(tmp_path / "v.avi")), ("offline", "end of file")]
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video")
    with pytest.raises(UndecodableImage):  # a file is not retried
        list(Capture(parse_source(str(junk))).frames())


def test_a_camera_that_does_not_answer_is_retried_with_backoff_then_given_up() -> None:
    # Nothing listens on this port: FFmpeg's connection is refused at once.
    spec = parse_source(f"rtsp://127.0.0.1:{free_port()}/cam")
    statuses: list[tuple[str, int]] = []
    cap = Capture(spec, backoff=Backoff(first=0.05, factor=2.0, cap=0.2, give_up_s=1.0),
                  timeout_s=1.0, on_status=lambda st, _why, attempt, _gap:
                  statuses.append((st, attempt)))
    started = time.monotonic()
    assert list(cap.frames()) == []
    assert time.monotonic() - started < 15
    kinds = [s for s, _ in statuses]
    assert kinds[-1] == "offline" and set(kinds[:-1]) == {"reconnecting"} and len(kinds) >= 3
    assert [a for _, a in statuses[:-1]] == list(range(1, len(kinds)))


def test_stop_ends_a_reconnecting_camera_at_once() -> None:
    stop = threading.Event()
    spec = parse_source(f"rtsp://127.0.0.1:{free_port()}/cam")
    cap = Capture(spec, backoff=Backoff(first=30.0), stop=stop, timeout_s=1.0,
                  on_status=lambda *_: stop.set())  # Ctrl-C while it waits to retry
    started = time.monotonic()
    assert list(cap.frames()) == []
    assert time.monotonic() - started < 10


def test_a_followed_folder_yields_new_files_in_order_and_not_half_written_ones(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-000.jpg").write_bytes(b"0")
    stop = threading.Event()
    got: list[str] = []

    def consume() -> None:
        for f in folder_files(tmp_path, "name", follow=True, poll_s=0.05, settle_s=0.2,
                              stop=stop):
            got.append(f.name)

    t = threading.Thread(target=consume)
    t.start()
    for i in range(1, 4):
        (tmp_path / f".part-{i}").write_bytes(b"x")  # hidden while written
        (tmp_path / f".part-{i}").rename(tmp_path / f"a-{i:03d}.jpg")
        time.sleep(0.05)
    (tmp_path / "a-000-late.txt").write_text("not an image")
    deadline = time.monotonic() + 5
    while len(got) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    t.join(5)
    assert got == ["a-000.jpg", "a-001.jpg", "a-002.jpg", "a-003.jpg"]
    with pytest.raises(ConfigError):
        list(folder_files(tmp_path / "nope"))


# -- a folder read once (what `driftline publish DIR` reads without --follow) ---------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name, ext in (("b", ".png"), ("a", ".jpg"), ("c", ".webp"), ("d", ".JPEG")):
        rgb = np.random.default_rng(ord(name)).integers(0, 256, (24, 32, 3), dtype=np.uint8)
        ok, buf = cv2.imencode(ext.lower(), rgb)
        assert ok
        (tmp_path / f"{name}{ext}").write_bytes(buf.tobytes())
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    (tmp_path / "sub.jpg").mkdir()  # a directory with an image-like name
    return tmp_path


def test_a_folder_by_name_passes_the_files_bytes_through(folder: Path) -> None:
    files = list(folder_files(folder))
    assert [f.name for f in files] == ["a.jpg", "b.png", "c.webp", "d.JPEG"]
    assert all(f.data == (folder / f.name).read_bytes() for f in files)


def test_a_folder_by_mtime_and_its_errors(folder: Path, tmp_path: Path) -> None:
    for i, name in enumerate(["d.JPEG", "c.webp", "b.png", "a.jpg"]):
        os.utime(folder / name, ns=(1_000_000_000 * (i + 1),) * 2)
    assert [f.name for f in folder_files(folder, "mtime")] == ["d.JPEG", "c.webp", "b.png",
                                                                "a.jpg"]
    with pytest.raises(ConfigError, match="order"):
        list(folder_files(folder, "size"))  # type: ignore[arg-type]
    assert list(folder_files(folder / "sub.jpg")) == []


def test_a_file_deleted_mid_read_is_skipped(folder: Path) -> None:
    it = folder_files(folder)
    first = next(it)
    (folder / "b.png").unlink()
    assert [first.name] + [f.name for f in it] == ["a.jpg", "c.webp", "d.JPEG"]
