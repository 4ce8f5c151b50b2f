"""Where a producer's frames come from: image folders, video files, JSONL recordings.

Each source is a plain generator and knows nothing of Kafka; the publisher and
the CLI wrap them into events.

- :func:`image_folder` yields ``(file name, encoded bytes)``: the bytes are passed
  through unchanged (no re-encoding: what the camera wrote is what is monitored).
- :func:`video_file` yields ``(source frame index, RGB array)``, optionally
  subsampled to a chosen frame rate.
- :func:`jsonl_recording` yields each non-blank line's raw bytes, unparsed, so a
  bad line still reaches the dead-letter topic with its original bytes.
- :func:`encode_jpeg` turns an RGB array into JPEG bytes.

Library failures (opencv cannot open a file, a folder is missing) become
:mod:`driftline.errors` types here.

Examples
--------
>>> import numpy as np
>>> data = encode_jpeg(np.zeros((8, 8, 3), np.uint8))
>>> data[:2] == b"\\xff\\xd8"
True
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from driftline.errors import ConfigError, UndecodableImage

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp"})
"""File name endings (case-insensitive) that :func:`image_folder` picks up."""


def image_folder(
    path: str | os.PathLike[str], order: Literal["name", "mtime"] = "name"
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, bytes)`` for each JPEG/PNG/WebP file directly in ``path``.

    Parameters
    ----------
    path
        The folder (not searched recursively; hidden files are skipped).
    order
        ``"name"``: by file name; ``"mtime"``: oldest first (ties by name) — the
        order a camera dumping files into a folder wrote them.

    Raises
    ------
    ConfigError
        ``path`` is not a directory, or ``order`` is unknown.

    Notes
    -----
    The folder is listed once, when iteration starts. A file deleted between the
    listing and its read is skipped (a camera rotating old files out must not
    stop the stream).
    """
    if order not in ("name", "mtime"):
        raise ConfigError("order", f"order must be 'name' or 'mtime', got {order!r}")
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError("image_folder", f"{folder} is not a directory")
    files: list[tuple[int, str, Path]] = []
    for entry in os.scandir(folder):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        if Path(entry.name).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        mtime = entry.stat().st_mtime_ns if order == "mtime" else 0
        files.append((mtime, entry.name, Path(entry.path)))
    files.sort()
    for _mtime, name, file in files:
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            continue
        yield name, data


def video_file(
    path: str | os.PathLike[str], fps: float | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, rgb)`` for the frames of a video, optionally subsampled to ``fps``.

    Parameters
    ----------
    path
        Any file opencv can decode (``.avi``, ``.mp4`` with the codecs in the wheel).
    fps
        Target frame rate; None (or a rate at or above the file's) keeps every
        frame. A frame is kept when its timestamp enters a new ``1/fps`` slot, so
        ``fps=5`` on a 10 fps file keeps frames 0, 2, 4, ...

    Yields
    ------
    tuple[int, numpy.ndarray]
        The frame's index in the file (0-based) and its RGB uint8 HxWx3 pixels.

    Raises
    ------
    ConfigError
        The file does not exist, or ``fps`` is not positive.
    UndecodableImage
        opencv cannot open the file.
    """
    if fps is not None and not fps > 0:
        raise ConfigError("fps", f"fps must be > 0, got {fps}")
    file = Path(path)
    if not file.is_file():
        raise ConfigError("video_file", f"{file} does not exist")
    cap = cv2.VideoCapture(str(file))
    try:
        if not cap.isOpened():
            raise UndecodableImage(f"cannot open video {file}")
        src_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        # Files without a usable rate: assume 25 fps for the subsampling arithmetic.
        src_fps = src_fps if src_fps > 0 else 25.0
        keep_all = fps is None or fps >= src_fps
        last_slot = -1
        index = 0
        while True:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                break
            if not keep_all:
                assert fps is not None
                # The small epsilon keeps exact ratios (10 -> 5 fps) from flickering on
                # floating-point rounding of index / src_fps * fps.
                slot = int(index * fps / src_fps + 1e-9)
                if slot == last_slot:
                    index += 1
                    continue
                last_slot = slot
            yield index, np.ascontiguousarray(bgr[:, :, ::-1])
            index += 1
    finally:
        cap.release()


def jsonl_recording(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """Yield each non-blank line of a JSONL recording as raw bytes (``.gz`` files too).

    Lines are not parsed: an invalid line is yielded like any other, so the
    caller can send its exact bytes to the dead-letter topic. Only the line
    terminator (``\\n`` or ``\\r\\n``) is removed; whitespace-only lines are skipped.

    Raises
    ------
    ConfigError
        The file does not exist.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "rec.jsonl"
    >>> _ = p.write_bytes(b'{"a": 1}\\n\\n{bad\\r\\n')
    >>> list(jsonl_recording(p))
    [b'{"a": 1}', b'{bad']
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError("jsonl_recording", f"{file} does not exist")
    opener = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rb") as fh:
        for line in fh:
            raw = line.rstrip(b"\r\n")
            if raw.strip():
                yield raw


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """Encode an RGB uint8 HxWx3 (or HxW grey) array as JPEG bytes.

    Raises
    ------
    ValueError
        Wrong dtype or shape, or ``quality`` outside 1..100.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    if rgb.dtype != np.uint8 or not (rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] == 3)):
        raise ValueError(f"expected RGB uint8 HxWx3 or HxW, got {rgb.dtype} {rgb.shape}")
    img = rgb if rgb.ndim == 2 else rgb[:, :, ::-1]  # opencv encodes BGR
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - opencv encodes any valid uint8 image
        raise UndecodableImage("opencv could not JPEG-encode the frame")
    return buf.tobytes()
