"""Frames → embedding events: decode, image quality, embed. No Kafka here.

The stream app calls ``FramePipeline.process`` on micro-batches of frames;
``driftline replay`` calls it on frames read from a recording. A frame that
cannot be turned into an embedding comes back as a ``PermanentError`` in its
slot of the result (so the caller dead-letters it with its original bytes),
and the rest of the batch goes on.
"""

from __future__ import annotations

import os
import stat
import time
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


def _frame_bytes(frame: Frame, max_bytes: int, uri_root: Path | None) -> bytes:
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
    if uri_root is None:
        raise UndecodableImage(
            "frames by file URI are not read unless DRIFTLINE_EMBEDDER__URI_ROOT names the "
            "directory they live in", reason="unreadable_uri")
    path = Path(parsed.path if parsed.scheme == "file" else frame.uri)
    return read_under(path, uri_root, max_bytes)


def read_under(path: Path, root: Path, max_bytes: int) -> bytes:
    """A regular file under ``root``, at most ``max_bytes``; ``UndecodableImage`` otherwise.

    A frame's URI comes from whoever can write to the frames topic: it must
    not name ``/dev/zero`` or a FIFO (the embed agent would hang or fill
    memory), ``/proc/self/environ`` (secrets), or escape ``root`` through
    ``..`` or a symbolic link.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); (d / "a.jpg").write_bytes(b"x")
    1
    >>> read_under(d / "a.jpg", d, 10)
    b'x'
    >>> read_under(Path("/dev/zero"), d, 10)
    Traceback (most recent call last):
    ...
    driftline.errors.UndecodableImage: /dev/zero is not under the frame URI root ...
    """
    try:
        real = path.resolve()
        if not real.is_relative_to(root.resolve()):
            raise UndecodableImage(f"{path} is not under the frame URI root {root}",
                                   reason="unreadable_uri")
        # O_NONBLOCK: opening a FIFO must not wait for a writer.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UndecodableImage(f"{path} is not a regular file", reason="unreadable_uri")
            if st.st_size > max_bytes:
                raise UndecodableImage(f"{path} is {st.st_size} bytes (> {max_bytes})",
                                       reason="oversize")
            with os.fdopen(fd, "rb", closefd=False) as fh:
                data = fh.read(max_bytes + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        raise UndecodableImage(f"cannot read {path}: {exc.strerror or exc}",
                               reason="unreadable_uri") from exc
    if len(data) > max_bytes:
        raise UndecodableImage(f"{path} grew beyond {max_bytes} bytes", reason="oversize")
    return data


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
    uri_root : Path, optional
        Frames by file URI are read only from under this directory (regular
        files); None refuses them (``unreadable_uri``).
    """

    def __init__(
        self, embedder: Embedder, *, max_pixels: int = 40_000_000, max_bytes: int = 8 << 20,
        uri_root: Path | None = None,
    ) -> None:
        self.embedder = embedder
        self.uri_root = uri_root
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        # Seconds spent per stage in the last ``process`` call (the worker's
        # per-stage latency metrics read it; this module knows no Prometheus).
        self.timings: dict[str, float] = {}

    @classmethod
    def from_settings(cls, settings: EmbedderSettings, max_bytes: int = 8 << 20) -> FramePipeline:
        embedder = Embedder.load(settings.model_path, settings.manifest_path, settings.threads,
                                 settings.precision, settings.int8_dir)
        return cls(embedder, max_pixels=settings.max_image_pixels, max_bytes=max_bytes,
                   uri_root=settings.uri_root)

    def process(self, frames: Sequence[Frame]) -> list[Embedding | PermanentError]:
        """One result per frame, in order: an ``Embedding`` or the error that stopped it."""
        results: list[Embedding | PermanentError | None] = [None] * len(frames)
        images: list[np.ndarray] = []
        slots: list[int] = []
        qualities: list[dict[str, float]] = []
        clock = time.perf_counter
        spent = {"image_decode": 0.0, "quality": 0.0, "embed": 0.0}
        for i, frame in enumerate(frames):
            t0 = clock()
            try:
                data = _frame_bytes(frame, self.max_bytes, self.uri_root)
                rgb = decode_image(data, max_pixels=self.max_pixels)
            except PermanentError as exc:
                results[i] = exc
                continue
            finally:
                t1 = clock()
                spent["image_decode"] += t1 - t0
            images.append(rgb)
            slots.append(i)
            qualities.append(image_quality(rgb, encoded_size=len(data)))
            spent["quality"] += clock() - t1
        self.timings = spent
        if images:
            t0 = clock()
            out = self.embedder.embed(images)
            spent["embed"] = clock() - t0
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
