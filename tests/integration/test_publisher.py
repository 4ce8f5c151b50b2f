"""The publishing SDK against a real broker."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from driftline.errors import DeliveryFailed, InvalidEvent
from driftline.local_infra import free_port
from driftline.settings import Settings
from producers.publisher import Publisher
from schemas.events import Prediction
from schemas.wire import decode_as, encode

pytestmark = pytest.mark.integration


def prediction(stream: str, i: int) -> Prediction:
    return Prediction(
        stream_id=stream,
        model_version="v1",
        event_id=f"{stream}-{i}",
        ts=datetime(2026, 1, 1, tzinfo=UTC),
        top_class="tabby",
        confidence=0.5,
        frame_index=i,
    )


def test_round_trip_keyed_and_counted(settings: Settings, read_topic: Callable) -> None:
    reports: list[object] = []
    streams = ["cam-a", "cam-b", "cam-c", "cam-d"]
    topic = settings.topics.predictions
    with Publisher.from_settings(settings, on_delivery=lambda err, msg: reports.append(err)) as p:
        for i in range(50):
            for s in streams:
                p.publish(topic, prediction(s, i))
    assert p.produced == p.delivered == len(reports) == 200
    assert p.failed == 0 and all(err is None for err in reports)

    records = read_topic(topic, 200)
    assert len(records) == 200
    partitions: dict[bytes, set[int]] = defaultdict(set)
    per_stream: dict[str, list[int]] = defaultdict(list)
    for r in records:
        assert r.key is not None
        partitions[r.key].add(r.partition)
        ev = decode_as(Prediction, r.value)
        assert ev.stream_id.encode() == r.key
        per_stream[ev.stream_id].append(ev.frame_index or 0)
    # Key = stream: one stream, one partition, and in publish order.
    assert all(len(ps) == 1 for ps in partitions.values())
    assert all(order == list(range(50)) for order in per_stream.values())
    # Idempotent producer: no duplicates from internal retries.
    assert len({(r.partition, r.offset) for r in records}) == 200


def test_publish_raw_and_send_and_wait(settings: Settings, read_topic: Callable) -> None:
    topic = settings.topics.dead_letter
    with Publisher(settings.bootstrap_servers) as p:
        p.publish_raw(topic, None, b"not json at all")
        p.send_and_wait(topic, b"k", b"\x00\x01binary")
    got = sorted(r.value for r in read_topic(topic, 2))
    assert got == [b"\x00\x01binary", b"not json at all"]


def test_oversize_is_refused_before_sending(broker: str) -> None:
    p = Publisher(broker, max_event_bytes=1024)
    with pytest.raises(InvalidEvent) as err:
        p.publish_raw("whatever", None, b"x" * 2000)
    assert err.value.reason == "oversize"
    assert p.produced == 0
    p.flush(5)


def test_unreachable_broker_fails_loudly() -> None:
    # Nothing listens on this port: every message expires and flush says so.
    p = Publisher(f"127.0.0.1:{free_port()}", delivery_timeout_ms=1500)
    p.publish("t.predictions", prediction("cam-x", 0))
    with pytest.raises(DeliveryFailed, match="1 message"):
        p.flush(10)
    assert p.failed == 1 and p.delivered == 0 and p.errors
    p.flush(1)  # the failure was reported once; nothing new since


def test_encoded_bytes_are_the_wire_form(settings: Settings, read_topic: Callable) -> None:
    ev = prediction("cam-z", 7)
    with Publisher.from_settings(settings) as p:
        p.publish(settings.topics.predictions, ev)
    [rec] = read_topic(settings.topics.predictions, 1)
    assert rec.value == encode(ev) and rec.key == b"cam-z"


# -- the local infrastructure the publisher is tested against ---------------


def test_ensure_topics_is_idempotent_and_compacts_state(broker: str, topic_prefix: str) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    from driftline.local_infra import ensure_topics
    from driftline.settings import Topics

    topics = Topics(prefix=topic_prefix)
    assert set(ensure_topics(broker, topics, 3).values()) == {"created"}
    assert set(ensure_topics(broker, topics, 3).values()) == {"exists"}
    admin = AdminClient({"bootstrap.servers": broker})
    md = admin.list_topics(timeout=10)
    assert all(len(md.topics[t].partitions) == 3 for t in topics.all())
    [fut] = admin.describe_configs([ConfigResource("topic", topics.state)]).values()
    assert fut.result()["cleanup.policy"].value == "compact"


def test_missing_redis_server_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from driftline.errors import ConfigError
    from driftline.local_infra import LocalRedis

    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no redis-server
    with pytest.raises(ConfigError, match="apt-get install -y redis-server"):
        LocalRedis(log_dir=tmp_path).start()


def test_local_redis_restarts_on_the_same_url(tmp_path) -> None:
    import redis

    from driftline.local_infra import LocalRedis

    with LocalRedis(log_dir=tmp_path, appendonly=True) as r:
        url, pid = r.url, r.pid
        redis.Redis.from_url(url).set("k", "v")
        r.stop()
        assert not r.running
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        r.start()
        assert r.url == url and r.pid != pid
        assert redis.Redis.from_url(url).get("k") == b"v"  # appendonly survived
    assert not r.running


# -- `driftline publish`: sources into the topics ------------------------------


def _photo_folder(tmp_path) -> tuple[object, list[str]]:
    """A folder of real photos (scikit-image / scikit-learn files), JPEG and PNG."""
    import shutil

    from producers.scenes import photo_path

    folder = tmp_path / "shots"
    folder.mkdir()
    names = []
    for scene in ("chelsea", "coffee", "china", "camera"):
        src = photo_path(scene)
        assert src is not None, f"scene {scene} needs the sim extra"
        names.append(f"{scene}{src.suffix}")
        shutil.copyfile(src, folder / names[-1])
    (folder / "README.txt").write_text("not an image")
    return folder, sorted(names)


def test_publish_cli_sends_a_folder_of_images_as_frames(
    settings: Settings, read_topic: Callable, tmp_path
) -> None:
    import subprocess
    import sys

    from driftline.local_infra import settings_env
    from schemas.events import Frame

    folder, names = _photo_folder(tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "driftline", "publish", str(folder), "--stream", "cam-dir",
         "--model-version", "v7"],
        env=settings_env(settings), capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.strip().splitlines()[-1] == (
        f"published 4 events from {folder} ({settings.topics.frames} 4)")

    records = read_topic(settings.topics.frames, 4)
    assert len(records) == 4 and {r.key for r in records} == {b"cam-dir"}
    frames = sorted((decode_as(Frame, r.value) for r in records), key=lambda f: f.frame_index)
    assert [f.meta["source"] for f in frames] == names
    assert [f.frame_index for f in frames] == [0, 1, 2, 3]
    assert all(f.image == (folder / f.meta["source"]).read_bytes() for f in frames)
    assert {(f.stream_id, f.model_version) for f in frames} == {("cam-dir", "v7")}
    assert {f.content_type for f in frames} == {"image/jpeg", "image/png"}


def test_publish_recording_paces_and_stops_at_the_limit(
    settings: Settings, read_topic: Callable, tmp_path
) -> None:
    import time

    from driftline.errors import ConfigError
    from producers.publish_recording import publish_recording

    rec = tmp_path / "rec.jsonl"
    rec.write_bytes(b"\n".join(encode(prediction("cam-lim", i)) for i in range(6)) + b"\n")
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        time.sleep(s)

    with Publisher.from_settings(settings) as p:
        counts = publish_recording(p, settings.topics, rec, fps=40.0, limit=3, sleep=sleep)
    assert counts.published == {settings.topics.predictions: 3}
    # 40 events/s: each event after the first waits for its slot, at most 25 ms.
    assert slept and all(0 < s <= 0.0251 for s in slept)
    assert len(read_topic(settings.topics.predictions, 3, timeout_s=5, then_s=1)) == 3
    with pytest.raises(ConfigError, match="fps"):
        publish_recording(p, settings.topics, rec, fps=0.0)


def test_publish_recording_routes_events_as_they_are(
    settings: Settings, read_topic: Callable, tmp_path
) -> None:
    from producers.publish_recording import publish_recording
    from schemas.events import DeadLetter, Frame, Label

    t = settings.topics
    frame = Frame(event_id="f1", stream_id="cam-r", image=b"\xff\xd8jpeg", frame_index=0)
    label = Label(event_id="l1", stream_id="cam-r", target_event_id="p1", true_class="cat")
    lines = [encode(frame), encode(prediction("cam-r", 1)), encode(prediction("cam-o", 2)),
             b'{"kind": "prediction", "stream_id": ', encode(label)]
    rec = tmp_path / "rec.jsonl"
    rec.write_bytes(b"\n".join(lines) + b"\n")
    with Publisher.from_settings(settings) as p:
        counts = publish_recording(p, t, rec, stream_id="cam-r")
    assert counts.published == {t.frames: 1, t.predictions: 1, t.labels: 1}
    assert counts.rejected == {"invalid_json": 1} and counts.skipped == 1

    [f] = read_topic(t.frames, 1)
    assert f.value == lines[0] and f.key == b"cam-r"  # the recorded bytes, unchanged
    [pr] = read_topic(t.predictions, 1, timeout_s=5, then_s=1)
    assert pr.value == lines[1]
    assert [r.value for r in read_topic(t.labels, 1)] == [lines[4]]
    [d] = read_topic(t.dead_letter, 1)
    letter = decode_as(DeadLetter, d.value)
    assert (letter.reason, letter.original, letter.stage) == ("invalid_json", lines[3], "publish")
    assert letter.source_topic == f"file:{rec}"
