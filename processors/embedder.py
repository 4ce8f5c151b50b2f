"""Frames in, embeddings (and, for classifiers, class scores) out, via onnxruntime.

The default backbone is EfficientNet-Lite0 trained on ImageNet-1k, shipped in
``processors/models/`` with a manifest that pins its sha256. Its two outputs
give a 1280-d embedding (the penultimate layer, global-average pooled) and
1000 ImageNet logits, so the same model is both the drift embedder and a real
deployed classifier (top class, confidence) for the simulated camera.

Examples
--------
>>> import numpy as np
>>> emb = Embedder.load()
>>> res = emb.embed([np.full((480, 640, 3), 128, np.uint8), np.zeros((50, 60, 3), np.uint8)])
>>> res.embeddings.shape, res.embeddings.dtype
((2, 1280), dtype('float32'))
>>> res.probs.shape, len(res.top_class), bool(0 < res.confidence[0] <= 1)
((2, 1000), 2, True)

Bring your own backbone
-----------------------
Any ONNX model with one image input and an embedding output works. Export it
(torch is needed only for this step, never by driftline), write a manifest
beside it, and point the two settings at them::

    # export_my_backbone.py  (run once, wherever torch is installed)
    import hashlib, json, torch, torchvision
    net = torchvision.models.resnet18(weights=None)
    net.load_state_dict(torch.load("my_finetuned_resnet18.pt"))
    net.eval()

    class Wrapper(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net
        def forward(self, x):
            feats = torch.nn.Sequential(*list(self.net.children())[:-1])(x).flatten(1)
            return feats, self.net.fc(feats)

    torch.onnx.export(Wrapper(net), torch.zeros(1, 3, 224, 224), "resnet18.onnx",
                      dynamo=False, opset_version=17, input_names=["images"],
                      output_names=["feats", "logits"],
                      dynamic_axes={"images": {0: "n"}, "feats": {0: "n"}, "logits": {0: "n"}})
    json.dump({
        "name": "my-resnet18", "onnx_file": "resnet18.onnx",
        "sha256": hashlib.sha256(open("resnet18.onnx", "rb").read()).hexdigest(),
        "input_name": "images", "input_size": [224, 224], "layout": "NCHW",
        "channel_order": "RGB", "resize": "bilinear",
        # torchvision normalisation, expressed on 0-255 values:
        "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375],
        "embedding_output": "feats", "embedding_dim": 512,
        "logits_output": "logits", "num_classes": 3,
        "class_names_file": "classes.txt",   # one name per line; optional
    }, open("resnet18.json", "w"), indent=2)

Then::

    export DRIFTLINE_EMBEDDER__MODEL_PATH=/models/resnet18.onnx
    export DRIFTLINE_EMBEDDER__MANIFEST_PATH=/models/resnet18.json

A model without a classification head simply omits ``logits_output``; the
embedder then returns embeddings only. If the file on disk does not match the
manifest's sha256 the embedder refuses to start (``ConfigError`` naming
``DRIFTLINE_EMBEDDER__MODEL_PATH``): re-export, or update the manifest.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import cv2
import numpy as np
import onnxruntime as ort
from PIL import Image

from driftline.errors import ConfigError
from processors.model_manifest import (
    MANIFEST_SETTING,
    MODEL_SETTING,
    PACKAGED_MANIFEST,
    ModelManifest,
    load_manifest,
)
from processors.quantization import PRECISION_SETTING, ensure_int8

T = TypeVar("T")

_PIL_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "nearest": Image.Resampling.NEAREST}


@dataclass(frozen=True)
class EmbedResult:
    """One batch's outputs, row ``i`` for input image ``i``.

    ``embeddings`` are the raw backbone features (not L2-normalised). The
    classifier fields are ``None`` when the model has no logits output;
    ``top_class`` is ``None`` when it has logits but no class-name list.
    """

    embeddings: np.ndarray
    logits: np.ndarray | None = None
    probs: np.ndarray | None = None
    top_index: np.ndarray | None = None
    top_class: list[str] | None = None
    confidence: np.ndarray | None = None
    entropy: np.ndarray | None = None


class Embedder:
    """An onnxruntime session plus the preprocessing its manifest asks for.

    Build it with :meth:`Embedder.load` (or :meth:`from_settings`); the
    constructor expects an already-verified session.
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        manifest: ModelManifest,
        class_names: list[str] | None,
        threads: int,
    ) -> None:
        self.session = session
        self.manifest = manifest
        self.class_names = class_names
        self.threads = threads
        h, w = manifest.input_size
        self.input_hw = (h, w)
        self._mean = np.asarray(manifest.mean, np.float32)
        self._inv_std = (1.0 / np.asarray(manifest.std, np.float64)).astype(np.float32)
        self._outputs = [manifest.embedding_output] + (
            [manifest.logits_output] if manifest.logits_output else []
        )

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        model_path: Path | str | None = None,
        manifest_path: Path | str | None = None,
        threads: int = 1,
        precision: str = "fp32",
        int8_dir: Path | str = Path(".driftline/models"),
    ) -> Embedder:
        """Load and verify a backbone; defaults to the packaged EfficientNet-Lite0.

        Parameters
        ----------
        model_path
            The ONNX file; ``None`` = the one the manifest names.
        manifest_path
            The manifest; ``None`` = ``model_path`` with a ``.json`` suffix, or
            the packaged manifest when ``model_path`` is ``None`` too.
        threads
            onnxruntime intra-op threads (one session; inter-op is 1).
        precision
            ``"fp32"``, or ``"int8"``: the verified fp32 model's static int8
            quantization, made once into ``int8_dir`` (``processors.quantization``).

        Raises
        ------
        ConfigError
            Missing/unreadable manifest (``DRIFTLINE_EMBEDDER__MANIFEST_PATH``);
            missing model file, sha256 mismatch, or a model onnxruntime cannot
            load or whose inputs/outputs disagree with the manifest
            (``DRIFTLINE_EMBEDDER__MODEL_PATH``).
        """
        if threads < 1:
            raise ConfigError("DRIFTLINE_EMBEDDER__THREADS", f"must be >= 1 (got {threads})")
        if manifest_path is None:
            manifest_path = (
                PACKAGED_MANIFEST if model_path is None else Path(model_path).with_suffix(".json")
            )
        manifest = load_manifest(manifest_path)
        path = Path(model_path) if model_path is not None else manifest.resolve(manifest.onnx_file)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(MODEL_SETTING, f"cannot read ONNX model {path}: {exc}") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != manifest.sha256:
            # A swapped, re-exported or half-copied file would give embeddings
            # that silently disagree with every stored reference profile.
            raise ConfigError(
                MODEL_SETTING,
                f"sha256 of {path} is {digest}, manifest {manifest_path} expects "
                f"{manifest.sha256} (file corrupt, or manifest out of date)",
            )
        if precision == "int8":
            fp32 = cls(_session(data, threads, path), manifest, None, threads)
            data = ensure_int8(path, digest, Path(int8_dir), manifest.input_name,
                               lambda images: fp32.preprocess(images).copy())
        elif precision != "fp32":
            raise ConfigError(PRECISION_SETTING, f"must be fp32 or int8 (got {precision!r})")
        session = _session(data, threads, path)
        _check_io(session, manifest)
        class_names = None
        if manifest.class_names_file is not None:
            names_path = manifest.resolve(manifest.class_names_file)
            try:
                class_names = names_path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ConfigError(
                    MANIFEST_SETTING, f"cannot read class names {names_path}: {exc}"
                ) from None
            class_names = [n.strip() for n in class_names if n.strip()]
            if manifest.num_classes is not None and len(class_names) != manifest.num_classes:
                raise ConfigError(
                    MANIFEST_SETTING,
                    f"{names_path} has {len(class_names)} names, "
                    f"manifest says num_classes={manifest.num_classes}",
                )
        return cls(session, manifest, class_names, threads)

    @classmethod
    def from_settings(cls, settings: object) -> Embedder:
        """Build from a ``driftline.settings.EmbedderSettings`` (or full ``Settings``)."""
        emb = getattr(settings, "embedder", settings)
        return cls.load(emb.model_path, emb.manifest_path, emb.threads,  # type: ignore[attr-defined]
                        getattr(emb, "precision", "fp32"),
                        getattr(emb, "int8_dir", Path(".driftline/models")))

    @property
    def embedding_dim(self) -> int:
        return self.manifest.embedding_dim

    @property
    def has_logits(self) -> bool:
        return self.manifest.logits_output is not None

    # ------------------------------------------------------------ preprocessing
    def resize(self, image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Resize one RGB uint8 image (H, W, 3) to the model's input size (into ``out``).

        For ``bilinear`` (the default): an exact integer box reduction first
        (anti-aliasing), then bilinear for the last factor below 2. Plain
        bilinear on a 3x downscale would alias; Pillow's anti-aliased
        bilinear gives nearly the same pixels but costs 3.2 ms on a VGA frame
        against 0.26 ms for OpenCV's integer-ratio area path plus bilinear
        (Pillow's ``reduce`` + bilinear gives identical pixels in 0.7 ms).
        """
        image = _as_rgb(image)
        h, w = self.input_hw
        ih, iw = image.shape[:2]
        if (ih, iw) == (h, w):
            if out is None:
                return image
            out[...] = image
            return out
        mode = self.manifest.resize
        if mode != "bilinear":
            pil = Image.fromarray(image).resize((w, h), _PIL_RESAMPLE[mode], reducing_gap=3.0)
            if out is None:
                return np.asarray(pil)
            out[...] = np.asarray(pil)
            return out
        k = int(min(ih / h, iw / w))
        if k >= 2:
            # Crop to whole k x k blocks (< k pixels lost at the edges): OpenCV
            # takes its fast box-filter path only for exact integer ratios.
            nh, nw = ih // k, iw // k
            image = cv2.resize(image[: nh * k, : nw * k], (nw, nh), interpolation=cv2.INTER_AREA)
        if out is None:
            return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(image, (w, h), dst=out, interpolation=cv2.INTER_LINEAR)

    def preprocess(self, images: Sequence[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        """Turn RGB uint8 images into the model's input tensor (float32, batch first).

        ``out``, if given, is a float32 array of the right shape to write into.
        """
        h, w = self.input_hw
        n = len(images)
        nchw = self.manifest.layout == "NCHW"
        shape = (n, 3, h, w) if nchw else (n, h, w, 3)
        if out is None:
            out = np.empty(shape, np.float32)
        elif out.shape != shape or out.dtype != np.float32:
            raise ValueError(f"out must be float32 {shape}, got {out.dtype} {out.shape}")
        batch = _scratch("u8", (n, h, w, 3), np.uint8)
        for i, img in enumerate(images):
            self.resize(img, out=batch[i])
        src_batch = batch[..., ::-1] if self.manifest.channel_order == "BGR" else batch
        if nchw:
            # One pass: the transpose is a view, subtract writes the float copy.
            np.subtract(src_batch.transpose(0, 3, 1, 2), self._mean[:, None, None], out=out)
            out *= self._inv_std[:, None, None]
        else:
            np.subtract(src_batch, self._mean, out=out)
            out *= self._inv_std
        return out

    # ---------------------------------------------------------------- inference
    def run(self, tensor: np.ndarray) -> EmbedResult:
        """Run the model on an already preprocessed batch (see :meth:`preprocess`)."""
        if len(tensor) == 0:
            return self._empty()
        try:
            outs = self.session.run(self._outputs, {self.manifest.input_name: tensor})
        except Exception as exc:  # onnxruntime's own error types; shapes were ours
            raise ConfigError(MODEL_SETTING, f"model failed to run: {exc}") from None
        emb = np.asarray(outs[0], np.float32).reshape(len(tensor), -1)
        if not self.has_logits:
            return EmbedResult(embeddings=emb)
        logits = np.asarray(outs[1], np.float32).reshape(len(tensor), -1)
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        probs = e / e.sum(axis=1, keepdims=True)
        top = probs.argmax(axis=1)
        conf = probs[np.arange(len(top)), top]
        ent = -(probs * np.log(np.clip(probs, 1e-30, None))).sum(axis=1).astype(np.float32)
        names = None
        if self.class_names is not None:
            names = [
                self.class_names[i] if i < len(self.class_names) else str(i) for i in top
            ]
        return EmbedResult(emb, logits, probs, top, names, conf, ent)

    def embed(self, images: Sequence[np.ndarray]) -> EmbedResult:
        """Embed RGB uint8 images (H, W, 3; grey H x W and RGBA accepted) as one batch."""
        h, w = self.input_hw
        nchw = self.manifest.layout == "NCHW"
        shape = (len(images), 3, h, w) if nchw else (len(images), h, w, 3)
        # The input tensor lives only for this call: a reused per-thread buffer
        # avoids page-faulting ~600 KB per image back in (see _scratch).
        return self.run(self.preprocess(images, out=_scratch("in", shape, np.float32)))

    def _empty(self) -> EmbedResult:
        emb = np.zeros((0, self.embedding_dim), np.float32)
        if not self.has_logits:
            return EmbedResult(emb)
        k = self.manifest.num_classes or 0
        z = np.zeros((0, k), np.float32)
        names: list[str] | None = [] if self.class_names is not None else None
        e0 = np.zeros(0, np.float32)
        return EmbedResult(emb, z, z, np.zeros(0, np.int64), names, e0, e0)


_SCRATCH = threading.local()


def _session(data: bytes, threads: int, path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        # Load from the bytes we hashed, not the path: the file could change
        # between the check and the load.
        return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ConfigError(MODEL_SETTING, f"onnxruntime cannot load {path}: {exc}") from None


def _scratch(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A per-thread reusable buffer (never returned to callers).

    Fresh arrays of more than ~128 KB are mmap-ed and unmapped again on free,
    so each call would page-fault them back in; on the sandboxed benchmark
    machine that cost more system time than the arithmetic.
    """
    bufs = _SCRATCH.__dict__
    buf = bufs.get(name)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = bufs[name] = np.empty(shape, dtype)
    return buf


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    raise ValueError(f"expected an H x W x 3 RGB image, got shape {image.shape}")


def _check_io(session: ort.InferenceSession, m: ModelManifest) -> None:
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    if m.input_name not in inputs:
        raise ConfigError(
            MODEL_SETTING, f"model has no input {m.input_name!r} (it has {sorted(inputs)})"
        )
    for name in filter(None, [m.embedding_output, m.logits_output]):
        if name not in outputs:
            raise ConfigError(
                MODEL_SETTING, f"model has no output {name!r} (it has {sorted(outputs)})"
            )
    shape = outputs[m.embedding_output].shape
    if isinstance(shape[-1], int) and shape[-1] != m.embedding_dim:
        raise ConfigError(
            MANIFEST_SETTING,
            f"embedding_dim={m.embedding_dim} but output {m.embedding_output!r} "
            f"has {shape[-1]}",
        )


class MicroBatcher(Generic[T]):
    """Group items into batches of up to ``batch_size``, or whatever came within ``max_wait``.

    Pure bookkeeping, no threads and no Kafka: the caller adds items as they
    arrive and asks for a batch; a stream app calls :meth:`poll` from a timer
    as well, so a lone frame on a quiet stream is not held forever.

    Examples
    --------
    >>> mb = MicroBatcher(batch_size=3, max_wait=0.02)
    >>> mb.add("a", now=0.0), mb.add("b", now=0.001)
    (None, None)
    >>> mb.add("c", now=0.002)          # full: returned at once
    ['a', 'b', 'c']
    >>> mb.add("d", now=1.0)
    >>> mb.poll(now=1.01), mb.time_until_due(now=1.01)
    (None, 0.01)
    >>> mb.poll(now=1.02)               # waited max_wait: flush what is there
    ['d']
    >>> mb.flush(), len(mb)
    ([], 0)
    """

    def __init__(
        self, batch_size: int, max_wait: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if max_wait < 0:
            raise ValueError("max_wait must be >= 0")
        self.batch_size = batch_size
        self.max_wait = max_wait
        self._clock = clock
        self._items: list[T] = []
        self._first_at: float | None = None

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T, now: float | None = None) -> list[T] | None:
        """Queue ``item``; return a batch if it is now full or the oldest item is due."""
        now = self._clock() if now is None else now
        if not self._items:
            self._first_at = now
        self._items.append(item)
        if len(self._items) >= self.batch_size:
            return self.flush()
        return self.poll(now)

    def time_until_due(self, now: float | None = None) -> float | None:
        """Seconds until the pending batch must go (0 = now); ``None`` when empty."""
        if self._first_at is None:
            return None
        now = self._clock() if now is None else now
        return round(max(0.0, self._first_at + self.max_wait - now), 9)

    def poll(self, now: float | None = None) -> list[T] | None:
        """Return the pending batch if its oldest item has waited ``max_wait``."""
        due = self.time_until_due(now)
        if due is not None and due <= 0:
            return self.flush()
        return None

    def flush(self) -> list[T]:
        """Return (and clear) whatever is pending, possibly nothing."""
        items, self._items, self._first_at = self._items, [], None
        return items
