"""The JSON manifest that describes an ONNX backbone to the embedder.

An ONNX file alone does not say how its input must be prepared (size,
channel order, scaling) or which output is the embedding. The manifest does,
and it pins the file by sha256 so a swapped or half-copied model fails at
start-up instead of producing silently different embeddings.

Paths inside the manifest (``onnx_file``, ``class_names_file``) are relative
to the manifest's own folder.

Examples
--------
>>> m = load_manifest(PACKAGED_MANIFEST)
>>> m.input_name, m.input_size, m.embedding_dim
('input', (224, 224), 1280)
>>> m.mean, m.std
((127.0, 127.0, 127.0), (128.0, 128.0, 128.0))
>>> m.resolve(m.onnx_file).name
'efficientnet_lite0.onnx'
>>> load_manifest(PACKAGED_MANIFEST.with_name("nope.json"))
Traceback (most recent call last):
...
driftline.errors.ConfigError: DRIFTLINE_EMBEDDER__MANIFEST_PATH: ...
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from driftline.errors import ConfigError

MODELS_DIR = Path(__file__).resolve().parent / "models"
PACKAGED_MODEL = MODELS_DIR / "efficientnet_lite0.onnx"
PACKAGED_MANIFEST = MODELS_DIR / "efficientnet_lite0.json"

MODEL_SETTING = "DRIFTLINE_EMBEDDER__MODEL_PATH"
MANIFEST_SETTING = "DRIFTLINE_EMBEDDER__MANIFEST_PATH"


class ModelManifest(BaseModel):
    """How to feed an ONNX backbone and read its outputs.

    Preprocessing is: resize the RGB uint8 image to ``input_size``
    (height, width) with ``resize`` interpolation, reorder channels to
    ``channel_order``, then ``x = (x - mean) / std`` per channel on 0-255
    values, laid out as ``layout`` with a leading batch axis.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    onnx_file: str = Field(description="ONNX file, relative to the manifest's folder.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the ONNX file.")
    input_name: str
    input_size: tuple[int, int] = Field(description="(height, width) in pixels.")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    channel_order: Literal["RGB", "BGR"] = "RGB"
    resize: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    embedding_output: str
    logits_output: str | None = None
    embedding_dim: int = Field(ge=1)
    num_classes: int | None = Field(default=None, ge=1)
    class_names_file: str | None = None
    preprocessing_note: str | None = None
    license: str | None = None

    # Filled in by load_manifest: the folder relative paths are resolved against.
    base_dir: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> ModelManifest:
        if min(self.input_size) < 1:
            raise ValueError("input_size must be positive (height, width)")
        if any(s == 0 for s in self.std):
            raise ValueError("std must not contain zeros")
        if self.class_names_file is not None and self.logits_output is None:
            raise ValueError("class_names_file given but no logits_output")
        return self

    def resolve(self, relative: str) -> Path:
        """Return ``relative`` resolved against the manifest's folder."""
        p = Path(relative)
        if p.is_absolute() or self.base_dir is None:
            return p
        return self.base_dir / p


def load_manifest(path: Path | str) -> ModelManifest:
    """Read and validate a manifest; any problem is a ``ConfigError`` naming the setting.

    Parameters
    ----------
    path
        The manifest JSON file.

    Returns
    -------
    ModelManifest
        With ``base_dir`` set to the manifest's folder.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(MANIFEST_SETTING, f"manifest not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(MANIFEST_SETTING, f"cannot read manifest {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(MANIFEST_SETTING, f"manifest {path} is not a JSON object")
    try:
        return ModelManifest(**raw, base_dir=path.resolve().parent)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            MANIFEST_SETTING, f"invalid manifest {path}: {where}: {first['msg']}"
        ) from None
