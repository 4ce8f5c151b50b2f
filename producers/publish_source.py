"""``driftline publish``: an image folder, a video file or a JSONL recording into Kafka.

- an image folder: each JPEG/PNG/WebP file becomes a ``Frame`` carrying the
  file's bytes unchanged (:func:`producers.sources.image_folder`, by name);
- a video file: each frame (subsampled to ``fps`` if given) is JPEG-encoded
  into a ``Frame`` (:func:`producers.sources.video_file`);
- a JSONL recording (``.jsonl``, ``.ndjson``, ``.jsonl.gz``; what ``simulate
  --out`` writes): each line is published as it is, unchanged, to the topic of
  its kind (frames, predictions, labels, embeddings), keyed by its stream; a
  line that is not an input event goes to the dead-letter topic with its
  original bytes and the reason.

Frames go to ``<prefix>.frames`` keyed by ``stream_id``. With ``fps`` set the
events are paced in real time (a camera's rate); without it they go as fast
as the broker takes them.

Examples
--------
>>> source_kind("recording.jsonl.gz"), source_kind("clip.avi")
('jsonl', 'video')
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from driftline.errors import ConfigError, InvalidEvent
from driftline.settings import Topics
from producers.publisher import Publisher, event_key
from producers.sources import encode_jpeg, image_folder, jsonl_recording, video_file
from schemas.events import DeadLetter, Embedding, Frame, Label, Prediction
from schemas.wire import decode_event

SourceKind = Literal["folder", "video", "jsonl"]

CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
                 ".webp": "image/webp"}
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
STAGE = "publish"


@dataclass
class PublishCounts:
    """What one ``publish_source`` run did."""

    published: Counter[str] = field(default_factory=Counter)  # by topic
    rejected: Counter[str] = field(default_factory=Counter)  # by reason (dead-lettered/refused)
    skipped: int = 0  # recording events of other streams (``stream_id`` given)

    def summary(self, source: str | Path) -> str:
        """One line: ``published 12 events from DIR (t.frames 12); ...``."""
        total = sum(self.published.values())
        by_topic = ", ".join(f"{t} {n}" for t, n in sorted(self.published.items()))
        line = f"published {total} events from {source}" + (f" ({by_topic})" if total else "")
        if self.rejected:
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.rejected.items()))
            line += f"; rejected {sum(self.rejected.values())} ({reasons})"
        if self.skipped:
            line += f"; skipped {self.skipped} of other streams"
        return line


def source_kind(source: str | Path) -> SourceKind:
    """``folder`` for a directory, ``jsonl`` for a recording, else ``video``."""
    path = Path(source)
    if path.is_dir():
        return "folder"
    if path.name.lower().endswith(JSONL_SUFFIXES):
        return "jsonl"
    return "video"


def source_frames(
    source: str | Path,
    *,
    stream_id: str,
    model_version: str = "unknown",
    fps: float | None = None,
    jpeg_quality: int = 90,
) -> Iterator[Frame]:
    """``Frame`` events of an image folder or a video file, in order.

    ``frame_index`` is the file's position in the folder (by name) or the
    frame's index in the video; ``meta["source"]`` names the file.
    """
    path = Path(source)
    run = uuid.uuid4().hex[:8]  # event ids stay unique when a source is published twice

    def frame(index: int, image: bytes, content_type: str, name: str) -> Frame:
        return Frame(event_id=f"{stream_id}-{run}-f{index:08d}", stream_id=stream_id,
                     model_version=model_version, image=image, content_type=content_type,
                     frame_index=index, meta={"source": name})

    kind = source_kind(path)
    if kind == "folder":
        for i, (name, data) in enumerate(image_folder(path)):
            yield frame(i, data, CONTENT_TYPES[Path(name).suffix.lower()], name)
    elif kind == "video":
        for index, rgb in video_file(path, fps):
            yield frame(index, encode_jpeg(rgb, jpeg_quality), "image/jpeg", path.name)
    else:
        raise ConfigError("source", f"{path} is a recording: its events are not frames")


def publish_source(
    pub: Publisher,
    topics: Topics,
    source: str | Path,
    *,
    stream_id: str | None = None,
    model_version: str = "unknown",
    fps: float | None = None,
    limit: int | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> PublishCounts:
    """Publish ``source`` through ``pub``; the caller flushes (leaving ``with pub``).

    ``stream_id`` is required for a folder or a video; for a recording it
    keeps only that stream's events (all of them when ``None``). ``limit``
    caps the events published; ``fps`` paces them.
    """
    if fps is not None and not fps > 0:
        raise ConfigError("fps", f"must be > 0, got {fps}")
    if limit is not None and limit < 0:
        raise ConfigError("limit", f"must be >= 0, got {limit}")
    counts = PublishCounts()
    interval = 1.0 / fps if fps else 0.0
    next_at = time.monotonic()

    def pace() -> None:
        nonlocal next_at
        if interval:
            delay = next_at - time.monotonic()
            if delay > 0:
                sleep(delay)
            next_at = max(next_at, time.monotonic() - interval) + interval

    def full() -> bool:
        return limit is not None and sum(counts.published.values()) >= limit

    if source_kind(source) == "jsonl":
        for raw in jsonl_recording(source):
            if full():
                break
            route = _route(pub, topics, raw, source, stream_id, counts)
            if route is not None:
                pace()
                pub.publish_raw(route[0], route[1], raw)  # the recorded bytes, unchanged
                counts.published[route[0]] += 1
        return counts
    if stream_id is None:
        raise ConfigError("stream", f"a stream id is needed to publish the frames of {source}")
    for ev in source_frames(source, stream_id=stream_id, model_version=model_version, fps=fps):
        if full():
            break
        pace()
        try:
            pub.publish(topics.frames, ev)
        except InvalidEvent as exc:  # larger than max_event_bytes: refused before sending
            counts.rejected[exc.reason] += 1
            continue
        counts.published[topics.frames] += 1
    return counts


_INPUT_TOPICS = {Frame: "frames", Prediction: "predictions", Label: "labels",
                 Embedding: "embeddings"}


def _route(
    pub: Publisher, topics: Topics, raw: bytes, source: str | Path, stream_id: str | None,
    counts: PublishCounts,
) -> tuple[str, bytes | None] | None:
    """Topic and key of a recorded line, or ``None`` (dead-lettered, or another stream's)."""
    try:
        event = decode_event(raw, max_bytes=pub.max_event_bytes)
        kind = _INPUT_TOPICS.get(type(event))
        if kind is None:
            raise InvalidEvent(f"a {type(event).__name__} event is not an input",
                               reason="unknown_kind")
    except InvalidEvent as exc:
        letter = DeadLetter.bounded(original=raw, detail=str(exc),
                                    max_event_bytes=pub.max_event_bytes, reason=exc.reason,
                                    source_topic=f"file:{source}", stage=STAGE)
        pub.publish(topics.dead_letter, letter)
        counts.rejected[exc.reason] += 1
        return None
    if stream_id is not None and getattr(event, "stream_id", None) != stream_id:
        counts.skipped += 1
        return None
    return str(getattr(topics, kind)), event_key(event)
