"""Workers killed with SIGKILL and streams moved between workers: every event counts once.

A recording of several streams is published (paced, so that workers are
killed and join while input still arrives) to a real broker and consumed by
real ``driftline worker`` processes:

- edge streams: ``Prediction`` events with ``embedding`` vectors, on the
  predictions topic; two drift (flatter confidence, shifted embeddings);
- an embedding stream on the embeddings topic, whose brightness drops;
- a frame stream: each frame's embedding on the embeddings topic *and* its
  prediction on the predictions topic, under one stream id, so the worker
  sees them in another interleaving than the recording's order;
- a camera: JPEG frames of a simulated camera (``producers.simulated_camera``)
  on the frames topic, whose scene changes. The worker's embedder
  (``processors.frame_pipeline``, the packaged EfficientNet-Lite0) turns them
  into embedding events, as replay's does; a kill while a batch of frames is
  embedded makes the restarted worker embed them again (the monitor skips
  the second embedding of a frame by its origin header).

The embedding streams' vectors have the embedder's dimension (the worker
takes it from the model's manifest): the synthetic ones are 32-dimensional
AR(1) vectors lifted by a fixed random projection.

Bad events (``BAD_EVERY``: unparsable or invalid JSON on the predictions,
embeddings, labels and frames topics) are interleaved with the streams: each
must be on the dead-letter topic exactly once, whatever the kills (a
restored worker reads them again; ``processors.emitted_dead_letters``).

The sinks run too (``driftline sinks``: Redis and a webhook receiver that
runs the README's handler: it verifies each signature and processes each
``webhook-id`` once), and are SIGKILLed and restarted once mid-run.

Whatever the kills and rebalances, each stream's last snapshot on the state
topic has ``events_seen`` equal to the stream's number of input events, and
the alert ids equal the ones ``replay_lines`` gives for the same recording,
each exactly once, at three places: the alerts topic (records counted by
alert id), Redis (the streams' alert histories) and the webhook receiver
(what the README's receiver processed, by ``webhook-id``): 0 lost, 0
duplicated. Raw re-deliveries (the same ``webhook-id`` POSTed again by a sink
killed before its ledger write) are counted and printed apart. Each run
prints these counts (``pytest -s``). The kill points are drawn from a
seeded RNG (``DRIFTLINE_CHAOS_SEED`` to reproduce one; the seed is in the
failure message).

Time: the replay runs in a child process started when these tests are
collected (``tests/chaos/conftest.py``), so it overlaps the tests before
them; the three runs go at once, each on its own topics and consumer groups
(``chaos_runs``; each test waits for its run and raises its failure), which
fills the seconds a run waits on a group rebalance or a worker start with
another run's work; the state topic is watched incrementally; teardown
SIGKILLs what is left (the checks are done).
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from driftline.kafka_config import consumer_config
from driftline.local_infra import ensure_topics, settings_env
from driftline.settings import MonitorSettings, Settings, Topics
from processors.model_manifest import PACKAGED_MANIFEST, load_manifest
from processors.monitor import MonitorRegistry
from processors.replay import Fired, replay_lines
from processors.stream_app import key_partition
from producers.camera_events import camera_events
from producers.drift_injection import DriftSpec
from producers.publisher import Publisher
from schemas.events import Alert, DeadLetter, Embedding, Prediction, StreamState
from schemas.wire import decode_as, encode
from sinks.redis_state import history_key
from sinks.webhook_endpoints import message_id
from sinks.webhook_receiver import WebhookReceiver
from tests.integration.test_readme import receiver_snippet
from tests.unit.test_monitor import camera_like

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]

DIM = load_manifest(PACKAGED_MANIFEST).embedding_dim  # the embedder's (embedding topic)
EDGE_DIM = 12  # edge vectors have their own length
N = 400  # events (frames) per stream
CAMERA = "jpeg-0"  # the camera whose JPEG frames the worker embeds
CAMERA_FRAMES = 300  # PCA reference: frames 0-49; its signals' references: 50-99
SCENE_CHANGE_AT = 180
SECRET = "whsec_Y2hhb3Mtd29ya2VyLXNlY3JldA=="
BAD_EVERY = 80  # one bad event every this many lines of the recording
# ert and persistence pinned: the camera's frames carry real 10 fps stamps, the
# synthetic events none usable (the monitor falls back to these values for them).
MONITOR = MonitorSettings(reference_size=50, cooldown=50, class_mix_reference_size=100,
                          embedding_dim=DIM, ert=10_000, min_duration=0, global_min_duration=0)


def edge_stream(sid: str, seed: int, *, flat_at: int | None = None,
                shift_at: int | None = None) -> Iterator[Prediction]:
    """An edge device: AR(1) confidence, a sticky class mix, AR(1) embedding vectors."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=EDGE_DIM) + 2.0
    z, emb, cls = 0.0, np.zeros(EDGE_DIM), "car"
    for i in range(N):
        z = 0.85 * z + rng.normal() * np.sqrt(1 - 0.85**2)
        emb = 0.85 * emb + rng.normal(size=EDGE_DIM) * 0.2
        conf = float(np.clip(0.7 + 0.05 * z, 0.05, 0.99))
        if flat_at is not None and i >= flat_at:
            conf = 0.35
        if rng.random() < 0.2:
            cls = str(rng.choice(["car", "bus", "person"], p=[0.6, 0.1, 0.3]))
        vec = base + emb
        if shift_at is not None and i >= shift_at:
            vec[: EDGE_DIM // 2] += 3.0  # the scene changed
        rest = (1 - conf) / 3
        yield Prediction(event_id=f"{sid}-p{i}", stream_id=sid, model_version="v1",
                         frame_index=i, frame_id=f"{sid}-f{i}", top_class=cls, confidence=conf,
                         scores={cls: conf, "a": rest, "b": rest, "c": rest},
                         embedding=[float(x) for x in vec])


def lifted(events: Iterator[Embedding], seed: int) -> Iterator[Embedding]:
    """``camera_like``'s vectors in ``DIM`` dimensions: a fixed random projection, plus noise."""
    rng = np.random.default_rng(seed)
    projection: np.ndarray | None = None
    for e in events:
        if projection is None:
            projection = rng.normal(size=(DIM, len(e.vector))) / np.sqrt(len(e.vector))
        vec = projection @ np.asarray(e.vector) + rng.normal(size=DIM) * 0.05
        yield e.model_copy(update={"vector": [round(float(x), 4) for x in vec]})


@functools.cache
def recording() -> tuple[list[tuple[str, bytes, bytes]], dict[str, int]]:
    """(topic kind, key, value) lines, streams interleaved; and events per stream."""
    streams: dict[str, list[tuple[str, bytes]]] = {}
    # Names chosen to spread over two partitions (librdkafka: CRC32 of the key):
    # edge-0, edge-1, emb-0 and jpeg-0 on one, edge-4, edge-5 and frame-0 on the other.
    drifts = {"edge-0": (250, None), "edge-1": (None, 220), "edge-4": (180, 300),
              "edge-5": (None, None)}
    for j, (sid, (flat, shift)) in enumerate(drifts.items()):
        streams[sid] = [("predictions", encode(p))
                        for p in edge_stream(sid, 10 + j, flat_at=flat, shift_at=shift)]
    streams["emb-0"] = [
        ("embeddings", encode(e.model_copy(update={"stream_id": "emb-0",
                                                    "event_id": f"emb-0-{e.event_id}"})))
        for e in lifted(camera_like(N, seed=3, shift_at=250, dark=25.0), seed=30)]
    frames: list[tuple[str, bytes]] = []
    preds = edge_stream("frame-0", 20, flat_at=300)
    for e, p in zip(lifted(camera_like(N, seed=4, shift_at=280, dark=25.0), seed=40), preds,
                    strict=True):
        frames.append(("embeddings", encode(e.model_copy(update={
            "stream_id": "frame-0", "event_id": f"frame-0-e{e.frame_index}",
            "frame_id": f"frame-0-f{e.frame_index}"}))))
        frames.append(("predictions", encode(p.model_copy(update={"embedding": None}))))
    streams["frame-0"] = frames
    # Each frame is one monitor event: its embedding, made by the worker's embedder.
    streams[CAMERA] = [("frames", encode(ce.event)) for ce in camera_events(
        stream_id=CAMERA, frames=CAMERA_FRAMES, scene="coffee", seed=7, size=(160, 120),
        drift=DriftSpec("scene_change", onset=SCENE_CHANGE_AT))]
    counts = {sid: len(lines) for sid, lines in streams.items()}
    out: list[tuple[str, bytes, bytes]] = []
    iters = {sid: iter(lines) for sid, lines in streams.items()}
    while iters:
        for sid in list(iters):
            for _ in range(2 if sid == "frame-0" else 1):
                item = next(iters[sid], None)
                if item is None:
                    del iters[sid]
                    break
                out.append((item[0], sid.encode(), item[1]))
    return with_bad_events(out), counts


def bad_event(n: int) -> tuple[str, bytes, bytes]:
    """The ``n``-th bad event: (topic kind, key, value), on a stream's key (its partition)."""
    kind = ["predictions", "embeddings", "labels", "frames"][n % 4]
    key = ["edge-0", "edge-4", "emb-0", "frame-0", "jpeg-0"][n % 5].encode()
    value = (f'{{"kind": "prediction", "event_id": "bad-{n}", "stream_id": "{key.decode()}"'
             if n % 2 else f'{{"kind": "label", "event_id": "bad-{n}"}}').encode()
    return kind, key, value


def with_bad_events(lines: list[tuple[str, bytes, bytes]]) -> list[tuple[str, bytes, bytes]]:
    out: list[tuple[str, bytes, bytes]] = []
    for i, line in enumerate(lines):
        if i and i % BAD_EVERY == 0:
            out.append(bad_event(i // BAD_EVERY))
        out.append(line)
    return out


def describe(a: Alert) -> str:
    return (f"{a.stream_id} {a.signal} #{a.detected_index} {a.detected_event_id}"
            + ("" if a.lifecycle == "firing" else f" {a.lifecycle}"))


@functools.cache
def replay_alerts() -> dict[str, Alert]:
    """Message id -> alert event, from ``replay_lines`` over the recording (frames embedded here).

    The message id (``webhook-id``) is the alert id for a firing alert and
    ``<alert id>.<lifecycle>`` for its later lifecycle events (an alert that
    resolves is two records on the alerts topic, under one alert id).
    """
    lines, _ = recording()
    return {message_id(item.alert): item.alert
            for item in replay_lines([v for _, _, v in lines], registry=MonitorRegistry(MONITOR))
            if isinstance(item, Fired)}


@functools.cache
def replay_in_background() -> Future[dict[str, Alert]]:
    """``replay_alerts`` in a child process (started once; ``tests/conftest.py``)."""
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    future = pool.submit(replay_alerts)
    pool.shutdown(wait=False)  # the child finishes its one job, then exits
    return future


def shared_replay() -> Future[dict[str, Alert]]:
    """The replay ``tests/conftest.py`` started at collection, or a new one.

    pytest imports this file as ``test_worker_chaos`` while the collection hook
    imports ``tests.chaos.test_worker_chaos``: two module objects, two caches.
    Asking the latter finds the replay already running instead of starting a
    second one.
    """
    from tests.chaos.test_worker_chaos import replay_in_background as started

    return started()


class Worker:
    """A ``driftline worker`` (or ``driftline sinks``) child process with its log."""

    def __init__(self, env: dict[str, str], log: Path, command: str = "worker") -> None:
        self.log = log
        cmd = [sys.executable, "-m", "driftline", command]
        if command == "worker":
            cmd += ["--loglevel", "info"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)

    def applied(self) -> int:
        """Events this process applied so far (its last "monitor batch" log line)."""
        found = re.findall(r"monitor batch: .* applied (\d+) skipped", self.log.read_text())
        return int(found[-1]) if found else 0

    def embedded(self) -> int:
        """Frames this process embedded so far (its "embedded N frames" log lines)."""
        return sum(map(int, re.findall(r"embedded (\d+) frames", self.log.read_text())))

    def alerts(self) -> int:
        """Alerts this process sent so far (its "ALERT" log lines)."""
        return self.log.read_text().count("] ALERT ")

    def not_resent(self) -> int:
        """Alerts fired again after a restore and not produced again (already on the topic)."""
        return self.log.read_text().count("not sent again")

    def dead_letters_not_resent(self) -> int:
        """Bad events read again after a restore and not dead-lettered again."""
        return self.log.read_text().count("on the dead-letter topic already")

    def kill_after_next_alert(self, timeout_s: float = 30.0) -> None:
        """SIGKILL just after this worker's next alert: delivered, its snapshot not yet sent."""
        before = self.alerts()
        deadline = time.monotonic() + timeout_s
        while self.alerts() == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # its delivery (the snapshot covering it waits STATE_EVERY events)
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def wait_for(cond: Callable[[], object], timeout_s: float, what: str,
             context: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}\n{context()}")


def count(ids: list[str], expected: set[str]) -> dict[str, int]:
    """Records, distinct ids, lost (expected, absent) and duplicated (records beyond the first)."""
    seen = Counter(ids)
    return {"records": len(ids), "distinct": len(seen), "lost": len(expected - set(seen)),
            "extra": len(set(seen) - expected),
            "duplicated": sum(n - 1 for n in seen.values())}


def read_all(broker: str, topic: str, quiet_s: float = 2.0) -> list[bytes]:
    """Every record of ``topic`` (until no record came for ``quiet_s``)."""
    c = Consumer(consumer_config(broker, f"reader-{uuid.uuid4().hex[:8]}"))
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out: list[bytes] = []
        last = time.monotonic()
        while time.monotonic() - last < quiet_s:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            out.append(m.value() or b"")
            last = time.monotonic()
        return out
    finally:
        c.close()


class StateWatcher:
    """Each stream's latest ``events_seen`` on the state topic, read incrementally.

    One consumer for the whole wait: every poll reads only the snapshots
    sent since the last one (rereading the whole state topic each time
    cost the worker CPU it needed).
    """

    def __init__(self, settings: Settings) -> None:
        self.consumer = Consumer(consumer_config(settings.bootstrap_servers,
                                                 f"watch-{uuid.uuid4().hex[:8]}"))
        topic = settings.topics.state
        parts = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])

    def read_new(self, quiet_s: float = 0.5) -> dict[str, int]:
        """``{stream: events_seen}`` of the snapshots that arrived since the last call."""
        out: dict[str, int] = {}
        last = time.monotonic()
        while time.monotonic() - last < quiet_s:
            m = self.consumer.poll(0.1)
            if m is None or m.error():
                continue
            state = json.loads(m.value() or b"{}")
            out[state["stream_id"]] = state["events_seen"]
            last = time.monotonic()
        return out

    def close(self) -> None:
        self.consumer.close()


class Run:
    """One chaos run: the recording, its replay, paced publishing, workers, and the checks."""

    def __init__(self, settings: Settings, tmp_path: Path, publish_s: float,
                 name: str = "") -> None:
        self.name = name
        self.settings = settings
        self.tmp_path = tmp_path
        self.seed = int(os.environ.get("DRIFTLINE_CHAOS_SEED") or random.randrange(1 << 30))
        self.rng = random.Random(self.seed)
        self.lines, self.counts = recording()
        self.total = len(self.lines)
        self.replayed = shared_replay().result()
        self.expected = {k: describe(a) for k, a in self.replayed.items()}
        assert len(self.expected) >= 5, "the recording must alert"
        # The camera's alerts include the embedder's own signals: its vectors
        # are what the worker and replay must agree on.
        assert any(a.stream_id == CAMERA and a.signal.startswith("embedding.")
                   for a in self.replayed.values()), sorted(self.expected.values())
        # The broker, Redis, prefix, group and partitions of ``settings`` (settings_env).
        self.env = settings_env(settings)
        self.env.update(
            DRIFTLINE_MONITOR__REFERENCE_SIZE=str(MONITOR.reference_size),
            DRIFTLINE_MONITOR__COOLDOWN=str(MONITOR.cooldown),
            DRIFTLINE_MONITOR__CLASS_MIX_REFERENCE_SIZE=str(MONITOR.class_mix_reference_size),
            DRIFTLINE_MONITOR__EMBEDDING_DIM=str(DIM),
            DRIFTLINE_MONITOR__ERT=str(MONITOR.ert),
            DRIFTLINE_MONITOR__MIN_DURATION=str(MONITOR.min_duration),
            DRIFTLINE_MONITOR__GLOBAL_MIN_DURATION=str(MONITOR.global_min_duration),
            # No camera.silent (replay has none): the camera's frames end before
            # the others, and a slow finish must not make the worker report it.
            DRIFTLINE_SILENT_AFTER_S="0",
        )
        self.workers: list[Worker] = []
        # The README's receiver, as is: it verifies, then processes each webhook-id once.
        readme = receiver_snippet()
        self.processed: list[str] = []
        self.receiver = WebhookReceiver(respond=lambda headers, body: readme["handle"](
            SECRET, headers, body, lambda alert: self.processed.append(headers["webhook-id"])))
        self.sinks_env = dict(self.env, DRIFTLINE_WEBHOOK_URL=self.receiver.url,
                              DRIFTLINE_WEBHOOK_SECRET=SECRET)
        self.sinks: list[Worker] = []
        self.published = 0
        # (fraction, event): publishing stops at the fraction until the event is set.
        self.gates: list[tuple[float, threading.Event]] = []
        self._publisher = threading.Thread(target=self._publish, args=(publish_s,), daemon=True)

    def context(self) -> str:
        tails = "\n".join(f"--- {w.log.stem} ---\n" + w.log.read_text()[-2500:]
                          for w in self.workers + self.sinks)
        return f"{self.name} seed {self.seed}\n{tails}"

    def _publish(self, seconds: float) -> None:
        topics = {"predictions": self.settings.topics.predictions,
                  "embeddings": self.settings.topics.embeddings,
                  "labels": self.settings.topics.labels,
                  "frames": self.settings.topics.frames}
        chunk = 100
        with Publisher(self.settings.bootstrap_servers) as pub:
            for i in range(0, self.total, chunk):
                for frac, gate in self.gates:
                    if i >= frac * self.total:
                        gate.wait(300)
                for kind, key, value in self.lines[i:i + chunk]:
                    pub.publish_raw(topics[kind], key, value)
                pub.flush()
                self.published = min(i + chunk, self.total)
                time.sleep(seconds * chunk / self.total)

    def start_publishing(self) -> None:
        self._publisher.start()

    def hold_at(self, frac: float) -> threading.Event:
        """Publishing stops at ``frac`` of the input until the returned event is set.

        Workers start slowly on a loaded machine; a gate keeps input arriving
        across each step of a scenario instead of racing it.
        """
        gate = threading.Event()
        self.gates.append((frac, gate))
        return gate

    def spawn(self) -> Worker:
        w = Worker(self.env, self.tmp_path / f"worker-{len(self.workers)}.log")
        self.workers.append(w)
        return w

    def applied(self) -> int:
        return sum(w.applied() for w in self.workers)

    def start_sinks(self) -> Worker:
        w = Worker(self.sinks_env, self.tmp_path / f"sinks-{len(self.sinks)}.log", "sinks")
        self.sinks.append(w)
        return w

    def restart_sinks_at(self, frac: float) -> None:
        """SIGKILL the sinks once ``frac`` of the input was applied, and start them again."""
        wait_for(lambda: self.applied() >= frac * self.total, 300, f"{frac:.0%} applied",
                 self.context)
        self.sinks[-1].kill()
        self.start_sinks()

    def redis_ids(self) -> list[str]:
        """Alert ids in the streams' Redis histories (one entry per stored alert)."""
        client: Any = redis.Redis.from_url(self.settings.redis_url, decode_responses=True)
        try:
            return [fields["alert_id"] for sid in self.counts
                    for _, fields in client.xrange(history_key(sid, self.settings.topic_prefix))]
        finally:
            client.close()

    def webhook_ids(self) -> list[str]:
        """``webhook-id`` of every delivery the README's receiver processed."""
        return list(self.processed)

    def raw_webhook_ids(self) -> list[str]:
        """``webhook-id`` of every delivery answered 2xx (re-deliveries included)."""
        return [d.webhook_id for d in self.receiver.accepted()]

    @property
    def rejected(self) -> int:
        """Deliveries the README's receiver refused (401: a bad signature)."""
        return sum(d.status == 401 for d in self.receiver.requests)

    def dead_letters(self) -> dict[str, int]:
        """Bad events vs the dead-letter topic: each must be there exactly once."""
        letters = [decode_as(DeadLetter, v) for v in
                   read_all(self.settings.bootstrap_servers, self.settings.topics.dead_letter)]
        bad = {v for _, _, v in self.lines if b'"event_id": "bad-' in v}
        where = Counter((d.source_topic, d.source_partition, d.source_offset) for d in letters)
        originals = Counter(d.original for d in letters)
        return {"bad events": len(bad), "dead letters": len(letters), "unique": len(where),
                "duplicated": sum(n - 1 for n in where.values()),
                "lost": len(bad - set(originals)), "other": len(set(originals) - bad)}

    def finish(self) -> None:
        """Wait until every stream's snapshot counts all its events, then check the alerts."""
        self._publisher.join(60)
        assert self.published == self.total
        last: dict[str, int] = {}
        watcher = StateWatcher(self.settings)

        def complete() -> bool:
            last.update(watcher.read_new())
            return all(last.get(sid, 0) >= n for sid, n in self.counts.items())

        deadline = time.monotonic() + 300
        try:
            while not complete() and time.monotonic() < deadline:
                time.sleep(1.0)
        finally:
            watcher.close()
        # Exactly once: no stream short of its input (lost) and none beyond it (twice).
        assert last == self.counts, self.history(
            [sid for sid, n in self.counts.items() if last.get(sid) != n]) + self.context()
        records = [decode_as(Alert, v) for v in
                   read_all(self.settings.bootstrap_servers, self.settings.topics.alerts)]
        got = {message_id(a): describe(a) for a in records}
        missing = sorted(v for k, v in self.expected.items() if k not in got)
        extra = sorted(v for k, v in got.items() if k not in self.expected)
        assert set(got) == set(self.expected), (
            f"missing {missing}\nextra {extra}\n" + self.context())
        expected = set(self.expected)
        # Redis histories hold alerts (firing), once each; lifecycle events update them.
        firing = {a.alert_id for a in self.replayed.values() if a.lifecycle == "firing"}
        # The sinks catch up (a restarted sink waits for its old member's session to end).
        wait_for(lambda: firing <= set(self.redis_ids()) and expected <= set(self.webhook_ids()),
                 180, "every alert in Redis and at the webhook receiver",
                 lambda: f"redis {count(self.redis_ids(), firing)} "
                         f"webhook {count(self.webhook_ids(), expected)}\n" + self.context())
        time.sleep(2.0)  # a late duplicate would arrive now
        ids = {"topic": [message_id(a) for a in records], "redis": self.redis_ids(),
               "webhook": self.webhook_ids()}
        raw = count(self.raw_webhook_ids(), expected)
        letters = self.dead_letters()
        wanted = {"topic": expected, "redis": firing, "webhook": expected}
        counts = {where: count(got_ids, wanted[where]) for where, got_ids in ids.items()}
        print(f"\nchaos {self.name} seed {self.seed}: events per stream {last} "
              f"(input {self.counts}); "
              f"alert events expected (replay) {len(expected)}, of which firing {len(firing)}; "
              + "; ".join(f"{where} {c}" for where, c in counts.items())
              + f"; worker restarts {len(self.workers) - 1}, sink restarts {len(self.sinks) - 1}"
              + f"; alerts fired again after a restore and not re-sent "
                f"{sum(w.not_resent() for w in self.workers)}"
              + f"; raw webhook deliveries {raw} (re-deliveries: a sink killed before its "
                f"ledger write; same webhook-id, not processed again)"
              + f"; dead letters {letters}, not dead-lettered again after a restore "
                f"{sum(w.dead_letters_not_resent() for w in self.workers)}"
              + f"; webhook signatures rejected {self.rejected}"
              + f"; frames embedded {sum(w.embedded() for w in self.workers)} "
                f"(of {self.counts[CAMERA]}; more: embedded again after a kill or a move)")
        for sid, n in self.counts.items():
            mine = {k for k, a in self.replayed.items() if a.stream_id == sid}
            per_place = {where: mine & wanted[where] for where in ids}
            print(f"  {self.name} {sid}: input {n}, events_seen {last.get(sid)}, "
                  f"alert events (replay) {len(mine)}; " + "; ".join(
                      f"{w} {count([i for i in found if i in per_place[w]], per_place[w])}"
                      for w, found in ids.items()))
        # Processed once each: a sink killed after the receiver's 2xx and before
        # its ledger write (sinks.webhook_ledger) POSTs that alert again, same
        # webhook-id, and the README's receiver does not process it again.
        for where, c in counts.items():
            assert c["lost"] == 0 and c["duplicated"] == 0 and c["extra"] == 0, (
                f"{where}: {c}\n" + self.context())
        assert raw["lost"] == 0 and raw["extra"] == 0, raw
        assert self.rejected == 0
        assert letters["lost"] == letters["duplicated"] == letters["other"] == 0, (
            f"{letters}\n" + self.context())
        assert letters["unique"] == letters["bad events"]

    def history(self, streams: list[str]) -> str:
        """The snapshots of these streams, in order: (events seen, positions)."""
        out = []
        for v in read_all(self.settings.bootstrap_servers, self.settings.topics.state):
            st = decode_as(StreamState, v)
            if st.stream_id in streams:
                out.append(f"{st.stream_id} {st.events_seen} {st.monitor.get('positions')}")
        return "\n".join(out[-40:]) + "\n"

    def stop(self) -> None:
        # The checks are done: nothing to shut down gracefully.
        for w in self.workers + self.sinks:
            w.kill()
        self.receiver.close()


# The three runs go at once, each on its own topics (a worker is one process,
# mostly on one core, and idle while its group rebalances): three test
# results, the same checks as when they ran one after the other.
KILLED_TWICE = {
    "all-live": (20.0, {}),
    # 6 streams, 2 live: monitors are evicted and brought back all the time.
    "2-live": (20.0, {"DRIFTLINE_MAX_LIVE_MONITORS": "2"}),
}
JOIN = "join"


def killed_twice(run: Run) -> None:
    """The worker killed twice (once right after an alert, with the sinks), then restarted."""
    kill_at = sorted([run.rng.uniform(0.2, 0.45), run.rng.uniform(0.55, 0.8)])
    run.start_sinks()
    run.start_publishing()
    for i, frac in enumerate(kill_at):
        w = run.spawn()
        wait_for(lambda f=frac: run.applied() >= f * run.total, 300,  # type: ignore[misc]
                 f"{frac:.0%} applied", run.context)
        if i == 0:
            # Right after an alert: the restarted worker applies its firing
            # event again and must not produce the alert a second time.
            w.kill_after_next_alert()
            run.sinks[-1].kill()  # the sinks too, mid-delivery of whatever is in flight
            run.start_sinks()
        else:
            w.kill()  # SIGKILL at a random point
    final = run.spawn()
    run.finish()
    log = final.log.read_text()
    assert re.search(r"restored \d+ stream monitors from \d+ partitions", log), run.context()


class InBackground:
    """A run in a thread; its exception, if any, is raised by its test."""

    def __init__(self, run: Run, body: Callable[[Run], None]) -> None:
        self.run = run
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._go, args=(body,), daemon=True)

    def _go(self, body: Callable[[Run], None]) -> None:
        try:
            body(self.run)
        except BaseException as exc:
            self.error = exc

    def result(self, timeout_s: float) -> None:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"still running\n{self.run.context()}"
        if self.error is not None:
            raise self.error


