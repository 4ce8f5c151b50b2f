"""Session fixtures shared by every integration test: a real broker, a real Redis.

When a Docker engine answers (``docker info``), testcontainers' Kafka and
Redis are used; otherwise a local Tansu broker and a local ``redis-server``
run as child processes on loopback. Either way tests talk TCP to real servers.

Fixtures
--------
broker
    Session-scoped bootstrap string ``"127.0.0.1:PORT"``.
redis_url
    Session-scoped ``redis://127.0.0.1:PORT/0``.
topic_prefix
    A fresh prefix per test, so tests never see each other's messages.
make_topics
    ``make_topics(prefix=None, partitions=2) -> Topics``: creates the topics.
settings
    ``Settings`` on the broker/Redis above with this test's ``topic_prefix``,
    topics created, its own ``consumer_group``.
read_topic
    ``read_topic(topic, n, timeout_s=30) -> list[Record]``: the first ``n``
    records of ``topic`` (all partitions, from the beginning; no group join).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from driftline.kafka_config import consumer_config
from driftline.local_infra import LocalBroker, LocalRedis, ensure_topics
from driftline.settings import Settings, Topics

# A script run with the system python3 (GStreamer's bindings), not a test module:
# --doctest-modules would import it with this interpreter, which has no `gi`.
collect_ignore = ["integration/rtsp_camera.py"]


def docker_available() -> bool:
    """True when a Docker engine answers (the client alone is not enough)."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def use_docker() -> bool:
    return docker_available()


