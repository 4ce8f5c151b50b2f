"""The faust-streaming worker: frames → embeddings → monitors → alerts/state.

This is the only module under ``processors/`` that knows Kafka. What an event
does is decided by ``processors.router`` -- the same router ``driftline
replay`` runs -- so this module only moves bytes: topic -> router -> topics.

Ordering and delivery (the guarantees in docs/architecture.md):

- Input events are taken in micro-batches with ``take_events``, which acks an
  event only after the loop body that consumed its batch has returned. Every
  output of a batch (embeddings, alerts, snapshots, dead letters) is awaited
  until the broker confirmed delivery *inside* the body, so an input offset is
  never committed before its outputs exist: a crash re-processes, never loses.
- The monitor agent snapshots every stream it touched at the end of each
  batch, before the batch is acked. Committed offsets therefore always match
  the last snapshot: a restarted worker restores the snapshots and resumes
  from the committed offsets, re-creating exactly the state it would have had.
  Alerts re-fired during that replay carry the same deterministic ids, and the
  sinks deduplicate on them.
- Bad input goes to the dead-letter topic with its original bytes, source
  topic/partition/offset and a reason; the stream goes on.
- Operator commands (``<prefix>.control``, keyed by stream id) are consumed by
  the monitor agent together with its inputs: the control topic has the
  inputs' partition count and key, so a stream's commands land in the
  partition number of its events, which faust assigns (one topic group per
  agent) to the same worker -- the one that owns the stream's monitor. A
  command is applied between that stream's events, in the batch it arrives
  in, and the batch's snapshot (sent before the batch is acked) already
  shows it; a crash before the ack re-applies it after the restore.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
from confluent_kafka import Consumer, TopicPartition

from driftline import metrics
from driftline.errors import InvalidEvent
from driftline.kafka_config import client_options, faust_credentials
from driftline.settings import Settings
from processors.bundles import load_references
from processors.commands import ControlAuth
from processors.frame_pipeline import FramePipeline
from processors.model_manifest import PACKAGED_MANIFEST, load_manifest
from processors.monitor import MonitorRegistry, StreamMonitor
from processors.router import Rejected, Router, Source
from schemas.events import DeadLetter, Frame, StreamState
from schemas.wire import decode_as, encode

log = logging.getLogger("driftline.worker")


def load_snapshots(
    settings: Settings, timeout_s: float = 20.0
) -> dict[tuple[str, str], StreamState]:
    """Latest snapshot per (stream, model version) from the compacted state topic."""
    topic = settings.topics.state
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"{settings.consumer_group}.restore",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **client_options(settings),
        }
    )
    latest: dict[tuple[str, str], StreamState] = {}
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or not meta.partitions:
            return latest
        parts = [TopicPartition(topic, p, 0) for p in meta.partitions]
        ends = {}
        for tp in parts:
            _, high = consumer.get_watermark_offsets(tp, timeout=timeout_s)
            if high > 0:
                ends[tp.partition] = high
        if not ends:
            return latest
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        done: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(done) < len(ends) and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                continue
            try:
                state = decode_as(StreamState, msg.value() or b"", settings.max_event_bytes)
                latest[(state.stream_id, state.model_version)] = state
            except InvalidEvent as exc:
                log.warning("skipping unreadable snapshot at %s/%s: %s",
                            msg.partition(), msg.offset(), exc)
            partition, offset = msg.partition(), msg.offset()
            if partition is not None and offset is not None and offset + 1 >= ends[partition]:
                done.add(partition)
    finally:
        consumer.close()
    return latest


def build_app(settings: Settings, pipeline: FramePipeline | None = None) -> faust.App:
    """A faust app wired to ``settings``; ``pipeline`` defaults to the configured embedder."""
    topics = settings.topics
    app = faust.App(
        f"{settings.consumer_group}.worker",
        broker=[f"kafka://{s.strip()}" for s in settings.bootstrap_servers.split(",")],
        store="memory://",
        web_enabled=False,
        topic_partitions=settings.partitions,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # Tansu completes a group's first join only after half the session
        # timeout; 10 s keeps a worker's start within seconds, and is a sane
        # failure-detection time on Apache Kafka too.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        broker_commit_every=100,
        broker_commit_interval=1.0,
        producer_acks=-1,
        # Outputs (embedding events, snapshots) can be larger than the input limit.
        producer_max_request_size=max(settings.max_event_bytes, 1 << 20) + 65536,
        # Per-partition fetch size must exceed the largest *record batch* a
        # producer writes (many frames, up to the producer's batch.size), not
        # just the largest event: a truncated batch stalls the partition.
        consumer_max_fetch_size=max(settings.max_event_bytes, 16 << 20) + 65536,
        # DRIFTLINE_KAFKA_OPTIONS (+ the typed passwords) mapped to aiokafka's
        # SASL/TLS credentials; None on a plaintext cluster.
        broker_credentials=faust_credentials(client_options(settings)),
    )

    def raw_topic(*names: str) -> Any:
        return app.topic(
            *names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    frames_in = raw_topic(topics.frames)
    monitor_in = raw_topic(topics.embeddings, topics.predictions, topics.labels, topics.control)
    embeddings_out = raw_topic(topics.embeddings)
    alerts_out = raw_topic(topics.alerts)
    state_out = raw_topic(topics.state)
    dead_out = raw_topic(topics.dead_letter)

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
    monitor_settings = settings.monitor
    if monitor_settings.embedding_dim is None:
        # The worker's own embedder fixes the dimension of `embedding` vectors.
        emb = settings.embedder
        manifest = load_manifest(
            emb.manifest_path
            or (emb.model_path.with_suffix(".json") if emb.model_path else PACKAGED_MANIFEST)
        )
        monitor_settings = monitor_settings.model_copy(
            update={"embedding_dim": manifest.embedding_dim}
        )
    # Reference bundles are read and checked here, at start-up (ConfigError
    # naming DRIFTLINE_MONITOR__REFERENCE_PATH), once.
    registry = MonitorRegistry(monitor_settings, load_references(monitor_settings))
    router = Router(
        registry,
        pipeline=pipeline or (lambda: FramePipeline.from_settings(settings.embedder,
                                                                  settings.max_event_bytes)),
        max_bytes=settings.max_event_bytes,
        # Signed commands only when DRIFTLINE_CONTROL_SECRET is set (else a warning, once).
        control=ControlAuth.from_settings(settings),
    )
    counters = {"frames": 0, "embeddings": 0, "events": 0, "alerts": 0, "dead_letters": 0,
                "commands": 0, "monitor_errors": 0}
    app.driftline_counters = counters  # type: ignore[attr-defined]
    app.driftline_registry = registry  # type: ignore[attr-defined]

    async def dead_letter(event: Any, rejected: Rejected) -> Awaitable[Any]:
        msg = event.message
        # Bounded: an oversize original (base64 grows it by 4/3) is cut to fit,
        # or the dead letter itself could not be produced and the agent would
        # fail on the same event after every restart.
        letter = DeadLetter.bounded(
            original=msg.value if isinstance(msg.value, bytes) else bytes(msg.value or b""),
            detail=rejected.detail[:2000],
            max_event_bytes=settings.max_event_bytes,
            reason=rejected.reason,
            source_topic=msg.topic,
            source_partition=msg.partition,
            source_offset=msg.offset,
            key=msg.key,
            stage=rejected.stage,
        )
        counters["dead_letters"] += 1
        metrics.count_dead_letter(rejected.stage, rejected.reason)
        if rejected.reason == "monitor_error":
            counters["monitor_errors"] += 1
            metrics.count_monitor_error()
        log.warning("dead letter from %s/%s@%s: %s: %s", msg.topic, msg.partition, msg.offset,
                    rejected.reason, rejected.detail[:200])
        return await dead_out.send(key=msg.key, value=encode(letter))

    restored = asyncio.Event()

    @app.task
    async def restore_snapshots() -> None:
        snaps = await asyncio.get_running_loop().run_in_executor(None, load_snapshots, settings)
        for state in snaps.values():
            try:
                registry.restore(state)
            except ValueError as exc:
                # A checkpoint this build cannot read (an older state version):
                # the stream warms up again rather than stopping the worker.
                log.warning("snapshot of %s/%s not restored (%s); its monitor warms up again",
                            state.stream_id, state.model_version, exc)
        if snaps:
            log.info("restored %d stream monitors from %s", len(snaps), topics.state)
        restored.set()

    @app.agent(frames_in)
    async def embed_frames(stream: Any) -> None:
        loop = asyncio.get_running_loop()
        # Load the model off the event loop before the first batch.
        await loop.run_in_executor(executor, lambda: router.pipeline)
        wait = settings.embedder.batch_wait_ms / 1000.0 or 0.001
        async for events in stream.take_events(settings.embedder.batch_size, within=wait):
            pending = []
            frames: list[Frame] = []
            owners = []
            for ev in events:
                try:
                    frames.append(router.decode_frame(ev.value))
                    owners.append(ev)
                except InvalidEvent as exc:
                    pending.append(await dead_letter(
                        ev, Rejected(exc.reason, str(exc), "embedder")))
            counters["frames"] += len(events)
            metrics.count_in(topics.frames, len(events))
            started = time.perf_counter()
            results = await loop.run_in_executor(executor, router.embed, frames)
            metrics.observe_processing("embed", time.perf_counter() - started)
            for ev, frame, res in zip(owners, frames, results, strict=True):
                routed = router.embedded(frame, res)
                for rejected in routed.rejected:
                    pending.append(await dead_letter(ev, rejected))
                # Embeddings and frame errors on one topic, keyed by stream: a
                # stream's monitor sees them in the order of its frames.
                for out in routed.embedded:
                    pending.append(
                        await embeddings_out.send(key=frame.stream_id.encode(), value=encode(out))
                    )
                counters["embeddings"] += not routed.rejected
            log.info("embedded %d frames", len(frames))
            # Delivered before this batch is acked, or a crash would lose embeddings.
            await asyncio.gather(*pending)
            metrics.count_out(topics.embeddings, len(owners))

    @app.agent(monitor_in)
    async def monitor_events(stream: Any) -> None:
        # Monitors must be restored before the first event, or a fresh monitor
        # would process the gap and then be overwritten by the old snapshot.
        await restored.wait()
        async for events in stream.take_events(max(settings.state_every, 1), within=0.5):
            pending = []
            touched: dict[tuple[str, str], StreamMonitor] = {}
            by_topic: dict[str, int] = {}
            started = time.perf_counter()
            fired = 0
            for ev in events:
                by_topic[ev.message.topic] = by_topic.get(ev.message.topic, 0) + 1
                source = Source.CONTROL if ev.message.topic == topics.control else Source.INPUTS
                routed = router.route(ev.value, source)
                for rejected in routed.rejected:
                    pending.append(await dead_letter(ev, rejected))
                if routed.rejected:
                    continue
                if routed.command is not None:
                    counters["commands"] += 1
                    for mon, names in routed.applied:
                        log.info("command %s: %s/%s re-referenced %s", routed.command.command_id,
                                 mon.stream_id, mon.model_version, names)
                else:
                    counters["events"] += 1
                for mon in routed.touched:
                    touched[(mon.stream_id, mon.model_version)] = mon
                for alert in routed.alerts:
                    counters["alerts"] += 1
                    fired += 1
                    metrics.count_alert(alert.signal)
                    log.info("ALERT %s", alert.message)
                    pending.append(
                        await alerts_out.send(key=alert.stream_id.encode(), value=encode(alert))
                    )
            for (sid, mv), mon in touched.items():
                pending.append(
                    await state_out.send(key=f"{sid}|{mv}".encode(), value=encode(mon.snapshot()))
                )
            metrics.observe_processing("monitor", time.perf_counter() - started)
            for topic, n in by_topic.items():
                metrics.count_in(topic, n)
            log.info("monitor batch: %s", by_topic)
            # Alerts and snapshots delivered before the batch is acked: committed
            # offsets never run ahead of the state a restart restores.
            await asyncio.gather(*pending)
            metrics.count_out(topics.state, len(touched))
            metrics.count_out(topics.alerts, fired)

    return app


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run a worker in the foreground until interrupted (``driftline worker``).

    With ``DRIFTLINE_METRICS_PORT`` set, Prometheus metrics are served on it.
    """
    app = build_app(settings)
    metrics.serve_metrics(settings.metrics_port)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