@pytest.fixture(scope="module")
def chaos_runs(
    broker: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[dict[str, InBackground]]:
    """The selected runs, started together the first time a test asks for one."""
    selected = " ".join(item.nodeid for item in request.session.items)
    runs = {}
    scenarios: dict[str, tuple[float, dict[str, str], Callable[[Run], None]]] = {
        name: (publish_s, env, killed_twice) for name, (publish_s, env) in KILLED_TWICE.items()}
    scenarios[JOIN] = (40.0, {}, joins_and_killed)
    for name, (publish_s, env, body) in scenarios.items():
        test = ("test_a_worker_joins" if name == JOIN
                else f"test_worker_killed_twice_applies_every_event_once[{name}]")
        if test not in selected:
            continue
        prefix = f"t-chaos-{name}-{uuid.uuid4().hex[:8]}"
        ensure_topics(broker, Topics(prefix=prefix), 2)
        tmp = tmp_path_factory.mktemp(f"chaos-{name}")
        settings = Settings(bootstrap_servers=broker, redis_url=redis_url, topic_prefix=prefix,
                            partitions=2, consumer_group=f"{prefix}.g", data_dir=tmp / "data")
        r = Run(settings, tmp, publish_s=publish_s, name=name)
        r.env.update(env)
        runs[name] = InBackground(r, body)
    for b in runs.values():
        b.thread.start()
    yield runs
    for b in runs.values():
        b.thread.join(30)
        b.run.stop()


@pytest.mark.parametrize("name", list(KILLED_TWICE))
def test_worker_killed_twice_applies_every_event_once(
    chaos_runs: dict[str, InBackground], name: str,
) -> None:
    chaos_runs[name].result(timeout_s=1200)


def joins_and_killed(run: Run) -> None:
    """A second worker joins mid-run; the first is killed right after an alert."""
    join_at, kill_at = sorted([run.rng.uniform(0.15, 0.3), run.rng.uniform(0.45, 0.6)])
    joined = run.hold_at(join_at + 0.1)
    killed = run.hold_at(0.8)
    run.start_sinks()
    run.start_publishing()
    first = run.spawn()
    wait_for(lambda: run.applied() >= join_at * run.total, 300, f"{join_at:.0%} applied",
             run.context)
    second = run.spawn()
    wait_for(lambda: "restored" in second.log.read_text(), 300, "the second worker restores",
             run.context)
    joined.set()
    # The second worker got partitions of its own, restored their streams and went on.
    wait_for(lambda: second.applied() > 0, 300, "the second worker applies", run.context)
    run.restart_sinks_at(run.rng.uniform(join_at, kill_at))
    wait_for(lambda: run.applied() >= kill_at * run.total, 300, f"{kill_at:.0%} applied",
             run.context)
    first.kill_after_next_alert(timeout_s=10.0)
    # Input still arrives for the first worker's streams: the second must take
    # them over from their snapshots, not just drain its own.
    assert run.published < run.total, run.context()
    killed.set()
    run.finish()
    restores = re.findall(r"restored (\d+) stream monitors from (\d+) partitions",
                          second.log.read_text())
    # Once when it joined, once when the first worker's partitions came over.
    assert len(restores) >= 2, run.context()


def test_a_worker_joins_and_the_first_is_killed(chaos_runs: dict[str, InBackground]) -> None:
    chaos_runs[JOIN].result(timeout_s=1200)


def test_the_worker_partitions_keys_as_the_publisher_does(
    broker: str, make_topics: Callable[..., object], topic_prefix: str,
    read_topic: Callable[..., list],
) -> None:
    """A stream's embeddings (made by the worker) share the partition number of its predictions."""
    make_topics(topic_prefix, 4)
    topic = f"{topic_prefix}.predictions"
    keys = [f"cam-{i}".encode() for i in range(40)]
    with Publisher(broker) as pub:
        for k in keys:
            pub.publish_raw(topic, k, b"{}")
    got = {r.key: r.partition for r in read_topic(topic, len(keys))}
    assert got == {k: key_partition(k, [0, 1, 2, 3], [0, 1, 2, 3]) for k in keys}
