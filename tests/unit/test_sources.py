"""Sources read real files: an image folder, an MJPG video, a JSONL recording."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from driftline.errors import ConfigError, UndecodableImage
from producers.sources import encode_jpeg, image_folder, jsonl_recording, video_file


def _img(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name, ext in (("b", ".png"), ("a", ".jpg"), ("c", ".webp"), ("d", ".JPEG")):
        ok, buf = cv2.imencode(ext.lower(), _img(ord(name)))
        assert ok
        (tmp_path / f"{name}{ext}").write_bytes(buf.tobytes())
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    (tmp_path / "sub.jpg").mkdir()  # a directory with an image-like name
    return tmp_path


def test_image_folder_by_name_passes_bytes_through(folder: Path) -> None:
    items = list(image_folder(folder))
    assert [name for name, _ in items] == ["a.jpg", "b.png", "c.webp", "d.JPEG"]
    for name, data in items:
        assert data == (folder / name).read_bytes()
        assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None


def test_image_folder_by_mtime(folder: Path) -> None:
    for i, name in enumerate(["d.JPEG", "c.webp", "b.png", "a.jpg"]):
        os.utime(folder / name, ns=(1_000_000_000 * (i + 1),) * 2)
    assert [n for n, _ in image_folder(folder, order="mtime")] == [
        "d.JPEG",
        "c.webp",
        "b.png",
        "a.jpg",
    ]


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        list(image_folder(tmp_path / "missing"))
    with pytest.raises(ConfigError):
        list(image_folder(tmp_path, order="size"))  # type: ignore[arg-type]
    assert list(image_folder(tmp_path)) == []


def test_image_folder_skips_a_file_deleted_mid_stream(folder: Path) -> None:
    it = image_folder(folder)
    first = next(it)
    (folder / "b.png").unlink()
    assert [first[0]] + [n for n, _ in it] == ["a.jpg", "c.webp", "d.JPEG"]


def _write_video(path: Path, n: int, fps: float = 10.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert writer.isOpened()
    for i in range(n):
        bgr = np.zeros((48, 64, 3), np.uint8)
        bgr[:, :, 2] = 200  # red in opencv's BGR order
        bgr[:, :, 1] = i * 10  # green encodes the frame number
        writer.write(bgr)
    writer.release()


def test_video_file_all_frames_rgb(tmp_path: Path) -> None:
    path = tmp_path / "v.avi"
    _write_video(path, 20)
    frames = list(video_file(path))
    assert [i for i, _ in frames] == list(range(20))
    _, rgb = frames[7]
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    assert rgb[..., 0].mean() > 180 and rgb[..., 2].mean() < 30  # RGB, not BGR
    assert abs(rgb[..., 1].mean() - 70) < 8  # really frame 7


def test_video_file_subsampled(tmp_path: Path) -> None:
    path = tmp_path / "v.avi"
    _write_video(path, 20, fps=10.0)
    assert [i for i, _ in video_file(path, fps=5.0)] == list(range(0, 20, 2))
    assert [i for i, _ in video_file(path, fps=2.5)] == list(range(0, 20, 4))
    assert len(list(video_file(path, fps=30.0))) == 20


def test_video_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        list(video_file(tmp_path / "missing.avi"))
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(UndecodableImage):
        list(video_file(bad))
    with pytest.raises(ConfigError):
        list(video_file(bad, fps=0))


def test_jsonl_recording_raw_lines(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    path.write_bytes(b'{"kind": "frame"}\n\n   \n{not json\r\n{"kind": "label"}')
    assert list(jsonl_recording(path)) == [b'{"kind": "frame"}', b"{not json", b'{"kind": "label"}']
    gz = tmp_path / "rec.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"a": 1}\n\n{"b": 2}\n'))
    assert list(jsonl_recording(gz)) == [b'{"a": 1}', b'{"b": 2}']
    with pytest.raises(ConfigError):
        list(jsonl_recording(tmp_path / "missing.jsonl"))


def test_encode_jpeg_round_trip_keeps_colours() -> None:
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[..., 0] = 220  # red
    data = encode_jpeg(rgb, quality=95)
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert back[..., 0].mean() > 200 and back[..., 2].mean() < 20
    assert len(encode_jpeg(_img(1), quality=10)) < len(encode_jpeg(_img(1), quality=95))
    assert encode_jpeg(np.zeros((8, 8), np.uint8))[:2] == b"\xff\xd8"
    with pytest.raises(ValueError):
        encode_jpeg(rgb, quality=0)
    with pytest.raises(ValueError):
        encode_jpeg(rgb.astype(np.float32))


# -- what `driftline publish` makes of a source (no broker needed) -----------


def test_source_frames_of_a_folder_keep_the_files_bytes(folder: Path) -> None:
    from producers.publish_source import source_frames, source_kind

    assert source_kind(folder) == "folder"
    frames = list(source_frames(folder, stream_id="cam-f", model_version="v2"))
    assert [f.meta["source"] for f in frames] == ["a.jpg", "b.png", "c.webp", "d.JPEG"]
    assert [f.content_type for f in frames] == ["image/jpeg", "image/png", "image/webp",
                                                "image/jpeg"]
    assert [f.frame_index for f in frames] == [0, 1, 2, 3]
    assert all(f.image == (folder / f.meta["source"]).read_bytes() for f in frames)
    assert {(f.stream_id, f.model_version) for f in frames} == {("cam-f", "v2")}
    assert len({f.event_id for f in frames}) == 4


def test_source_frames_of_a_video_are_jpegs_subsampled(tmp_path: Path) -> None:
    from producers.publish_source import source_frames, source_kind

    path = tmp_path / "v.avi"
    _write_video(path, 20, fps=10.0)
    assert source_kind(path) == "video"
    frames = list(source_frames(path, stream_id="cam-v", fps=5.0))
    assert [f.frame_index for f in frames] == list(range(0, 20, 2))
    assert all(f.image is not None and f.image[:2] == b"\xff\xd8" for f in frames)
    rgb = cv2.imdecode(np.frombuffer(frames[3].image or b"", np.uint8), cv2.IMREAD_COLOR)
    assert abs(rgb[..., 1].mean() - 60) < 8  # really frame 6 (green = 10 * index)
