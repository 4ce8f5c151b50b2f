"""An image folder as a camera: its files in order, then new ones as they are written.

A camera (or an NVR) that drops JPEGs into a folder is followed by polling
the folder: each pass lists it and yields, in order, the image files beyond
the last one yielded -- by name, or by modification time (ties by name).
What is remembered is that one position, not every name seen, so memory
stays constant however long the camera writes. A file modified less than
``settle_s`` ago is left for the next pass (it may still be being written);
files are yielded in order, so a newer one waits behind it. A file written
with a name (or a time) *before* the position is never picked up: cameras
name and time their shots in order.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "b.jpg").write_bytes(b"B"); _ = (d / "a.jpg").write_bytes(b"A")
>>> [(f.name, f.data) for f in folder_files(d, settle_s=0)]
[('a.jpg', b'A'), ('b.jpg', b'B')]
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from driftline.errors import ConfigError
from producers.sources import IMAGE_SUFFIXES

Order = Literal["name", "mtime"]


@dataclass(frozen=True)
class FolderFile:
    """One image file: its name, bytes and modification time (seconds)."""

    name: str
    data: bytes
    mtime: float


def _listing(folder: Path, order: Order) -> list[tuple[tuple[int, str], Path]]:
    out = []
    for entry in os.scandir(folder):
        if entry.name.startswith(".") or Path(entry.name).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            if not entry.is_file():
                continue
            mtime = entry.stat().st_mtime_ns
        except FileNotFoundError:  # rotated out between the listing and the stat
            continue
        out.append(((mtime if order == "mtime" else 0, entry.name), Path(entry.path)))
    out.sort()
    return out


def folder_files(
    path: str | os.PathLike[str], order: Order = "name", *, follow: bool = False,
    poll_s: float = 0.5, settle_s: float = 0.5, stop: threading.Event | None = None,
) -> Iterator[FolderFile]:
    """The folder's image files in ``order``; with ``follow``, new ones until ``stop``.

    Raises
    ------
    ConfigError
        ``path`` is not a directory, or ``order`` is unknown.
    """
    if order not in ("name", "mtime"):
        raise ConfigError("order", f"must be 'name' or 'mtime', got {order!r}")
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError("source", f"{folder} is not a directory")
    stop = stop or threading.Event()
    last: tuple[int, str] | None = None
    while not stop.is_set():
        now_ns = time.time_ns()
        for key, file in _listing(folder, order):
            if last is not None and key <= last:
                continue
            try:
                st = file.stat()
                if follow and now_ns - st.st_mtime_ns < settle_s * 1e9:
                    break  # still being written, perhaps: next pass, in order
                data = file.read_bytes()
            except FileNotFoundError:
                continue
            last = key
            yield FolderFile(file.name, data, st.st_mtime_ns / 1e9)
            if stop.is_set():
                return
        if not follow:
            return
        stop.wait(poll_s)
