"""Frames → embedding events: decode, image quality, embed. No Kafka here.

The stream app calls ``FramePipeline.process`` on micro-batches of frames;
``driftline replay`` calls it on frames read from a recording. A frame that
cannot be turned into an embedding comes back as a ``PermanentError`` in its
slot of the result (so the caller dead-letters it with its original bytes),
and the rest of the batch goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from driftline.errors import PermanentError, UndecodableImage
from driftline.settings import EmbedderSettings
from processors.embedder import Embedder
from processors.image_decode import decode_image
from processors.image_quality import image_quality
from processors.top_scores import top_scores
from schemas.events import Embedding, Frame, FrameError


def frame_error(frame: Frame, exc: PermanentError) -> FrameError:
    """The marker the monitor gets for a frame that could not be embedded."""
    return FrameError(
        event_id=f"{frame.event_id}:err",
        stream_id=frame.stream_id,
        model_version=frame.model_version,
        ts=frame.ts,
        frame_id=frame.event_id,
        frame_index=frame.frame_index,
        reason=exc.reason,
    )


def _frame_bytes(frame: Frame, max_bytes: int) -> bytes:
    if frame.image is not None:
        return frame.image
    assert frame.uri is not None
    parsed = urlparse(frame.uri)
    if parsed.scheme not in ("", "file"):
        # No fetching over the network from inside the worker: a slow or hostile
        # URI would stall the partition for every camera that shares it.
        raise UndecodableImage(
            f"frame URI scheme {parsed.scheme!r} is not readable here (use file:// or bytes)",
            reason="unreadable_uri",
        )
    path = Path(parsed.path if parsed.scheme == "file" else frame.uri)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise UndecodableImage(f"{path} is {size} bytes (> {max_bytes})", reason="oversize")
        return path.read_bytes()
    except OSError as exc:
        raise UndecodableImage(f"cannot read {path}: {exc}", reason="unreadable_uri") from exc


class FramePipeline:
    """Decode + quality + embed, batched.

    Parameters
    ----------
    embedder : Embedder
        The ONNX backbone (``Embedder.load()`` for the packaged default).
    max_pixels : int
        Decompression-bomb limit per image.
    max_bytes : int
        Limit for images read from file URIs.
    """

    def __init__(
        self, embedder: Embedder, *, max_pixels: int = 40_000_000, max_bytes: int = 8 << 20
    ) -> None:
        self.embedder = embedder
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes

    @classmethod
    def from_settings(cls, settings: EmbedderSettings, max_bytes: int = 8 << 20) -> FramePipeline:
        embedder = Embedder.load(settings.model_path, settings.manifest_path, settings.threads)
        return cls(embedder, max_pixels=settings.max_image_pixels, max_bytes=max_bytes)

    def process(self, frames: Sequence[Frame]) -> list[Embedding | PermanentError]:
        """One result per frame, in order: an ``Embedding`` or the error that stopped it."""
        results: list[Embedding | PermanentError | None] = [None] * len(frames)
        images: list[np.ndarray] = []
        slots: list[int] = []
        qualities: list[dict[str, float]] = []
        for i, frame in enumerate(frames):
            try:
                data = _frame_bytes(frame, self.max_bytes)
                rgb = decode_image(data, max_pixels=self.max_pixels)
            except PermanentError as exc:
                results[i] = exc
                continue
            images.append(rgb)
            slots.append(i)
            qualities.append(image_quality(rgb, encoded_size=len(data)))
        if images:
            out = self.embedder.embed(images)
            for j, i in enumerate(slots):
                frame = frames[i]
                results[i] = Embedding(
                    event_id=f"{frame.event_id}:emb",
                    stream_id=frame.stream_id,
                    model_version=frame.model_version,
                    ts=frame.ts,
                    frame_id=frame.event_id,
                    frame_index=frame.frame_index,
                    vector=out.embeddings[j].astype(float).tolist(),
                    quality=qualities[j],
                    top_class=None if out.top_class is None else out.top_class[j],
                    confidence=None if out.confidence is None else float(out.confidence[j]),
                    scores=top_scores(out, j, self.embedder.class_names),
                    meta=frame.meta,
                )
        return [r for r in results if r is not None]
