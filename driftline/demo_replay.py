"""The demo's monitoring path in one process, without Kafka: what its verdict is checked on.

``driftline demo`` plays a simulated camera into Kafka and a worker monitors
it; one run takes minutes. :func:`demo_alerts` runs the same camera (the
demo's ``DEMO_CAMERA``: frames, and the deployed model's predictions on them)
into the worker's router (``processors.router``: frames decoded, measured and
embedded in micro-batches of ``batch`` as the worker embeds them, then
observed with the predictions) under the demo's monitor settings
(``DEMO_MONITOR``), and returns the alerts, for the demo's verdict
(``driftline.demo.expectation_met``). One loaded ``Embedder`` serves both
the camera's model and the worker's embedder, as both are the packaged
EfficientNet-Lite0.

Used by ``tests/integration/test_readme_options_example.py`` (the README's
options example on 5 scenes x 3 seeds) and ``bench/bench_readme_example.py``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from driftline.demo import DEMO_CAMERA, DEMO_MONITOR, STREAM
from driftline.errors import InvalidEvent
from driftline.settings import MonitorSettings
from processors.bundles import load_references
from processors.embedder import Embedder
from processors.frame_pipeline import FramePipeline
from processors.monitor import MonitorRegistry
from processors.router import Router, Source
from producers.camera_events import CameraEvent, camera_events
from producers.drift_injection import DriftSpec
from schemas.events import Alert, Frame
from schemas.wire import encode


def _chunks(events: Iterator[CameraEvent], frames: int) -> Iterator[list[CameraEvent]]:
    """Consecutive events holding ``frames`` frames each (the last chunk may hold fewer)."""
    chunk: list[CameraEvent] = []
    seen = 0
    for ce in events:
        if isinstance(ce.event, Frame):
            if seen == frames:
                yield chunk
                chunk, seen = [], 0
            seen += 1
        chunk.append(ce)
    if chunk:
        yield chunk


def demo_alerts(*, scene: str, seed: int, drift: str, onset: int, frames: int,
                embedder: Embedder, monitor: dict[str, Any] | None = None,
                batch: int = 16) -> list[Alert]:
    """Every alert the demo's worker raises on this camera, in order.

    ``monitor`` replaces ``DEMO_MONITOR`` (a bench's override). Events cross
    the wire format (encoded, then decoded by the router) as in the worker.
    """
    settings = MonitorSettings(**(DEMO_MONITOR if monitor is None else monitor))
    router = Router(MonitorRegistry(settings, load_references(settings)),
                    pipeline=FramePipeline(embedder))
    events = camera_events(stream_id=STREAM, frames=frames, scene=scene, seed=seed,
                           drift=DriftSpec(kind=drift, onset=onset), predictor=embedder,
                           batch=batch, **DEMO_CAMERA)
    alerts: list[Alert] = []
    for chunk in _chunks(events, batch):
        wire = [encode(ce.event) for ce in chunk]
        shots = [router.decode_frame(raw) for ce, raw in zip(chunk, wire, strict=True)
                 if isinstance(ce.event, Frame)]
        embedded = iter(zip(shots, router.embed(shots), strict=True))
        for ce, raw in zip(chunk, wire, strict=True):
            if isinstance(ce.event, Frame):
                out = router.embedded(*next(embedded))
                routed = [router.route_event(e, Source.INPUTS) for e in out.embedded]
                routed.append(out)
            else:
                routed = [router.route(raw, Source.INPUTS)]
            for r in routed:
                if r.rejected:
                    raise InvalidEvent(f"the demo camera's own event was rejected: {r.rejected}")
                alerts += r.alerts
    return alerts


_EMBEDDER: list[Embedder] = []  # one loaded model per worker process (``demo_runs``)


def _load_embedder() -> None:
    _EMBEDDER.append(Embedder.load())


def _run_case(case: tuple[str, int], kwargs: dict[str, Any]) -> list[Alert]:
    scene, seed = case
    return demo_alerts(scene=scene, seed=seed, embedder=_EMBEDDER[0], **kwargs)


def demo_runs(cases: Sequence[tuple[str, int]], *, drift: str, onset: int, frames: int,
              monitor: dict[str, Any] | None = None,
              workers: int | None = None) -> dict[tuple[str, int], list[Alert]]:
    """``demo_alerts`` of each ``(scene, seed)``, on ``workers`` processes (default: 2 at most).

    Each process loads the model once and runs its share of the cases one
    after the other; a run is one core's work (the embedder runs on one
    thread), so two processes use a 2-core machine. ``workers=1`` runs them
    here, in this process.
    """
    kwargs: dict[str, Any] = {"drift": drift, "onset": onset, "frames": frames,
                              "monitor": monitor}
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    if workers <= 1:
        embedder = Embedder.load()
        return {c: demo_alerts(scene=c[0], seed=c[1], embedder=embedder, **kwargs)
                for c in cases}
    # spawn: onnxruntime's threads do not survive a fork.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_load_embedder) as pool:
        runs = list(pool.map(_run_case, cases, [kwargs] * len(cases)))
    return dict(zip(cases, runs, strict=True))