@pytest.fixture(scope="session")
def broker(
    use_docker: bool, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if use_docker:  # pragma: no cover - no Docker engine on the dev machines
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    with LocalBroker(log_dir=tmp_path_factory.mktemp("tansu")) as b:
        yield b.bootstrap


@pytest.fixture(scope="session")
def redis_url(
    use_docker: bool, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if use_docker:  # pragma: no cover
        from testcontainers.redis import RedisContainer

        with RedisContainer() as rc:
            host, port = rc.get_container_host_ip(), rc.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
        return
    with LocalRedis(log_dir=tmp_path_factory.mktemp("redis")) as r:
        yield r.url


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:40]
    return f"t-{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_topics(broker: str, topic_prefix: str) -> Callable[..., Topics]:
    def make(prefix: str | None = None, partitions: int = 2) -> Topics:
        topics = Topics(prefix=prefix or topic_prefix)
        ensure_topics(broker, topics, partitions)
        return topics

    return make


@pytest.fixture
def settings(
    broker: str, redis_url: str, topic_prefix: str, make_topics: Callable[..., Topics],
    tmp_path: Path,
) -> Settings:
    make_topics(topic_prefix, 2)
    return Settings(
        bootstrap_servers=broker,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        partitions=2,
        consumer_group=f"{topic_prefix}.g",
        data_dir=tmp_path / "data",  # a worker's files, never in the current directory
    )


@dataclass(frozen=True)
class Record:
    """One consumed Kafka record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None = None


@pytest.fixture
def read_topic(broker: str) -> Callable[..., list[Record]]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    def read(topic: str, n: int, timeout_s: float = 30.0, then_s: float = 0.0) -> list[Record]:
        """Up to ``n`` records within ``timeout_s``; with ``then_s``, once ``n`` are in, every
        record that comes in ``then_s`` more seconds too (more than ``n``: a test's "no extra")."""
        # assign() instead of subscribe(): no group join, records at once.
        c = Consumer(consumer_config(broker, f"reader-{uuid.uuid4().hex[:8]}"))
        try:
            parts = c.list_topics(topic, timeout=10).topics[topic].partitions
            c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
            out: list[Record] = []
            deadline = time.monotonic() + timeout_s
            more_until: float | None = None  # set once the n-th record is in
            while time.monotonic() < (deadline if more_until is None else more_until):
                if more_until is None and len(out) >= n:
                    if not then_s:
                        break
                    more_until = time.monotonic() + then_s
                m = c.poll(0.2)
                if m is None or m.error():
                    continue
                out.append(Record(m.topic(), m.partition(), m.offset(), m.key(), m.value() or b"",
                                  m.headers()))
            return out
        finally:
            c.close()

    return read


# -- the operator's API and page (tests/integration/test_api*.py, test_page*.py) ----------

API_STREAM = "cam-api"


@dataclass(frozen=True)
class ApiData:
    """What ``api_data`` put through the real sinks into Redis."""

    settings: Settings
    alert_ids: list[str]
    snapshots: int
    frames_dir: Path


def _monitor_outputs(n: int = 300, shift_at: int = 140) -> tuple[list, list]:
    """A real monitor over predictions whose confidence drops at ``shift_at``."""
    import numpy as np

    from driftline.settings import MonitorSettings
    from processors.monitor import StreamMonitor
    from schemas.events import Prediction

    mon = StreamMonitor(API_STREAM, "v1", MonitorSettings(reference_size=60, ert=2000,
                                                          min_duration=0))
    rng = np.random.default_rng(0)
    alerts, states = [], []
    for i in range(n):
        level = 0.85 if i < shift_at else 0.55
        alerts += mon.observe(Prediction(
            event_id=f"p{i}", stream_id=API_STREAM, model_version="v1", top_class="cat",
            confidence=float(np.clip(level + 0.03 * rng.normal(), 0, 1)), frame_index=i))
        if i % 5 == 4:
            states.append(mon.snapshot())
    return alerts, states


@pytest.fixture
def api_data(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> ApiData:
    """A stream with an alert and its chart series, written to Redis by the real sinks.

    A real ``StreamMonitor`` makes the alerts and snapshots; they go on the
    alerts and state topics and ``start_sinks`` (the Redis sink, its series
    hook) writes them. One example frame is stored in ``frames_dir``.
    """
    import threading

    from producers.publisher import Publisher
    from sinks.redis_state import read_stream
    from sinks.runner import start_sinks

    frames = tmp_path_factory.mktemp("frames")
    (frames / API_STREAM).mkdir()
    alerts, states = _monitor_outputs()
    (frames / API_STREAM / f"{alerts[0].examples_before[0]}.jpg").write_bytes(
        b"\xff\xd8\xff\xe0 a stored frame")
    settings = settings.model_copy(update={"api": settings.api.model_copy(
        update={"frames_dir": frames})})
    with Publisher(settings.bootstrap_servers) as pub:
        for st in states:
            pub.publish(settings.topics.state, st)
        for a in alerts:
            pub.publish(settings.topics.alerts, a)
    stop = threading.Event()
    running = start_sinks(settings, stop, consumer_conf={"session.timeout.ms": 6000})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = read_stream(settings.redis_url, API_STREAM, namespace=settings.topic_prefix)
            got = {a["alert_id"] for a in st["recent_alerts"]}
            done = sum(s["updated_ts"] is not None for s in st["signals"])
            if got >= {a.alert_id for a in alerts} and done and \
                    running.stats["redis"].handled >= len(states) + len(alerts):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the sinks did not write the data: {running.stats}")
    finally:
        stop.set()
        running.join(10)
    return ApiData(settings, [a.alert_id for a in alerts], len(states), frames)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the worker chaos runs' replay (a minute of CPU) while earlier tests run.

    Only when a run of ``test_worker_chaos`` is selected, and not in a
    pytest-xdist worker: every xdist worker collects every test, so each would
    start one, and the other worker already overlaps it. The runs wait for it
    (``test_worker_chaos.shared_replay``). This hook lives here, not in a
    ``tests/chaos/conftest.py``: a second conftest module named ``conftest``
    breaks ``--doctest-modules``' import of this one ("import file mismatch").
    """
    if hasattr(session.config, "workerinput") or session.config.option.collectonly:
        return
    runs = ("test_worker_chaos.py::test_worker_killed", "test_worker_chaos.py::test_a_worker")
    if any(run in item.nodeid for item in session.items for run in runs):
        from tests.chaos.test_worker_chaos import replay_in_background

        replay_in_background()
