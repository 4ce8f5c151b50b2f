"""The faust-streaming worker: frames → embeddings → monitors → alerts/state.

This is the only module under ``processors/`` that knows Kafka. What an event
does is decided by ``processors.router`` -- the same router ``driftline
replay`` runs -- so this module only moves bytes: topic -> router -> topics.

Ordering and delivery (the guarantees in docs/architecture.md):

- Frames are taken in micro-batches with ``take_events``, which acks a frame
  only after the loop body that consumed its batch has returned; its
  embedding (or dead letter) is awaited until the broker confirmed delivery
  inside the body, so a frame's offset is never committed before its output
  exists: a crash re-embeds, never loses (and the monitor skips a frame's
  second embedding by its ``driftline-origin`` header).
- Exactly once per stream. The monitor agent passes every event's position
  (``"<topic>:<partition>"``, offset) to the router; the stream's monitor
  records the highest offset it applied per input in its checkpoint, and an
  event at or below it is skipped (no change, no output). A stream is
  snapshotted every ``STATE_EVERY`` of its own events, or
  ``STATE_INTERVAL_S`` after its first unsnapshotted one, and the agent acks
  each event itself (``noack_take``), in offset order per partition.
  Invariant: **an input event is acked
  only after its outputs are delivered and then a delivered snapshot of
  every monitor it changed covers it**; faust commits offsets only below the
  first unacked event, so the committed offset never passes an event that
  no snapshot holds. After a crash the restored snapshots may be *ahead* of
  the committed offsets, never behind: what is read again and already in a
  snapshot is skipped; what is not is applied exactly as before the crash
  (the checkpoint is exact), re-firing the same alerts with the same
  deterministic ids -- which are not produced again: a restore also reads
  the alerts topic, and an alert whose id its stream already emitted is
  dropped (``processors.emitted_alerts``). So the alerts topic holds each
  alert once, and the sinks deduplicate on ``alert_id`` only for their own
  redeliveries.
- Restore on assignment (``StateRestorer``). A stream's monitor lives in the
  worker that owns its partition. On every assignment the monitors of lost
  partitions are dropped, and before any event of a gained partition is
  applied, the state topic is read to the end of every partition (offsets
  tracked here: Tansu can under-report a high watermark) and the snapshots
  of that partition's streams are installed. faust waits for the batch in
  flight to be acked before it revokes a partition, so the leaving owner's
  last snapshot is on the topic before the new owner reads it.
- Bad input goes to the dead-letter topic with its original bytes, source
  topic/partition/offset and a reason; the stream goes on. An input read
  again after a restart is not dead-lettered again: a restore also reads the
  dead-letter topic's tail (``processors.emitted_dead_letters``).
- Operator commands (``<prefix>.control``, keyed by stream id) are consumed by
  the monitor agent together with its inputs: the control topic has the
  inputs' partition count and key, so a stream's commands land in the
  partition number of its events, which faust assigns (one topic group per
  agent) to the same worker -- the one that owns the stream's monitor. A
  command is applied between that stream's events, in the batch it arrives
  in, and acked with them (after a snapshot that holds it); read again
  after a crash, it is skipped by every monitor whose snapshot holds it
  (commands carry positions like events).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import faust
from threadpoolctl import threadpool_limits

from driftline import early_stop, metrics
from driftline.errors import InvalidEvent
from driftline.kafka_config import client_options, faust_credentials
from driftline.service_log import quiet_aiokafka, ready_line, require_broker, service_logging
from driftline.settings import Settings
from processors.bundles import load_references
from processors.calibration_pool import CalibrationPool, Calibrations
from processors.commands import ControlAuth
from processors.emitted_alerts import EmittedAlerts, emitted_key
from processors.emitted_dead_letters import TAIL, EmittedDeadLetters, letter_id
from processors.frame_pipeline import FramePipeline
from processors.model_manifest import PACKAGED_MANIFEST, load_manifest
from processors.monitor import MonitorRegistry, StreamMonitor
from processors.router import Rejected, Routed, Router, Source
from processors.snapshot_order import is_behind, positions_header, positions_of
from processors.stream_metrics import apply_timed, decode_timed, sample, snapshot_observed
from processors.topic_reader import read_to_end
from processors.worker_shutdown import BoundedWorker
from schemas.events import DeadLetter, Frame, StreamState
from schemas.wire import decode_as, encode

log = logging.getLogger("driftline.worker")


ORIGIN_HEADER = "driftline-origin"
# Events the monitor agent takes at a time.
MONITOR_BATCH = 100
# A stream stalled in a PCA warm-up is snapshotted after this long anyway.
WARMUP_MAX_WAIT_S = 60.0
# Largest snapshot sent with its warm-up vectors: under Apache Kafka's default
# message.max.bytes (1 MB), which the state topic keeps.
STATE_MAX_BYTES = 900_000


def key_partition(key: bytes | None, all_partitions: list[int],
                  available: list[int]) -> int:
    """The partition librdkafka's default partitioner picks for ``key`` (CRC-32, mod n).

    The worker's own outputs (embeddings made from frames) must land in the
    partition *number* of the stream's other events, which the publisher
    (confluent-kafka / librdkafka, ``consistent_random``) writes; aiokafka's
    default (murmur2, the Java client's) would put a stream's embeddings and
    predictions on different partition numbers, and so possibly in two
    workers.

    >>> key_partition(b"frame-0", [0, 1], [0, 1]), key_partition(b"edge-0", [0, 1], [0, 1])
    (0, 1)
    """
    if key is None:
        return random.choice(available or all_partitions)
    ordered = sorted(all_partitions)  # aiokafka passes them from a set
    return ordered[zlib.crc32(key) % len(ordered)]


def origin_of(headers: Any) -> tuple[str, int] | None:
    """The frame position an embedding was made from (its ``driftline-origin`` header)."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    for name, value in items:
        if name == ORIGIN_HEADER and value:
            key, _, offset = bytes(value).decode().rpartition("@")
            if key and offset.isdigit():
                return key, int(offset)
    return None


def input_key(topic: str, partition: int) -> str:
    """The monitor's name for an input partition: ``"<topic>:<partition>"``."""
    return f"{topic}:{partition}"


def _partitions_of(positions: dict[str, int], topics: frozenset[str]) -> set[int]:
    """Partition numbers of the monitor's inputs among ``topics`` (topic names have no ':')."""
    out = set()
    for key in positions:
        topic, _, part = key.rpartition(":")
        if topic in topics and part.isdigit():
            out.add(int(part))
    return out


def read_state_topic(
    settings: Settings, *, quiet_s: float = 1.0, stop: Callable[[], bool] = lambda: False
) -> tuple[dict[bytes, bytes], int]:
    """The latest value per key of the state topic, read to the end of every partition.

    Returns ``(latest, partitions)``; see ``processors.topic_reader.read_to_end``
    (no deadline, the end tracked by offsets as well as watermarks).
    """
    latest, counts = read_restore_topics(settings, quiet_s=quiet_s, stop=stop)
    return latest, counts.get(settings.topics.state, 0)


def read_restore_topics(
    settings: Settings, *, quiet_s: float = 1.0, stop: Callable[[], bool] = lambda: False,
    alerts: Callable[[Any], None] | None = None,
    dead_letters: Callable[[Any], None] | None = None,
) -> tuple[dict[bytes, bytes], dict[str, int]]:
    """The state topic's latest value per key and, with ``alerts``, every alert record.

    One read of the topics to their end (one quiet period): a restore needs
    the snapshots, the alerts already emitted (``EmittedAlerts``) and, with
    ``dead_letters``, the dead-letter topic's tail (``EmittedDeadLetters``).
    """
    latest: dict[bytes, bytes] = {}
    kept: dict[bytes, dict[str, int] | None] = {}
    stale = [0]

    def keep(msg: Any) -> None:
        # A zombie's snapshot written after the new owner's is behind it: keep
        # the owner's (``processors.snapshot_order``).
        key, positions = msg.key() or b"", positions_of(msg.headers())
        if is_behind(positions, kept.get(key)):
            stale[0] += 1
            return
        latest[key], kept[key] = msg.value() or b"", positions

    handlers: dict[str, Callable[[Any], None]] = {settings.topics.state: keep}
    if alerts is not None:
        handlers[settings.topics.alerts] = alerts
    if dead_letters is not None:
        handlers[settings.topics.dead_letter] = dead_letters
    counts = read_to_end(settings, handlers, quiet_s=quiet_s, stop=stop,
                         tail={settings.topics.dead_letter: TAIL})
    if stale[0]:
        log.warning("restore: %d snapshots written after newer ones of their stream (an "
                    "expelled worker's) were left out", stale[0])
    return latest, counts


def decode_snapshots(
    raw: dict[bytes, bytes], max_bytes: int
) -> dict[tuple[str, str], StreamState]:
    """Decode the state topic's latest values; an unreadable one is logged and left out."""
    out: dict[tuple[str, str], StreamState] = {}
    for key, value in raw.items():
        try:
            state = decode_as(StreamState, value, max_bytes)
        except InvalidEvent as exc:
            log.warning("skipping unreadable snapshot %r: %s", key[:200], exc)
            continue
        out[(state.stream_id, state.model_version)] = state
    return out


def load_snapshots(settings: Settings) -> dict[tuple[str, str], StreamState]:
    """Latest snapshot per (stream, model version) from the state topic, read to its end."""
    raw, _ = read_state_topic(settings)
    return decode_snapshots(raw, settings.output_max_bytes)


class StateRestorer:
    """Installs the snapshots of the input partitions this worker is given.

    Monitors live in the worker that owns their stream's partition; a stream
    moves when its partition does (a worker joins, leaves or dies). So:

    - on every assignment (``assign``), the monitors of partitions this worker
      lost are dropped (their last snapshot is on the state topic: faust waits
      for the batch in flight to be acked, which happens only after its
      snapshots are delivered), and a restore of the gained partitions starts;
    - before a batch is applied (``ensure``), every input partition it comes
      from must have been restored since it was assigned. Checking the batch
      itself, not only the rebalance callback, means no event can overtake
      the restore of its stream, whatever the order of faust's callbacks.

    A restore reads the whole state topic to its end (``read_state_topic``)
    and installs each snapshot whose input positions lie in a restored
    partition, unless the live monitor already applied everything the
    snapshot has (it is then ours, and the same or newer).
    """

    def __init__(self, settings: Settings, registry: MonitorRegistry,
                 input_topics: frozenset[str]) -> None:
        self.settings = settings
        self.registry = registry
        self.input_topics = input_topics
        self.assigned: set[int] | None = None  # None: no assignment seen yet
        self.group_generation: int | None = None  # the consumer group's, at the last one
        self.restored: set[int] = set()
        self.restores = 0
        # Alerts already on the alerts topic: not produced again when a
        # restored stream re-applies the events after its snapshot.
        self.emitted = EmittedAlerts()
        # Dead letters already on their topic: an input read again is not
        # dead-lettered again. Read again after every assignment (``generation``).
        self.dead_letters = EmittedDeadLetters()
        self.generation = self.dead_letters_read = 0
        self._lock = asyncio.Lock()
        self._stopping = False

    def stop(self) -> None:
        """The worker stopped: a read in progress gives up (its thread must not hold the exit)."""
        self._stopping = True

    def _raise_if_stopping(self) -> None:
        # A read cut short is partial: nothing of it is installed, no event applied.
        if self._stopping:
            raise asyncio.CancelledError("the worker is stopping")

    def assign(self, partitions: set[int], group_generation: int | None = None) -> None:
        """The input partitions faust assigned to this worker (all of them, after a rebalance).

        A ``group_generation`` that is not the previous one plus one means
        the group rebalanced without this worker (expelled: frozen, or cut
        off, past its session timeout): every partition it held may have
        been another worker's since, so all count as lost, even those
        assigned again (a zombie's live monitors miss what the other worker
        applied; ``bench/bench_zombie.py``).
        """
        before, self.group_generation = self.group_generation, group_generation
        rejoined = (group_generation is not None and before is not None
                    and group_generation != before + 1)
        lost = (self.assigned or set()) - (set() if rejoined else partitions)
        if rejoined:
            log.warning("rejoined the group (generation %s after %s): partitions %s may have "
                        "moved meanwhile; their monitors are restored again",
                        group_generation, before, sorted(lost))
        self.assigned = set(partitions)
        self.generation += 1
        self.restored -= lost
        if lost:
            positions = [(key, mon.positions) for key, mon in self.registry.monitors.items()]
            positions += [(key, pos) for key, (pos, _) in self.registry.evicted.items()]
            gone = [key for key, pos in positions
                    if (parts := _partitions_of(pos, self.input_topics)) and parts <= lost]
            for key in gone:
                self.registry.drop(key)
            log.info("partitions %s moved away: dropped %d stream monitors",
                     sorted(lost), len(gone))

    async def ensure(self, partitions: set[int]) -> None:
        """Return once every partition in ``partitions`` has been restored."""
        if partitions <= self.restored:
            return
        async with self._lock:
            missing = partitions - self.restored
            if not missing:
                return
            # Everything assigned and not yet restored, in one read of the topic.
            want = missing | ((self.assigned or set()) - self.restored)
            started = time.monotonic()
            loop = asyncio.get_running_loop()
            found, collect = self.emitted.collector(self.settings.output_max_bytes)
            letters, collect_letters = self.dead_letters.collector(self.settings.output_max_bytes)
            generation = self.generation
            raw, counts = await loop.run_in_executor(
                None, lambda: read_restore_topics(self.settings, stop=lambda: self._stopping,
                                                  alerts=collect, dead_letters=collect_letters))
            self._raise_if_stopping()
            snaps = await loop.run_in_executor(
                None, decode_snapshots, raw, self.settings.output_max_bytes)
            installed = self._install(snaps, want)
            self.emitted.replace(found)
            self.dead_letters.replace(letters)
            self.dead_letters_read = generation
            self.restored |= want
            self.restores += 1
            log.info("restored %d stream monitors from %d partitions %s "
                     "(%d snapshots on %d state partitions and the alerts of %d streams "
                     "read to their end in %.1f s)",
                     installed, len(want), sorted(want), len(snaps),
                     counts.get(self.settings.topics.state, 0), len(found),
                     time.monotonic() - started)

    async def ensure_dead_letters(self) -> None:
        """Return once the dead-letter topic was read since the latest assignment.

        The embed agent's frames are not restored, but a frame read again
        after a restart must not be dead-lettered twice either.
        """
        if self.dead_letters_read == self.generation:
            return
        async with self._lock:
            if self.dead_letters_read == self.generation:
                return
            generation = self.generation
            letters, collect = self.dead_letters.collector(self.settings.output_max_bytes)
            await asyncio.get_running_loop().run_in_executor(None, lambda: read_to_end(
                self.settings, {self.settings.topics.dead_letter: collect},
                stop=lambda: self._stopping, tail={self.settings.topics.dead_letter: TAIL}))
            self._raise_if_stopping()
            self.dead_letters.replace(letters)
            self.dead_letters_read = generation

    def _install(self, snaps: dict[tuple[str, str], StreamState], want: set[int]) -> int:
        installed = 0
        for key, state in snaps.items():
            positions = state.monitor.get("positions") or {}
            parts = _partitions_of(positions, self.input_topics)
            live = self.registry.monitors.get(key)
            if parts:
                if not parts & want:
                    continue
                if live is not None and all(live.positions.get(k, -1) >= v
                                            for k, v in positions.items()):
                    continue  # ours, and at least as far
            elif live is not None or self.restores:
                # A snapshot without positions (an older build): its partition is
                # unknown, so it is installed at start-up only, as before.
                continue
            try:
                self.registry.restore(state)
                installed += 1
            except ValueError as exc:
                # A checkpoint this build cannot read (an older state version):
                # the stream warms up again rather than stopping the worker.
                log.warning("snapshot of %s/%s not restored (%s); its monitor warms up again",
                            state.stream_id, state.model_version, exc)
        return installed


def _data_dir(settings: Settings) -> str:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return str(settings.data_dir / "{conf.name}-data")  # faust fills in the app's name


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
        # Our outputs keyed by stream go where the publisher's events of that
        # stream go (see key_partition).
        producer_partitioner=key_partition,
        broker_commit_every=100,
        broker_commit_interval=1.0,
        producer_acks=-1,
        # Outputs (embedding events, snapshots) can be larger than the input limit.
        producer_max_request_size=settings.output_max_bytes,
        # Per-partition fetch size must exceed the largest *record batch* a
        # producer writes (many frames, up to the producer's batch.size), not
        # just the largest event: a truncated batch stalls the partition.
        consumer_max_fetch_size=max(settings.max_event_bytes, 16 << 20) + 65536,
        # DRIFTLINE_KAFKA_OPTIONS (+ the typed passwords) mapped to aiokafka's
        # SASL/TLS credentials; None on a plaintext cluster.
        broker_credentials=faust_credentials(client_options(settings)),
        # faust's own files under DRIFTLINE_DATA_DIR, not in the current directory.
        datadir=_data_dir(settings),
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
    # Calibrations in child processes (DRIFTLINE_CALIBRATION_WORKERS; 0: inline,
    # on this event loop): each result is installed before its stream's next
    # event (``apply_batch``), so the alerts are replay's (processors.calibration_pool).
    workers = settings.calibration_workers
    calibrations = Calibrations(CalibrationPool(workers) if workers else None)
    app.driftline_calibrations = calibrations  # type: ignore[attr-defined]
    # Said on the ready line (an info log here comes before faust sets up logging).
    calibrating = (f"calibrations in {workers} child process{'es' if workers > 1 else ''}"
                   if workers else "calibrations inline")
    registry = MonitorRegistry(monitor_settings, load_references(monitor_settings),
                               deferred=workers > 0)
    router = Router(
        registry,
        pipeline=pipeline or (lambda: FramePipeline.from_settings(settings.embedder,
                                                                  settings.max_event_bytes)),
        max_bytes=settings.max_event_bytes,
        # Signed commands only when DRIFTLINE_CONTROL_SECRET is set (else a warning, once).
        control=ControlAuth.from_settings(settings),
    )
    counters = {"frames": 0, "embeddings": 0, "events": 0, "alerts": 0, "dead_letters": 0,
                "commands": 0, "monitor_errors": 0, "skipped": 0, "alerts_not_resent": 0,
                "dead_letters_not_resent": 0}
    app.driftline_counters = counters  # type: ignore[attr-defined]
    app.driftline_registry = registry  # type: ignore[attr-defined]

    async def dead_letter(event: Any, rejected: Rejected) -> Awaitable[Any]:
        msg = event.message
        key = letter_id(rejected.stage, msg.topic, msg.partition, msg.offset, rejected.reason)
        if restorer.dead_letters.already_sent(key):
            # Read again after a restart: dead-lettered before (EmittedDeadLetters).
            counters["dead_letters_not_resent"] += 1
            log.info("dead letter %s is on the dead-letter topic already: not sent again", key)
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
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

    input_topics = frozenset(
        [topics.embeddings, topics.predictions, topics.labels, topics.control])
    restorer = StateRestorer(settings, registry, input_topics)
    app.driftline_restorer = restorer  # type: ignore[attr-defined]
    background: set[asyncio.Future[Any]] = set()

    def on_assigned(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        assigned: set[Any] = args[0]  # faust: receiver(app, assigned, signal=...)
        parts = {tp.partition for tp in assigned if tp.topic in input_topics}
        # (also: the dead-letter topic is read again)
        restorer.assign(parts, app.consumer_generation_id)
        ready_line("worker", [topics.frames, *sorted(input_topics)],
              f"{len(parts)} of {settings.partitions} partitions assigned; {calibrating}")
        if parts:
            # Start reading now; the monitor agent waits for it before applying
            # an event of a partition that is not restored yet.
            task = asyncio.ensure_future(restorer.ensure(parts))
            background.add(task)
            task.add_done_callback(background.discard)
            task.add_done_callback(_log_failure)

    def on_revoked(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        revoked: set[Any] = args[0]
        # faust has waited for the batch in flight to be acked, i.e. for its
        # snapshots to be delivered: nothing to flush here.
        log.info("partitions revoked: %d", len(revoked))

    # (mode's signal types do not accept a plain receiver under mypy.)
    app.on_partitions_assigned.connect(cast(Any, on_assigned))
    app.on_partitions_revoked.connect(cast(Any, on_revoked))

    @app.agent(frames_in)
    async def embed_frames(stream: Any) -> None:
        loop = asyncio.get_running_loop()
        # Load the model off the event loop before the first batch.
        await loop.run_in_executor(executor, lambda: router.pipeline)
        wait = settings.embedder.batch_wait_ms / 1000.0 or 0.001
        async for events in stream.take_events(settings.embedder.batch_size, within=wait):
            await restorer.ensure_dead_letters()
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
            for stage, seconds in router.pipeline.timings.items():
                metrics.observe_stage(stage, seconds)
            for ev, frame, res in zip(owners, frames, results, strict=True):
                routed = router.embedded(frame, res)
                for rejected in routed.rejected:
                    pending.append(await dead_letter(ev, rejected))
                # Embeddings and frame errors on one topic, keyed by stream: a
                # stream's monitor sees them in the order of its frames.
                # The frame's position travels with its embedding: a frame embedded
                # again after a crash of this agent gives a second embedding event
                # (another offset), which the monitor skips by this origin.
                origin = f"{input_key(ev.message.topic, ev.message.partition)}@{ev.message.offset}"
                for out in routed.embedded:
                    pending.append(
                        await embeddings_out.send(key=frame.stream_id.encode(), value=encode(out),
                                                  headers={ORIGIN_HEADER: origin.encode()})
                    )
                counters["embeddings"] += not routed.rejected
            log.info("embedded %d frames", len(frames))
            # Delivered before this batch is acked, or a crash would lose embeddings.
            await asyncio.gather(*pending)
            metrics.count_out(topics.embeddings, len(owners))

    # -- snapshots: per stream, every STATE_EVERY of its events or STATE_INTERVAL_S --
    #
    # Invariant (what makes a stream's state exactly once): an input event is
    # acked -- and faust commits only offsets below the first unacked one --
    # only once (1) every output it caused (alerts, dead letters) is delivered
    # and then (2) a delivered snapshot of every monitor it changed covers it.
    # So the committed offset never passes an event that no snapshot holds;
    # what a restart reads again is either in its stream's snapshot (skipped
    # by position) or not (applied again, exactly as the first time). (1)
    # before (2): a snapshot delivered before an alert it covers, then a
    # crash, would skip the firing event on restart and lose the alert.
    #
    # Acks are given in offset order per partition (``release``): faust's
    # commit of out-of-order acks can step over an unacked offset (its gap
    # check skips the offset right at the committed one, and every offset of
    # a partition not committed yet), so an event ready early waits for the
    # events before it in its partition.
    dirty: dict[tuple[str, str], tuple[StreamMonitor, list[Any], float]] = {}
    waiting: dict[int, int] = {}  # id(event) -> snapshots it still waits for
    in_order: dict[tuple[str, int], deque[Any]] = {}  # per partition, unacked events
    ready: set[int] = set()  # id(event): may be acked once those before it are
    state_lock = asyncio.Lock()

    def release() -> None:
        for queue in in_order.values():
            while queue and id(queue[0]) in ready:
                ev = queue.popleft()
                ready.discard(id(ev))
                ev.ack()

    def remember(mon: StreamMonitor, ev: Any) -> None:
        key = (mon.stream_id, mon.model_version)
        entry = dirty.get(key)
        if entry is None:
            entry = dirty[key] = (mon, [], time.monotonic())
        entry[1].append(ev)
        waiting[id(ev)] = waiting.get(id(ev), 0) + 1

    def snapshot_bytes(mon: StreamMonitor) -> bytes:
        state = mon.snapshot()
        value = encode(state)
        snapshot_observed(state, len(value))
        if len(value) <= STATE_MAX_BYTES:
            return value
        # Only during a PCA warm-up (the buffered vectors): rare, since warming
        # streams are not snapshotted by count or age (see ``due``).
        log.warning("snapshot of %s/%s is %d bytes during its PCA warm-up (%d vectors): sent "
                    "without them, so a restart before the warm-up ends warms it up again "
                    "and its next alerts may differ from replay's", mon.stream_id,
                    mon.model_version, len(value), mon.warming_vectors)
        return encode(mon.snapshot(warmup=False))

    async def flush(keys: list[tuple[str, str]]) -> None:
        """Snapshot these streams; ack the events whose last snapshot this was."""
        if not keys:
            return
        started = time.perf_counter()
        entries = [dirty.pop(k) for k in keys]
        await asyncio.gather(*[
            await state_out.send(key=f"{mon.stream_id}|{mon.model_version}".encode(),
                                 value=snapshot_bytes(mon),
                                 headers=positions_header(mon.positions))
            for mon, _, _ in entries])
        metrics.count_out(topics.state, len(entries))
        metrics.SNAPSHOT_SECONDS.observe(time.perf_counter() - started)
        for _, evs, _ in entries:
            for ev in evs:
                left = waiting[id(ev)] = waiting[id(ev)] - 1
                if left == 0:
                    del waiting[id(ev)]
                    ready.add(id(ev))
        release()

    last_seen: dict[tuple[str, str], int] = {}
    seen_clock = [0]

    async def evict_least_recently_seen() -> None:
        """Keep at most MAX_LIVE_MONITORS live: the others as compressed checkpoints.

        An evicted monitor is first snapshotted if it has unsnapshotted events
        (so the invariant holds), then kept packed in the registry until its
        stream's next event brings it back.
        """
        cap = settings.max_live_monitors
        live = registry.monitors
        if cap is None or len(live) <= cap:
            return
        victims = sorted(live, key=lambda k: last_seen.get(k, -1))[: len(live) - cap]
        for stream in {k[0] for k in victims}:
            # Packed with its detectors: else its next event calibrates inline.
            await calibrations.settle(stream)
        await flush([k for k in victims if k in dirty])
        for key in victims:
            registry.evict(key)
            last_seen.pop(key, None)
        log.info("evicted %d stream monitors (least recently seen; %d live, %d packed)",
                 len(victims), len(live), len(registry.evicted))

    def due(now: float, *, force: bool = False) -> list[tuple[str, str]]:
        # A stream in a PCA warm-up waits for its end (its checkpoint would
        # carry every buffered vector: megabytes at 1280 dimensions), unless a
        # rebalance waits for its events or it stalled for WARMUP_MAX_WAIT_S.
        return [k for k, (mon, evs, since) in dirty.items()
                if force
                or (mon.warming_vectors and now - since >= WARMUP_MAX_WAIT_S)
                or (not mon.warming_vectors
                    and (len(evs) >= settings.state_every
                         or now - since >= settings.state_interval_s))]

    @app.timer(interval=1.0)
    async def flush_idle_streams() -> None:
        # Streams that stopped sending are snapshotted (and their events acked)
        # STATE_INTERVAL_S after their first unsnapshotted event. A rebalance
        # waits for every event in flight to be acked: all are flushed then.
        async with state_lock:
            calibrations.install_done()  # snapshots show the detectors that are ready
            await flush(due(time.monotonic(), force=bool(app.rebalancing)))
        await sample(app, registry, input_topics | {topics.frames},
                     min((since for _, _, since in dirty.values()), default=None))

    async def drain() -> None:
        # faust's stop waits for every event in flight to be acked (wait_empty) but
        # stops the timers first: without this, an event applied and not yet in a
        # snapshot kept a stopping worker waiting for good. Runs until the loop ends.
        try:
            while True:
                async with state_lock:
                    if keys := due(time.monotonic(), force=True):
                        log.info("stopping: snapshotting %d streams with applied events",
                                 len(keys))
                    await flush(keys)
                await asyncio.sleep(0.2)
        except Exception as exc:  # the producer stopped: what is left is read again
            log.warning("stopping: snapshots not sent (%r); their events are read again "
                        "after a restart", exc)

    def drain_on_stop() -> None:
        task = asyncio.ensure_future(drain())
        background.add(task)
        task.add_done_callback(background.discard)

    app.driftline_drain = drain_on_stop  # type: ignore[attr-defined]

    @app.timer(interval=1.0)
    async def check_silent_cameras() -> None:
        # camera.silent: streams of the partitions held here, quiet for SILENT_AFTER_S
        # of wall clock (processors.monitor.camera_health; replay has no such check).
        async with state_lock:
            alerts = router.health.silent(settings.silent_after_s, restorer.assigned)
            # A silence alerted before a restart is alerted again (same id): not re-sent.
            alerts = [a for a in alerts
                      if not restorer.emitted.already_sent(a.stream_id, emitted_key(a))]
            for alert in alerts:
                counters["alerts"] += 1
                metrics.count_alert(alert.signal)
                log.warning("ALERT %s", alert.message)
            await asyncio.gather(*[await alerts_out.send(key=a.stream_id.encode(),
                                                         value=encode(a)) for a in alerts])

    @app.agent(monitor_in)
    async def monitor_events(stream: Any) -> None:
        # noack_take: this agent acks each event itself (see the invariant above).
        async for events in stream.noack_take(MONITOR_BATCH, within=0.5):
            # A stream's monitor is restored before any of its events is
            # applied, or a fresh monitor would apply them and then be
            # replaced by (or replace) its snapshot.
            await restorer.ensure({ev.message.partition for ev in events})
            async with state_lock:
                try:
                    await apply_batch(events)
                except Exception as exc:
                    # Not a bad event (the router turns those into dead letters):
                    # an output that cannot be sent. Events of this batch would
                    # stay unacked for good (a stuck commit, a rebalance that
                    # waits forever): stop, and let a restart read them again.
                    log.critical("monitor batch failed: %r; stopping the worker (a restart "
                                 "resumes from the committed offsets)", exc)
                    await app.crash(exc)
                    raise

    async def apply_batch(events: list[Any]) -> None:
        outputs = []
        free = []  # events that changed no monitor: acked once their outputs are out
        by_topic: dict[str, int] = {}
        started = time.perf_counter()
        fired = 0
        for ev in events:
            msg = ev.message
            in_order.setdefault((msg.topic, msg.partition), deque()).append(ev)
            by_topic[msg.topic] = by_topic.get(msg.topic, 0) + 1
            source = Source.CONTROL if msg.topic == topics.control else Source.INPUTS
            # Skipped (no change, no output) if the stream's monitor already
            # applied this offset: a restart resumes from the committed
            # offset, which may lie behind the restored snapshot.
            here = (input_key(msg.topic, msg.partition), msg.offset)
            origin = origin_of(msg.headers) if msg.topic == topics.embeddings else None
            event = decode_timed(router, ev.value, source)
            if isinstance(event, Routed):  # not an event: its rejection
                routed = event
            else:
                # The stream's pending calibrations are installed before its
                # event is applied (awaited if a child is still computing one:
                # the loop runs on), so its detectors see the values they see
                # in replay, which calibrates inline. Then the event's new ones
                # go to the pool.
                stream = getattr(event, "stream_id", None)
                if isinstance(stream, str):
                    await calibrations.settle(stream)
                routed = apply_timed(router, event, source,
                                     here if origin is None else (here, origin))
                calibrations.submit(routed.touched)
            if routed.skipped:
                counters["skipped"] += 1
            for rejected in routed.rejected:
                outputs.append(await dead_letter(ev, rejected))
            if routed.command is not None and not routed.skipped:
                counters["commands"] += 1
                for mon, names in routed.applied:
                    log.info("command %s: %s/%s re-referenced %s", routed.command.command_id,
                             mon.stream_id, mon.model_version, names)
            elif routed.touched:
                counters["events"] += 1
            for alert in routed.alerts:
                if restorer.emitted.already_sent(alert.stream_id, emitted_key(alert)):
                    # Fired again by an event applied again after a restore; it
                    # was delivered before the crash (EmittedAlerts).
                    counters["alerts_not_resent"] += 1
                    log.info("alert %s is on the alerts topic already (sent before a "
                             "restart): not sent again", alert.alert_id)
                    continue
                counters["alerts"] += 1
                fired += 1
                metrics.count_alert(alert.signal, alert.severity, alert.stream_id)
                log.info("ALERT %s", alert.message)
                outputs.append(
                    await alerts_out.send(key=alert.stream_id.encode(), value=encode(alert)))
            for mon in {id(m): m for m in routed.touched}.values():
                remember(mon, ev)
                seen_clock[0] += 1
                last_seen[(mon.stream_id, mon.model_version)] = seen_clock[0]
            if not routed.touched:
                free.append(ev)
        # (1) outputs delivered, (2) then the snapshots that cover their events.
        sent = time.perf_counter()
        await asyncio.gather(*outputs)
        if outputs:
            metrics.observe_stage("produce", time.perf_counter() - sent)
        ready.update(id(ev) for ev in free)
        release()
        calibrations.install_done()  # snapshots show the detectors that are ready
        await flush(due(time.monotonic()))
        await evict_least_recently_seen()
        metrics.observe_processing("monitor", time.perf_counter() - started)
        for topic, n in by_topic.items():
            metrics.count_in(topic, n)
        metrics.count_out(topics.alerts, fired)
        log.info("monitor batch: %s applied %d skipped %d", by_topic, counters["events"],
                 counters["skipped"])

    return app


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("state restore failed: %r (retried before the next batch)", task.exception())


def _stopped_before_start() -> bool:
    """Whether a stop signal came before anything started (then said on stderr)."""
    sig = early_stop.requested()
    if sig is None:
        return False
    service_logging()  # faust's logging is not set up yet
    log.warning("stopped by %s during start-up, before consuming anything: nothing to "
                "snapshot", sig.name)
    return True


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run a worker in the foreground until interrupted (``driftline worker``).

    With ``DRIFTLINE_METRICS_PORT`` set, Prometheus metrics are served on it.
    A SIGTERM or SIGINT before faust's handlers is not fatal (``driftline.early_stop``):
    it returns before anything started, or faust stops as on any later signal.
    """
    if _stopped_before_start():  # a signal during the imports
        return
    # Without a broker: one line (the CLI prints it), not faust's traceback.
    require_broker(settings.bootstrap_servers, client_options(settings))
    # The last check before something starts (calibration children, the metrics
    # server, faust): a signal from here on is handed to faust's stop by
    # BoundedWorker once faust's handlers are in place.
    if _stopped_before_start():
        return
    # One BLAS thread: a monitor's numpy work is small per-stream matrices
    # (a 200x512 SVD per PCA warm-up), and parallelism comes from workers and
    # partitions. OpenBLAS's own threads spin against the event loop: the SVD
    # took 490 ms of CPU instead of 13 ms on the shared 2-core machine.
    threadpool_limits(1, user_api="blas")
    app = build_app(settings)
    quiet_aiokafka(settings.bootstrap_servers)  # a lost broker: one line per change
    metrics.serve_metrics(settings.metrics_port)
    # A stop snapshots what is applied (so its offsets commit), is bounded
    # (DRIFTLINE_SHUTDOWN_GRACE_S), and a restore nothing waits for any more gives up.
    restorer: StateRestorer = app.driftline_restorer  # type: ignore[attr-defined]
    worker = BoundedWorker(app, grace_s=settings.shutdown_grace_s,
                           on_signal=(app.driftline_drain,),  # type: ignore[attr-defined]
                           on_exit=(restorer.stop,
                                    app.driftline_calibrations.close),  # type: ignore[attr-defined]
                           loglevel=loglevel, quiet=True)
    # faust's progress spinner sets the root logger to DEBUG at loglevel
    # warning and above: every debug call of faust and aiokafka (one per
    # produced message, with its value's repr) was then formatted and
    # redacted, ~40% of the worker's CPU (bench/bench_e2e.py, py-spy).
    worker.spinner = None
    worker.execute_from_commandline()
