"""The int8 embedder: onnxruntime static quantization of the packaged fp32 model.

``DRIFTLINE_EMBEDDER__PRECISION=int8`` makes the embedder run an int8 copy of
its backbone. The copy is made here, once, with no network: onnxruntime's
``quantize_static`` (QDQ format, per-channel int8 weights, uint8 activations)
calibrated on crops of the real photos inside the scikit-image and
scikit-learn wheels (the simulated camera's scenes; the ``sim`` extra), then
written to ``DRIFTLINE_EMBEDDER__INT8_DIR`` with a ``.sha256`` beside it
(checked on every load, like the fp32 model's manifest digest). The name of
the copy carries the fp32 model's digest, so a new backbone gets a new copy.

Measured by ``bench/bench_embed.py --int8`` (frames/s against fp32, cosine of
the embeddings to fp32, detections on a simulated drift); see bench/README.md.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from driftline.errors import ConfigError

log = logging.getLogger(__name__)

PRECISION_SETTING = "DRIFTLINE_EMBEDDER__PRECISION"

# Real photos that ship inside the `sim` extra's wheels (never downloaded).
CALIBRATION_PHOTOS: tuple[tuple[str, str], ...] = (
    ("skimage", "data/astronaut.png"), ("skimage", "data/chelsea.png"),
    ("skimage", "data/coffee.png"), ("skimage", "data/rocket.jpg"),
    ("skimage", "data/camera.png"), ("skimage", "data/hubble_deep_field.jpg"),
    ("skimage", "data/retina.jpg"), ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
)
CROPS_PER_PHOTO = 4


def int8_path(int8_dir: Path, fp32_sha256: str) -> Path:
    """Where the int8 copy of the model with this fp32 digest lives.

    >>> int8_path(Path("/d"), "4a0f2693c0e5c7076d28e5624bdae86930ea3225").name
    'embedder-4a0f2693c0e5-int8.onnx'
    """
    return Path(int8_dir) / f"embedder-{fp32_sha256[:12]}-int8.onnx"


def _package_file(package: str, relative: str) -> Path | None:
    """A data file inside an installed package (``None`` if the package or file is absent)."""
    try:
        path = Path(str(importlib.resources.files(package).joinpath(relative)))
    except (ImportError, TypeError):
        return None
    return path if path.is_file() else None


def calibration_images() -> Iterator[np.ndarray]:
    """RGB crops (3/4 of each side, at four offsets) of the packaged photos."""
    for package, relative in CALIBRATION_PHOTOS:
        path = _package_file(package, relative)
        if path is None:
            continue
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        for k in range(CROPS_PER_PHOTO):
            y, x = (k * 37) % max(1, h // 4), (k * 53) % max(1, w // 4)
            yield np.ascontiguousarray(rgb[y:y + h * 3 // 4, x:x + w * 3 // 4])


def quantize(fp32: Path, out: Path, tensors: np.ndarray, input_name: str) -> None:
    """Write the static int8 (QDQ, per-channel) quantization of ``fp32`` to ``out``.

    ``tensors``: preprocessed calibration inputs, ``(n, C, H, W)`` float32.
    """
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:  # onnxruntime.quantization needs the `onnx` package
        raise ConfigError(PRECISION_SETTING, f"int8 needs the onnx package ({exc}): "
                          "pip install 'driftline[int8]'") from None

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{input_name: tensors[i:i + 1]} for i in range(len(tensors))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory(prefix="driftline-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)


def ensure_int8(fp32: Path, fp32_sha256: str, int8_dir: Path, input_name: str,
                preprocess: Callable[[list[np.ndarray]], np.ndarray]) -> bytes:
    """The int8 model's bytes: made once into ``int8_dir``, verified by its ``.sha256``.

    Raises
    ------
    ConfigError
        (naming ``DRIFTLINE_EMBEDDER__PRECISION``) no calibration photos (the
        ``sim`` extra), no ``onnx`` package, an unwritable directory, or a copy
        whose digest does not match its ``.sha256`` (delete it to remake it).
    """
    path = int8_path(int8_dir, fp32_sha256)
    digest_file = path.with_suffix(".onnx.sha256")
    if not path.exists():
        images = list(calibration_images())
        if not images:
            raise ConfigError(PRECISION_SETTING, "int8 calibration needs the photos of the "
                              "`sim` extra: pip install 'driftline[sim]'")
        log.info("quantizing %s to int8 on %d calibration crops (once) -> %s",
                 fp32.name, len(images), path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            quantize(fp32, tmp, np.ascontiguousarray(preprocess(images)), input_name)
            digest_file.write_text(hashlib.sha256(tmp.read_bytes()).hexdigest() + "\n")
            tmp.replace(path)  # atomic: a concurrent worker never loads half a file
        except OSError as exc:
            raise ConfigError(PRECISION_SETTING, f"cannot write the int8 model to "
                              f"{path.parent}: {exc}") from None
    data = path.read_bytes()
    try:
        expected = digest_file.read_text().strip()
    except OSError:
        expected = ""
    if hashlib.sha256(data).hexdigest() != expected:
        raise ConfigError(PRECISION_SETTING, f"{path} does not match {digest_file.name} "
                          "(corrupt or half-written): delete both to quantize again")
    return data
