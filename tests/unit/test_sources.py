"""What file producers share, on real files: a JSONL recording, JPEG encoding."""

from __future__ import annotations

import gzip
from pathlib import Path

import cv2
import numpy as np
import pytest

from driftline.errors import ConfigError
from producers.sources import encode_jpeg, jsonl_recording


def _img(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)


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
