"""The whole pipeline on real parts: camera → Kafka → faust worker → alerts, Redis, webhook.

One drifted and one clean simulated camera of the same length are published
to a real Tansu broker, together with one malformed input of every kind. A
real worker process (``driftline worker``) and real sinks (``driftline
sinks``) run against the broker, a real ``redis-server`` and a real HTTP
receiver started here.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from driftline.local_infra import free_port, settings_env
from driftline.settings import Settings
from processors.embedder import Embedder
from producers.camera_events import camera_events
from producers.drift_injection import DriftSpec
from producers.publisher import Publisher
from schemas.events import Alert, DeadLetter, Embedding, Frame, StreamState
from schemas.wire import decode_as, encode
from sinks.redis_state import read_stream
from sinks.webhook import verify
from tests.integration.processes import spawn, terminate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FRAMES = 560
ONSET = 460  # embedding signals are calibrated from frame 400 (two references of 200)
SECRET = "whsec_" + "dGVzdC1zZWNyZXQtZm9yLWRyaWZ0bGluZQ=="
MAX_EVENT_BYTES = 256 * 1024


class Receiver:
    """A real HTTP server on loopback recording every webhook delivery."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


class StateProgress:
    """Follows the state topic with one consumer: latest ``events_seen`` per stream."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "progress",
                                  "enable.auto.commit": False})
        parts = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        self.seen: dict[str, int] = {}

    def poll(self, seconds: float) -> dict[str, int]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            st = decode_as(StreamState, msg.value() or b"")
            self.seen[st.stream_id] = max(self.seen.get(st.stream_id, 0), st.events_seen)
        return self.seen


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    yield rx
    rx.server.shutdown()


def _spawn(cmd: str, settings: Settings, webhook: str, logdir: Path) -> subprocess.Popen[bytes]:
    # The broker, Redis, prefix, group and partitions of ``settings`` (settings_env).
    env = settings_env(settings)
    env.update(
        DRIFTLINE_STATE_EVERY="50",
        DRIFTLINE_MAX_EVENT_BYTES=str(MAX_EVENT_BYTES),
        DRIFTLINE_WEBHOOK_URL=webhook,
        DRIFTLINE_WEBHOOK_SECRET=SECRET,
        # The monitor as this test pins it: ERT in events, alerts when a detector
        # fires (the defaults -- a weekly budget from the events' 10 fps stamps and
        # 45 s of persistence -- would report the drift at frame ~910 of 560).
        DRIFTLINE_MONITOR__ERT="10000",
        DRIFTLINE_MONITOR__MIN_DURATION="0",
    )
    args = [cmd, "--loglevel", "info"] if cmd == "worker" else [cmd]
    return spawn(args, env, logdir / f"{cmd}.log")


def _bad_inputs(topics) -> list[tuple[str, bytes, str]]:
    """(topic, bytes, expected reason) for every kind of malformed input."""
    frame = Frame(event_id="bad-img", stream_id="cam-drift", model_version="v1",
                  image=b"\xff\xd8\xff\xe0 this is not a jpeg", content_type="image/jpeg")
    short = Embedding(event_id="bad-dim", stream_id="cam-drift", model_version="v1",
                      frame_id="none", vector=[0.1, 0.2, 0.3])
    nan = (b'{"kind":"prediction","event_id":"nan","stream_id":"cam-drift","top_class":"x",'
           b'"confidence":0.5,"embedding":[0.1,NaN]}')
    return [
        (topics.frames, b"{this is not json", "invalid_json"),
        (topics.predictions, b'{"kind":"prediction","schema_version":99}',
         "unsupported_schema_version"),
        (topics.frames, encode(frame), "undecodable_image"),
        (topics.predictions, nan, "invalid_event"),
        (topics.embeddings, encode(short), "embedding_dimension"),
        (topics.labels, b'{"kind":"label","pad":"' + b"x" * (MAX_EVENT_BYTES + 10) + b'"}',
         "oversize"),
    ]


def test_drifted_camera_alerts_everywhere_clean_camera_stays_quiet(
    settings: Settings, receiver: Receiver, read_topic, tmp_path: Path
) -> None:
    topics = settings.topics
    procs = [_spawn("worker", settings, receiver.url, tmp_path),
             _spawn("sinks", settings, receiver.url, tmp_path)]
    try:
        predictor = Embedder.load()
        streams = {
            "cam-drift": camera_events(stream_id="cam-drift", frames=FRAMES, scene="coffee",
                                       seed=2, drift=DriftSpec("brightness", onset=ONSET),
                                       predictor=predictor),
            "cam-clean": camera_events(stream_id="cam-clean", frames=FRAMES, scene="coffee",
                                       seed=1, predictor=predictor),
        }
        by_kind = {"frames": topics.frames, "predictions": topics.predictions}
        bad = _bad_inputs(topics)
        pairs = zip(*streams.values(), strict=True)

        progress = StateProgress(settings.bootstrap_servers, topics.state)

        def events_seen(targets: dict[str, int]) -> dict[str, int]:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                for p in procs:
                    assert p.poll() is None, (tmp_path / f"{p.args[3]}.log").read_text()[-3000:]
                seen = progress.poll(2.0)
                if all(seen.get(s, 0) >= n for s, n in targets.items()):
                    break
            return dict(seen)

        with Publisher(settings.bootstrap_servers, max_event_bytes=4 * MAX_EVENT_BYTES) as pub:
            for i, (a, b) in enumerate(pairs):
                for ce in (a, b):
                    pub.publish(by_kind[ce.topic], ce.event)
                if i == 300:
                    # Malformed input mid-stream, after the references are
                    # built: it is dead-lettered and the stream goes on.
                    for topic, raw, _ in bad:
                        pub.publish_raw(topic, b"cam-drift", raw)
        # Each stream: one monitor event per frame (its embedding) and per prediction;
        # dead-lettered input never counts, except that the undecodable frame
        # reaches its stream's monitor as a FrameError (quality.undecodable).
        per_stream = FRAMES * 2
        expected = {"cam-drift": per_stream + 1, "cam-clean": per_stream}
        seen = events_seen(expected)
        assert seen == expected, seen

        # Each bad input once, and nothing more in the 2 s after the last of them.
        letters = [decode_as(DeadLetter, r.value)
                   for r in read_topic(topics.dead_letter, len(bad), timeout_s=30, then_s=2)]
        assert sorted(d.reason for d in letters) == sorted(r for _, _, r in bad)
        for d in letters:
            sent = next(raw for topic, raw, reason in bad if reason == d.reason)
            # An oversize original is cut to fit a dead letter (base64 grows it by
            # 4/3; one that could not be produced would stop the agent).
            assert d.original == sent or (
                d.reason == "oversize" and sent.startswith(d.original) and "truncated" in d.detail)
            assert d.source_topic == next(t for t, _, r in bad if r == d.reason)
            assert d.source_offset is not None and d.source_partition is not None

        # Delivered before the snapshots that counted every event: all on the topic already.
        alerts = [decode_as(Alert, r.value)
                  for r in read_topic(topics.alerts, 1, timeout_s=30, then_s=2)]
        assert alerts, "the drifted camera raised no alert"
        assert {a.stream_id for a in alerts} == {"cam-drift"}, [a.message for a in alerts]
        assert all(a.detected_frame_index >= ONSET for a in alerts), [a.message for a in alerts]
        first = min(alerts, key=lambda a: a.detected_frame_index)
        assert first.detected_frame_index <= ONSET + 30
        brightness = [a for a in alerts if a.signal == "quality.brightness"]
        assert brightness and brightness[0].observed < brightness[0].expected
        assert brightness[0].change_frame_index is not None
        assert abs(brightness[0].change_frame_index - ONSET) <= 10

        # Redis and the webhook: every alert, once, signed.
        deadline = time.monotonic() + 60
        ids = {a.alert_id for a in alerts}
        while time.monotonic() < deadline:
            stored = read_stream(settings.redis_url, "cam-drift", recent=100,
                                 namespace=settings.topic_prefix)
            got = {a["alert_id"] for a in stored["recent_alerts"]}
            hooks = {h["webhook-id"] for h, _ in receiver.deliveries}
            if got == ids and ids <= hooks:
                break
            time.sleep(0.5)
        assert got == ids
        assert ids <= hooks
        for headers, body in receiver.deliveries:
            assert verify(SECRET, headers, body)
            assert json.loads(body)["alert_id"] == headers["webhook-id"]
        status = {s["signal"]: s["status"] for s in stored["signals"]}
        assert status["quality.brightness"] == "drift"
        clean = read_stream(settings.redis_url, "cam-clean", namespace=settings.topic_prefix)
        assert clean["recent_alerts"] == []
        assert all(s["status"] != "drift" for s in clean["signals"])
    finally:
        terminate(*procs)
