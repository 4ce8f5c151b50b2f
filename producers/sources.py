"""What file-based producers share: JSONL recordings, JPEG encoding, image file types.

Cameras, video files and image folders are read by ``producers.camera_source``
and ``producers.folder_follow`` (``driftline publish``); this module holds
what they and the recording publisher (``producers.publish_recording``) share.

- :func:`jsonl_recording` yields each non-blank line's raw bytes, unparsed, so a
  bad line still reaches the dead-letter topic with its original bytes.
- :func:`encode_jpeg` turns an RGB array into JPEG bytes.
- ``CONTENT_TYPES`` / ``IMAGE_SUFFIXES``: the image files a folder source picks up.

Library failures (opencv cannot encode, a file is missing) become
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

import cv2
import numpy as np

from driftline.errors import ConfigError, UndecodableImage

CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
                 ".webp": "image/webp"}
"""Image file name endings (lower case) and the content type of their bytes."""
IMAGE_SUFFIXES: frozenset[str] = frozenset(CONTENT_TYPES)
"""File name endings (case-insensitive) that a folder source picks up."""


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
