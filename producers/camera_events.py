"""A simulated camera's frames as wire events: frames, predictions, labels.

Predictions are real model outputs: the deployed classifier is the default
embedder's ImageNet head run on each (possibly drifted) frame, so confidence
and class mix respond to drift the way a real model's do. Labels (optional)
are late ground truth: the class the model gives the same frame *without*
the injected drift (a clean twin camera with the same seed), delivered
``label_delay`` frames later, with a fraction ``label_noise`` of them wrong.

The two drift kinds that change predictions rather than pixels are applied
here (``producers.drift_injection`` only records them in meta):

- ``class_mix``: the world changed. From the onset a fraction
  ``0.5 * strength`` of frames show objects of classes the stream did not see
  before: their prediction (and label) becomes one of three new classes, drawn
  once per stream; confidence is the model's own.
- ``model_version``: a new model was deployed. From the onset every event
  carries ``<model_version>-next`` (driftline monitors each version
  separately) and the new model is less sure of itself: its confidence is the
  top probability of the logits at temperature ``1 + 0.3 * strength``.

No Kafka here: ``driftline simulate`` publishes what this yields, or writes
it to a JSONL recording for ``driftline replay``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from processors.embedder import Embedder, EmbedResult
from processors.top_scores import top_scores
from producers.drift_injection import DriftSpec
from producers.simulated_camera import SimulatedCamera
from producers.sources import encode_jpeg
from schemas.events import Frame, Label, Prediction

if TYPE_CHECKING:
    from driftline.settings import Topics
    from producers.publisher import Publisher


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
    mount: str = "wander",
    lighting_period_s: float | None = None,
) -> Iterator[CameraEvent]:
    """Yield the events of ``frames`` camera frames, in publish order.

    ``mount`` and ``lighting_period_s`` are the ``SimulatedCamera``'s: ``"fixed"``
    and ``86_400.0`` make a camera bolted to a wall under a real day's light.
    """
    cam = SimulatedCamera(scene, seed=seed, size=size, fps=fps, drift=drift, mount=mount,
                          lighting_period_s=lighting_period_s)
    twin = (SimulatedCamera(scene, seed=seed, size=size, fps=fps, mount=mount,
                            lighting_period_s=lighting_period_s)
            if labels and drift else None)
    rng = np.random.default_rng(seed + 7919)
    t0 = start or datetime.now(UTC)
    pending_labels: deque[tuple[int, Label]] = deque()
    frame_iter = iter(cam.frames(frames))
    twin_iter = iter(twin.frames(frames)) if twin is not None else None
    # Output drift draws from its own stream: label noise stays as without it.
    mix_rng = np.random.default_rng(seed + 104_729)
    new_classes = _new_classes(predictor, mix_rng) if predictor is not None else []
    next_version = f"{model_version}-next"
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
        replaced: list[bool] = [False] * len(chunk)
        if preds is not None and drift is not None and drift.kind in ("class_mix", "model_version"):
            preds, replaced = _apply_output_drift(
                preds, drift, [s.index for s in chunk], new_classes, mix_rng
            )
        truth = None
        if labels and predictor is not None:
            if twin_iter is not None:
                clean = [next(twin_iter).rgb for _ in chunk]
                truth = predictor.embed(clean).top_class
            else:
                truth = preds.top_class if preds is not None else None
            if truth is not None and preds is not None and preds.top_class is not None:
                # class_mix: the world changed, so ground truth follows the new objects.
                truth = [p if r else t for p, r, t in zip(preds.top_class, replaced, truth,
                                                          strict=True)]
        for j, sim in enumerate(chunk):
            ts = t0 + timedelta(seconds=sim.index / fps)
            version = (next_version if drift is not None and drift.kind == "model_version"
                       and drift.active(sim.index) else model_version)
            fid = f"{stream_id}-f{sim.index:08d}"
            yield CameraEvent(
                "frames",
                Frame(
                    event_id=fid,
                    stream_id=stream_id,
                    model_version=version,
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
                        model_version=version,
                        ts=ts,
                        frame_id=fid,
                        frame_index=sim.index,
                        top_class=preds.top_class[j],
                        confidence=float(np.clip(preds.confidence[j], 0.0, 1.0)),
                        scores=top_scores(preds, j, predictor.class_names if predictor else None),
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
                                model_version=version,
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


def publish_camera(
    pub: Publisher,
    topics: Topics,
    events: Iterable[CameraEvent],
    *,
    progress: Callable[[int], object] | None = None,
    every: int = 400,
) -> int:
    """Publish camera events to their topics; returns how many (``progress(n)`` every ``every``).

    The caller flushes (leaving ``with pub``).
    """
    n = 0
    for ce in events:
        pub.publish(getattr(topics, ce.topic), ce.event)  # frames, predictions, labels
        n += 1
        if progress is not None and n % every == 0:
            progress(n)
    return n


def _new_classes(predictor: Embedder, rng: np.random.Generator) -> list[str]:
    """Three classes a ``class_mix`` drift brings into view (drawn once per stream)."""
    names = predictor.class_names or []
    if not names:
        return []
    return [names[int(i)] for i in rng.choice(len(names), size=3, replace=False)]


def _apply_output_drift(
    preds: EmbedResult,
    drift: DriftSpec,
    indices: list[int],
    new_classes: list[str],
    rng: np.random.Generator,
) -> tuple[EmbedResult, list[bool]]:
    """Predictions under ``class_mix`` / ``model_version`` drift; which rows changed class."""
    if preds.top_class is None or preds.confidence is None:
        return preds, [False] * len(indices)
    top = list(preds.top_class)
    conf = np.asarray(preds.confidence, dtype=np.float64).copy()
    probs = None if preds.probs is None else np.asarray(preds.probs, dtype=np.float64).copy()
    replaced = [False] * len(indices)
    for j, index in enumerate(indices):
        strength = drift.strength(index)
        if strength <= 0:
            continue
        if drift.kind == "class_mix" and new_classes and rng.random() < 0.5 * min(strength, 2.0):
            top[j] = new_classes[int(rng.integers(len(new_classes)))]
            replaced[j] = True
        elif drift.kind == "model_version" and preds.logits is not None:
            z = np.asarray(preds.logits[j], dtype=np.float64) / (1.0 + 0.3 * strength)
            p = np.exp(z - z.max())
            conf[j] = float(p.max() / p.sum())
            if probs is not None:
                probs[j] = p / p.sum()
    return replace(preds, top_class=top, confidence=conf, probs=probs), replaced

