"""``driftline publish`` for frame sources: a camera, a video file or an image folder into Kafka.

The loop: read frames (``producers.camera_source.Capture`` for URLs, devices
and video files; ``producers.folder_follow.folder_files`` for folders),
keep one per ``1/fps`` seconds of the source's time
(``TimeSampler``), optionally resize, then publish per kept frame:

- by default a ``Frame`` (JPEG at ``jpeg_quality``; a folder's files pass
  through byte for byte unless resized) to ``<prefix>.frames``;
- with a ``predictor`` (``--predictions``), also the deployed model's
  ``Prediction`` (top class, confidence, top scores) of the same frame;
- with an ``edge`` model (``--edge``), *only* a ``Prediction`` carrying the
  frame's embedding (``Prediction.embedding``, rounded to ``edge_digits``
  significant digits) and the model's top class: no frame leaves the box.

``CameraStatus`` events (``online`` / ``reconnecting`` / ``offline``) go to
``<prefix>.predictions``, keyed by stream. Everything passes through a
bounded ``Outbox`` (a broker outage drops the oldest events, counted).
A progress line is reported every ``progress_s`` seconds; setting ``stop``
(Ctrl-C) ends the loop between frames, sends ``offline`` and flushes.

Timestamps: a live camera's frames are stamped when read; a video's with
the run's start plus the frame's position in the file; a folder's files
with their modification time. (The monitor measures a stream's event rate
from ``ts``.)
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from driftline.errors import ConfigError, InvalidEvent, PermanentError
from driftline.settings import Topics
from processors.embedder import Embedder
from processors.image_decode import decode_image
from processors.top_scores import top_scores
from producers.camera_source import Backoff, Capture, SourceSpec, Status, TimeSampler
from producers.folder_follow import Order, folder_files
from producers.outbox import Outbox
from producers.sources import CONTENT_TYPES, encode_jpeg
from schemas.events import CameraStatus, Frame, Prediction, utcnow
from schemas.wire import encode


@dataclass(frozen=True)
class CameraOptions:
    """How to publish one frame source (the ``driftline publish`` options)."""

    stream_id: str
    model_version: str = "unknown"
    fps: float | None = None
    resize: tuple[int, int | None] | None = None  # (width, height); None height: keep aspect
    jpeg_quality: int = 90
    order: Order = "name"
    follow: bool = False
    limit: int | None = None
    edge_digits: int = 4
    progress_s: float = 5.0
    backoff: Backoff = field(default_factory=Backoff)
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError("jpeg-quality", f"must be in 1..100, got {self.jpeg_quality}")
        if self.limit is not None and self.limit < 0:
            raise ConfigError("limit", f"must be >= 0, got {self.limit}")
        if not 1 <= self.edge_digits <= 17:
            raise ConfigError("edge-digits", f"must be in 1..17, got {self.edge_digits}")
        if self.resize is not None and (self.resize[0] < 8 or (self.resize[1] or 8) < 8):
            raise ConfigError("resize", f"at least 8 pixels a side, got {self.resize}")


@dataclass
class CameraCounts:
    """What a run did so far; ``line()`` is the progress line."""

    read: int = 0  # frames read from the source
    kept: int = 0  # frames kept by the sampler (and published)
    events: dict[str, int] = field(default_factory=dict)  # data events put, by topic
    statuses: dict[str, int] = field(default_factory=dict)  # status events, by status
    rejected: int = 0  # events refused (oversize) or frames that could not be decoded
    started: float = field(default_factory=time.monotonic)

    def line(self, box: Outbox) -> str:
        """``read 250 frames, kept 50 (5.0/s), sent 98, dropped 0, pending 2, 18.1 KB/frame``."""
        elapsed = max(1e-9, time.monotonic() - self.started)
        per_frame = box.bytes_put / self.kept / 1024 if self.kept else 0.0
        text = (f"read {self.read} frames, kept {self.kept} ({self.kept / elapsed:.1f}/s), "
                f"sent {box.pub.delivered}, dropped {box.dropped + box.pub.failed}, "
                f"pending {box.pending}, {per_frame:.1f} KB/frame")
        if self.rejected:
            text += f", rejected {self.rejected}"
        if self.statuses:
            text += ", camera status " + ", ".join(f"{k} {v}"
                                                   for k, v in sorted(self.statuses.items()))
        return text

    def summary(self, source: str) -> str:
        """``published 12 events from SRC (t.frames 12)``: the data events, by topic."""
        total = sum(self.events.values())
        by_topic = ", ".join(f"{t} {n}" for t, n in sorted(self.events.items()))
        return f"published {total} events from {source}" + (f" ({by_topic})" if total else "")


@dataclass
class _Shot:
    """A kept frame before it is published."""

    index: int
    ts: datetime
    name: str
    rgb: Callable[[], np.ndarray]
    data: bytes | None = None  # the source's own encoded bytes (a folder's file)
    content_type: str = "image/jpeg"


def resize_rgb(rgb: np.ndarray, size: tuple[int, int | None]) -> np.ndarray:
    """``rgb`` resized to ``(width, height)`` (a None height keeps the aspect ratio).

    >>> resize_rgb(np.zeros((240, 320, 3), np.uint8), (160, None)).shape
    (120, 160, 3)
    """
    w, h = size
    if h is None:
        h = max(1, round(rgb.shape[0] * w / rgb.shape[1]))
    interp = cv2.INTER_AREA if w < rgb.shape[1] else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(rgb, (w, h), interpolation=interp))


def edge_vector(values: np.ndarray, digits: int) -> list[float]:
    """An embedding as the wire carries it: each value to ``digits`` significant digits.

    JSON spells every float out: 1,280 full-precision values are ~25 KB, four
    digits ~9 KB, with cosine distances unchanged to 1e-4.

    >>> edge_vector(np.array([0.123456789, 2.0, 1e-7]), 3)
    [0.123, 2.0, 1e-07]
    """
    return [float(f"{float(v):.{digits}g}") for v in values]


class CameraPublisher:
    """Publishes one frame source; see the module docstring.

    Parameters
    ----------
    box : Outbox
        Where events go (bounded; over the caller's ``Publisher``).
    topics : Topics
        ``frames`` and ``predictions`` are used.
    options : CameraOptions
    predictor : Embedder, optional
        The deployed model for ``--predictions`` (frames and predictions).
    edge : Embedder, optional
        The model for ``--edge`` (predictions with embeddings only); it must
        have a logits output (a ``Prediction`` names a top class).
    stop : threading.Event
        Set to end the run (Ctrl-C).
    progress : callable
        Receives the progress line every ``options.progress_s`` seconds.
    """

    def __init__(self, box: Outbox, topics: Topics, options: CameraOptions, *,
                 predictor: Embedder | None = None, edge: Embedder | None = None,
                 stop: threading.Event | None = None,
                 progress: Callable[[str], object] | None = None) -> None:
        if edge is not None and not edge.has_logits:
            raise ConfigError("edge", "--edge needs a model with a logits output: an edge "
                              "Prediction names the model's top class")
        self.box = box
        self.topics = topics
        self.opt = options
        self.predictor = edge or predictor
        self.edge = edge is not None
        self.stop = stop or threading.Event()
        self.progress = progress or (lambda _line: None)
        self.counts = CameraCounts()
        self._run = uuid.uuid4().hex[:8]  # event ids stay unique when a source is published twice
        self._statuses = 0

    # -- events ------------------------------------------------------------------------
    def status(self, status: Status, detail: str, attempt: int, gap_s: float | None) -> None:
        """Publish a ``CameraStatus`` (the capture's ``on_status``)."""
        self._statuses += 1
        event = CameraStatus(
            event_id=f"{self.opt.stream_id}-{self._run}-s{self._statuses:06d}",
            stream_id=self.opt.stream_id, model_version=self.opt.model_version,
            status=status, detail=detail[:500], attempt=attempt,
            gap_s=None if gap_s is None else round(gap_s, 3), frames_read=self.counts.read)
        self.counts.statuses[status] = self.counts.statuses.get(status, 0) + 1
        self.box.put(self.topics.predictions, event.stream_id.encode(), encode(event))

    def _put(self, topic: str, event: Frame | Prediction) -> None:
        try:
            self.box.put(topic, event.stream_id.encode(), encode(event))
        except InvalidEvent:
            self.counts.rejected += 1
            return
        self.counts.events[topic] = self.counts.events.get(topic, 0) + 1

    def _publish(self, shot: _Shot) -> None:
        opt = self.opt
        base = f"{opt.stream_id}-{self._run}-f{shot.index:08d}"
        rgb: np.ndarray | None = None
        if opt.resize is not None or shot.data is None or self.predictor is not None:
            rgb = shot.rgb()
            if opt.resize is not None:
                rgb = resize_rgb(rgb, opt.resize)
        if not self.edge:
            if opt.resize is None and shot.data is not None:
                data, ctype = shot.data, shot.content_type
            else:
                assert rgb is not None
                data, ctype = encode_jpeg(rgb, opt.jpeg_quality), "image/jpeg"
            self._put(self.topics.frames, Frame(
                event_id=base, stream_id=opt.stream_id, model_version=opt.model_version,
                ts=shot.ts, image=data, content_type=ctype, frame_index=shot.index,
                meta={"source": shot.name}))
        if self.predictor is not None:
            assert rgb is not None
            out = self.predictor.embed([rgb])
            if out.top_class is None or out.confidence is None:
                raise ConfigError("predictions", "the model gives no class names: a "
                                  "Prediction needs its top class (manifest class_names_file)")
            self._put(self.topics.predictions, Prediction(
                event_id=f"{base}-p", stream_id=opt.stream_id, model_version=opt.model_version,
                ts=shot.ts, frame_id=None if self.edge else base, frame_index=shot.index,
                top_class=out.top_class[0],
                confidence=float(np.clip(out.confidence[0], 0.0, 1.0)),
                scores=top_scores(out, 0, self.predictor.class_names),
                embedding=(edge_vector(out.embeddings[0], opt.edge_digits) if self.edge
                           else None)))

    # -- sources -----------------------------------------------------------------------
    def _video_shots(self, spec: SourceSpec) -> Generator[_Shot, None, None]:
        capture = Capture(spec, backoff=self.opt.backoff, on_status=self.status,
                          stop=self.stop, timeout_s=self.opt.timeout_s)
        t0 = utcnow()
        name = Path(spec.target).name if spec.kind == "video" else spec.shown
        sampler = TimeSampler(self.opt.fps)
        # closing(): when this generator is closed early, the capture closes at once
        # (its ``offline`` status sent, the camera released) before the outbox drains.
        with closing(capture.frames()) as frames:
            for grabbed in frames:
                self.counts.read += 1
                if not sampler.due(grabbed.t):
                    continue
                ts = utcnow() if spec.live else t0 + timedelta(seconds=grabbed.t)
                yield _Shot(grabbed.index, ts, name, grabbed.rgb)

    def _folder_shots(self, spec: SourceSpec) -> Generator[_Shot, None, None]:
        self.status("online", spec.shown, 0, None)
        sampler = TimeSampler(self.opt.fps)
        why = "stopped"
        try:
            for i, f in enumerate(folder_files(spec.target, self.opt.order,
                                               follow=self.opt.follow, stop=self.stop)):
                self.counts.read += 1
                if not sampler.due(f.mtime):
                    continue
                yield _Shot(i, datetime.fromtimestamp(f.mtime, UTC), f.name,
                            partial(decode_image, f.data), f.data,
                            CONTENT_TYPES[Path(f.name).suffix.lower()])
            else:
                why = "end of folder"
        finally:
            self.status("offline", why, 0, None)

    def run(self, spec: SourceSpec) -> CameraCounts:
        """Publish ``spec`` until its end, ``limit`` or ``stop``; the caller drains the outbox."""
        if spec.kind == "jsonl":
            raise ConfigError("source", f"{spec.shown} is a recording: its events are not frames")
        shots = self._folder_shots(spec) if spec.kind == "folder" else self._video_shots(spec)
        pace = 1.0 / self.opt.fps if self.opt.fps and not spec.live and not self.opt.follow \
            else 0.0
        next_at = next_line = time.monotonic()
        try:
            for shot in shots:
                if self.opt.limit is not None and self.counts.kept >= self.opt.limit:
                    break
                if pace:  # a file played at the sampled rate, as the camera would send it
                    self.stop.wait(max(0.0, next_at - time.monotonic()))
                    next_at = max(next_at, time.monotonic() - pace) + pace
                if self.stop.is_set():
                    break
                try:
                    self._publish(shot)
                except PermanentError:  # a file or a frame that does not decode
                    self.counts.rejected += 1
                    continue
                self.counts.kept += 1
                self.box.pump()
                if time.monotonic() >= next_line:
                    next_line = time.monotonic() + self.opt.progress_s
                    self.progress(self.counts.line(self.box))
        finally:
            shots.close()  # the source's ``offline`` goes out before the caller drains
        return self.counts
