"""Frames by file URI: only regular files under DRIFTLINE_EMBEDDER__URI_ROOT are read."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from driftline.errors import UndecodableImage
from processors.frame_pipeline import _frame_bytes, read_under
from schemas.events import Frame


def _frame(uri: str) -> Frame:
    return Frame(event_id="f", stream_id="cam", uri=uri)


def test_uri_frames_are_refused_without_a_root(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(b"jpeg")
    with pytest.raises(UndecodableImage, match="URI_ROOT") as info:
        _frame_bytes(_frame(f"file://{tmp_path}/a.jpg"), 1 << 20, None)
    assert info.value.reason == "unreadable_uri"


def test_a_regular_file_under_the_root_is_read(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(b"jpeg")
    assert _frame_bytes(_frame(f"file://{tmp_path}/a.jpg"), 1 << 20, tmp_path) == b"jpeg"
    assert _frame_bytes(_frame(str(tmp_path / "a.jpg")), 1 << 20, tmp_path) == b"jpeg"


@pytest.mark.parametrize("target", ["/dev/zero", "/proc/self/environ", "/etc/hostname"])
def test_files_outside_the_root_are_refused(tmp_path: Path, target: str):
    with pytest.raises(UndecodableImage, match="not under"):
        read_under(Path(target), tmp_path, 1 << 20)
    (tmp_path / "link.jpg").symlink_to(target)  # a link inside the root escaping it
    with pytest.raises(UndecodableImage, match="not under"):
        read_under(tmp_path / "link.jpg", tmp_path, 1 << 20)
    with pytest.raises(UndecodableImage, match="not under"):
        read_under(tmp_path / ".." / ".." / target.lstrip("/"), tmp_path, 1 << 20)


def test_a_fifo_under_the_root_does_not_block(tmp_path: Path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    done = threading.Event()
    errors: list[Exception] = []

    def read() -> None:
        try:
            read_under(fifo, tmp_path, 1 << 20)
        except UndecodableImage as exc:
            errors.append(exc)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(5), "reading a FIFO blocked the embedder"
    assert errors and "not a regular file" in str(errors[0])


def test_oversize_files_are_refused(tmp_path: Path):
    (tmp_path / "big.jpg").write_bytes(b"x" * 2048)
    with pytest.raises(UndecodableImage) as info:
        read_under(tmp_path / "big.jpg", tmp_path, 1024)
    assert info.value.reason == "oversize"
