"""A simulated camera's frames as wire events: frames, predictions, labels.

Predictions are real model outputs: the deployed classifier is the default
embedder's ImageNet head run on each (possibly drifted) frame, so confidence
and class mix respond to drift the way a real model's do. Labels (optional)
are late ground truth: the class the model gives the same frame *without*
the injected drift (a clean twin camera with the same seed), delivered
``label_delay`` frames later, with a fraction ``label_noise`` of them wrong.

No Kafka here: ``driftline simulate`` publishes what this yields, or writes
it to a JSONL recording for ``driftline replay``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from processors.embedder import Embedder
from producers.drift_injection import DriftSpec
from producers.simulated_camera import SimulatedCamera
from producers.sources import encode_jpeg
from schemas.events import Frame, Label, Prediction


@dataclass(frozen=True)
class CameraEvent:
    """One event and the topic kind it belongs on (frames, predictions, labels)."""

    topic: str
    event: Frame | Prediction | Label


def camera_events(
    *,
    stream_id: str,
    frames: int,
    scene: str = "coffee",
    seed: int = 0,
    drift: DriftSpec | None = None,
    model_version: str = "v1",
    predictor: Embedder | None = None,
    labels: bool = False,
    label_delay: int = 30,
    label_noise: float = 0.02,
    fps: float = 10.0,
    size: tuple[int, int] = (320, 240),
    jpeg_quality: int = 85,
    batch: int = 16,
    start: datetime | None = None,
) -> Iterator[CameraEvent]:
    """Yield the events of ``frames`` camera frames, in publish order."""
    cam = SimulatedCamera(scene, seed=seed, size=size, fps=fps, drift=drift)
    twin = SimulatedCamera(scene, seed=seed, size=size, fps=fps) if labels and drift else None
    rng = np.random.default_rng(seed + 7919)
    t0 = start or datetime.now(UTC)
    pending_labels: deque[tuple[int, Label]] = deque()
    frame_iter = iter(cam.frames(frames))
    twin_iter = iter(twin.frames(frames)) if twin is not None else None
    done = 0
    while done < frames:
        chunk = []
        for sim in frame_iter:
            chunk.append(sim)
            if len(chunk) >= batch:
                break
        if not chunk:
            break
        rgbs = [s.rgb for s in chunk]
        preds = predictor.embed(rgbs) if predictor is not None else None
        truth = None
        if labels and predictor is not None:
            if twin_iter is not None:
                clean = [next(twin_iter).rgb for _ in chunk]
                truth = predictor.embed(clean).top_class
            else:
                truth = preds.top_class if preds is not None else None
        for j, sim in enumerate(chunk):
            ts = t0 + timedelta(seconds=sim.index / fps)
            fid = f"{stream_id}-f{sim.index:08d}"
            yield CameraEvent(
                "frames",
                Frame(
                    event_id=fid,
                    stream_id=stream_id,
                    model_version=model_version,
                    ts=ts,
                    image=encode_jpeg(sim.rgb, quality=jpeg_quality),
                    content_type="image/jpeg",
                    frame_index=sim.index,
                    meta=dict(sim.meta),
                ),
            )
            if preds is not None and preds.top_class is not None and preds.confidence is not None:
                pid = f"{stream_id}-p{sim.index:08d}"
                yield CameraEvent(
                    "predictions",
                    Prediction(
                        event_id=pid,
                        stream_id=stream_id,
                        model_version=model_version,
                        ts=ts,
                        frame_id=fid,
                        frame_index=sim.index,
                        top_class=preds.top_class[j],
                        confidence=float(np.clip(preds.confidence[j], 0.0, 1.0)),
                    ),
                )
                if truth is not None:
                    true_class = truth[j]
                    if rng.random() < label_noise:
                        true_class = f"{true_class}~mislabelled"
                    pending_labels.append(
                        (
                            sim.index + label_delay,
                            Label(
                                event_id=f"{stream_id}-l{sim.index:08d}",
                                stream_id=stream_id,
                                model_version=model_version,
                                ts=ts + timedelta(seconds=label_delay / fps),
                                target_event_id=pid,
                                true_class=true_class,
                            ),
                        )
                    )
            while pending_labels and pending_labels[0][0] <= sim.index:
                yield CameraEvent("labels", pending_labels.popleft()[1])
            done += 1
    while pending_labels:
        yield CameraEvent("labels", pending_labels.popleft()[1])
