"""The worker and replay are twins: the same recording gives the same alerts and rejections.

A recording of three streams (seeded camera-like embeddings, one stream's
brightness drops) with malformed lines in between is published, line by
line, to a real broker, and a real ``driftline worker`` process consumes it;
the same bytes go through ``replay_lines``. Both route through
``processors.router``: the alert ids (which hash the firing event's own id),
signals and indices must be equal, and every rejected line is dead-lettered
with the reason replay reports.

One topic per recording keeps each stream's order on the wire equal to the
recording's (a stream's events share a partition), so even the stream
indices and texts of the alerts are equal here. A stream on two topics
(embeddings and predictions of the same frames) reaches the worker in
another interleaving: its alert ids are still replay's
(``tests/chaos/test_worker_chaos.py``), its indices are not.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from driftline.local_infra import free_port, settings_env
from driftline.settings import MonitorSettings, Settings
from processors.monitor import MonitorRegistry
from processors.replay import Fired, Rejected, replay_lines
from producers.publisher import Publisher
from schemas.events import Alert, DeadLetter, Embedding
from schemas.wire import decode_as, encode
from tests.integration.processes import spawn, terminate
from tests.unit.test_monitor import camera_like

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DIM = 32
MONITOR = MonitorSettings(reference_size=200, cooldown=100, embedding_dim=DIM)


def _recording() -> list[tuple[bytes, bytes]]:
    """(key, value) lines: three interleaved streams and a malformed line of each kind."""
    streams = {
        "cam-a": camera_like(1300, seed=3, shift_at=1000),
        "cam-b": camera_like(1300, seed=4),
        "cam-c": camera_like(1300, seed=5, shift_at=700, dark=25.0),
    }
    out: list[tuple[bytes, bytes]] = []
    for i, events in enumerate(zip(*streams.values(), strict=True)):
        for sid, e in zip(streams, events, strict=True):
            e = e.model_copy(update={"stream_id": sid, "event_id": f"{sid}-{e.event_id}"})
            out.append((sid.encode(), encode(e)))
        if i == 500:
            short = Embedding(event_id="short", stream_id="cam-a", frame_id="f",
                              vector=[0.1, 0.2, 0.3])
            out += [
                (b"cam-a", b"{this is not json"),
                (b"cam-b", b'{"kind":"teleport","stream_id":"cam-b"}'),
                (b"cam-a", encode(short)),
                (b"cam-c", b'{"kind":"embedding","schema_version":99}'),
            ]
    return out


def _replay(lines: list[bytes]) -> tuple[list[Alert], list[str]]:
    alerts, reasons = [], []
    for item in replay_lines(lines, registry=MonitorRegistry(MONITOR)):
        if isinstance(item, Fired):
            alerts.append(item.alert)
        elif isinstance(item, Rejected):
            reasons.append(item.reason)
    return alerts, reasons


def _read_until(read_topic, topic: str, n: int, timeout_s: float) -> list[bytes]:
    deadline = time.monotonic() + timeout_s
    got: list[bytes] = []
    while time.monotonic() < deadline:
        got = [r.value for r in read_topic(topic, n, timeout_s=5.0)]
        if len(got) >= n:
            # A little longer: more than n would be a divergence too.
            return [r.value for r in read_topic(topic, n + 1, timeout_s=3.0)]
    return got


def test_worker_and_replay_fire_the_same_alert_ids(settings: Settings, read_topic, tmp_path: Path):
    recording = _recording()
    alerts, reasons = _replay([v for _, v in recording])
    assert {a.signal for a in alerts} >= {"quality.brightness"}, "the recording must alert"
    assert sorted(reasons) == sorted(
        ["invalid_json", "unknown_kind", "embedding_dimension", "unsupported_schema_version"])

    metrics_port = free_port()
    # The broker, Redis, prefix, group and partitions of ``settings`` (settings_env).
    env = settings_env(settings)
    env.update(
        DRIFTLINE_MONITOR__REFERENCE_SIZE=str(MONITOR.reference_size),
        DRIFTLINE_MONITOR__COOLDOWN=str(MONITOR.cooldown),
        DRIFTLINE_MONITOR__EMBEDDING_DIM=str(DIM),
        DRIFTLINE_METRICS_PORT=str(metrics_port),
    )
    worker = spawn(["worker"], env, tmp_path / "worker.log")
    try:
        topic = settings.topics.embeddings
        with Publisher(settings.bootstrap_servers) as pub:
            for key, value in recording:
                pub.publish_raw(topic, key, value)
        got = _read_until(read_topic, settings.topics.alerts, len(alerts), timeout_s=180)
        letters = [decode_as(DeadLetter, v)
                   for v in _read_until(read_topic, settings.topics.dead_letter, len(reasons), 60)]
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        healthz = httpx.get(f"http://127.0.0.1:{metrics_port}/healthz", timeout=10)
    finally:
        terminate(worker, timeout_s=30)
    worker_alerts = [decode_as(Alert, v) for v in got]
    # The twin holds with calibrations in child processes (the default), as its
    # ready line says: the pool is what this test shows to be replay's twin.
    assert re.search(r"worker ready: consuming .*; calibrations in \d+ child process",
                     (tmp_path / "worker.log").read_text()), (
        (tmp_path / "worker.log").read_text()[-3000:])

    def key(a: Alert) -> tuple[str, str, str, int]:
        return (a.alert_id, a.stream_id, a.signal, a.detected_index)

    assert sorted(map(key, worker_alerts)) == sorted(map(key, alerts)), (
        (tmp_path / "worker.log").read_text()[-3000:])
    # Everything but the alert's own creation time: same text, statistics, examples.
    assert [a.model_dump(mode="json", exclude={"ts"}) for a in sorted(worker_alerts, key=key)] == [
        a.model_dump(mode="json", exclude={"ts"}) for a in sorted(alerts, key=key)]
    assert Counter(d.reason for d in letters) == Counter(reasons)
    assert {d.original for d in letters} <= {v for _, v in recording}
    # The worker's Prometheus metrics saw the same run.
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in text_string_to_metric_families(scraped) for s in m.samples
    }
    fired = sum(v for (name, _), v in samples.items() if name == "driftline_alerts_total")
    assert fired == len(alerts)
    dead = sum(v for (name, _), v in samples.items() if name == "driftline_dead_letters_total")
    assert dead == len(reasons)
    # Issue #16's families: per-stage latency, lag, snapshots, alerts by severity,
    # dead letters by reason, live monitors, statistic vs threshold; and /healthz.
    names = {name for name, _ in samples}
    for family in ("driftline_stage_seconds_bucket", "driftline_consumer_lag",
                   "driftline_snapshot_bytes_count", "driftline_snapshot_seconds_count",
                   "driftline_snapshot_age_seconds", "driftline_alerts_by_severity_total",
                   "driftline_live_monitors", "driftline_signal_statistic",
                   "driftline_signal_threshold"):
        assert family in names, family
    stages = {dict(labels).get("stage") for name, labels in samples
              if name == "driftline_stage_seconds_count"}
    assert {"decode", "monitor", "produce"} <= stages
    assert {dict(labels)["reason"] for name, labels in samples
            if name == "driftline_dead_letters_total"} == set(reasons)
    assert healthz.status_code == 200 and healthz.text == "ok\n"
