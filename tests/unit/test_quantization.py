"""The int8 embedder: made once from the packaged model, verified, close to fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from driftline.errors import ConfigError
from processors.embedder import Embedder
from processors.quantization import calibration_images, int8_path

pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def int8_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("int8")


@pytest.mark.slow
def test_int8_embeddings_are_close_to_fp32_and_the_copy_is_verified(int8_dir: Path) -> None:
    fp32 = Embedder.load()
    int8 = Embedder.load(precision="int8", int8_dir=int8_dir)
    made = list(int8_dir.glob("*.onnx"))
    assert [p.name for p in made] == [int8_path(int8_dir, fp32.manifest.sha256).name]
    # Frames it was not calibrated on: other crops (flipped, smaller) of the photos.
    frames = [np.ascontiguousarray(im[::-1, ::-1][: im.shape[0] // 2])
              for im in list(calibration_images())[::6]]
    a, b = fp32.embed(frames), int8.embed(frames)
    cos = (a.embeddings * b.embeddings).sum(1) / (
        np.linalg.norm(a.embeddings, axis=1) * np.linalg.norm(b.embeddings, axis=1))
    assert cos.mean() >= 0.98, cos
    assert b.embeddings.shape == a.embeddings.shape and b.top_class is not None
    # Made once: a second load reads the copy (same bytes, no re-quantization).
    before = made[0].stat().st_mtime_ns
    Embedder.load(precision="int8", int8_dir=int8_dir)
    assert made[0].stat().st_mtime_ns == before
    # A damaged copy is refused, naming the setting.
    made[0].write_bytes(made[0].read_bytes()[:-10])
    with pytest.raises(ConfigError, match="DRIFTLINE_EMBEDDER__PRECISION"):
        Embedder.load(precision="int8", int8_dir=int8_dir)


def test_an_unknown_precision_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="DRIFTLINE_EMBEDDER__PRECISION"):
        Embedder.load(precision="fp8")
