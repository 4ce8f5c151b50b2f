"""``driftline publish RECORDING``: a JSONL recording into Kafka, each line as it is.

A recording (``.jsonl``, ``.ndjson``, ``.jsonl.gz``; what ``simulate --out``
writes): each line is published unchanged to the topic of its kind (frames,
predictions, labels, embeddings), keyed by its stream; a line that is not an
input event goes to the dead-letter topic with its original bytes and the
reason. With ``fps`` set the events are paced in real time (a camera's
rate); without it they go as fast as the broker takes them.

Cameras, video files and image folders are published by
``producers.camera_publish`` (``producers.camera_source`` reads them).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from driftline.errors import ConfigError, InvalidEvent
from driftline.settings import Topics
from producers.publisher import Publisher, event_key
from producers.sources import jsonl_recording
from schemas.events import DeadLetter, Embedding, Frame, Label, Prediction
from schemas.wire import decode_event

STAGE = "publish"


@dataclass
class PublishCounts:
    """What one ``publish_recording`` run did."""

    published: Counter[str] = field(default_factory=Counter)  # by topic
    rejected: Counter[str] = field(default_factory=Counter)  # by reason (dead-lettered/refused)
    skipped: int = 0  # recording events of other streams (``stream_id`` given)

    def summary(self, source: str | Path) -> str:
        """One line: ``published 12 events from FILE (t.frames 12); ...``."""
        total = sum(self.published.values())
        by_topic = ", ".join(f"{t} {n}" for t, n in sorted(self.published.items()))
        line = f"published {total} events from {source}" + (f" ({by_topic})" if total else "")
        if self.rejected:
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.rejected.items()))
            line += f"; rejected {sum(self.rejected.values())} ({reasons})"
        if self.skipped:
            line += f"; skipped {self.skipped} of other streams"
        return line


def publish_recording(
    pub: Publisher,
    topics: Topics,
    source: str | Path,
    *,
    stream_id: str | None = None,
    fps: float | None = None,
    limit: int | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> PublishCounts:
    """Publish the recording ``source`` through ``pub``; the caller flushes (``with pub``).

    ``stream_id`` keeps only that stream's events (all of them when ``None``).
    ``limit`` caps the events published; ``fps`` paces them.
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

    for raw in jsonl_recording(source):
        if full():
            break
        route = _route(pub, topics, raw, source, stream_id, counts)
        if route is not None:
            pace()
            pub.publish_raw(route[0], route[1], raw)  # the recorded bytes, unchanged
            counts.published[route[0]] += 1
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
