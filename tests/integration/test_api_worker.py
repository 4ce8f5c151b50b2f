"""Controls posted to the API reach a real worker: ``rereference`` and ``ack`` end to end.

A real ``driftline worker`` process watches one stream of predictions. The API
(uvicorn, real HTTP, a control secret set: the worker verifies signatures)
publishes the controls; the worker that owns the stream applies them and its
next snapshot on the state topic shows the signal warming up again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from pydantic import SecretStr

from driftline.api import ApiServer
from driftline.local_infra import settings_env
from producers.publisher import Publisher
from schemas.events import Prediction, StreamState
from schemas.wire import decode_as
from sinks.redis_state import ack_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STREAM, SIGNAL, REFERENCE_SIZE = "cam-api-worker", "output.confidence", 60
SECRET = "api-worker-control-secret"


def _predictions(settings, start: int, n: int) -> None:
    rng = np.random.default_rng(start)
    with Publisher(settings.bootstrap_servers) as pub:
        for i in range(start, start + n):
            pub.publish(settings.topics.predictions, Prediction(
                event_id=f"p{i}", stream_id=STREAM, model_version="v1", top_class="cat",
                confidence=float(np.clip(0.85 + 0.03 * rng.normal(), 0, 1)), frame_index=i))


def _next_state(consumer: Consumer, worker: subprocess.Popen, log: Path, pred,
                timeout_s: float = 40.0) -> StreamState:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert worker.poll() is None, log.read_text()[-3000:]
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        st = decode_as(StreamState, msg.value() or b"")
        if st.stream_id == STREAM and pred(st):
            return st
    raise AssertionError(f"no such snapshot within {timeout_s}s")


def test_rereference_and_ack_posted_to_the_api_are_applied_by_a_real_worker(
    settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={
        "control_secret": SecretStr(SECRET),
        "monitor": settings.monitor.model_copy(update={"reference_size": REFERENCE_SIZE}),
        "state_every": 20, "state_interval_s": 1.0})
    topic = settings.topics.state
    states = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "states",
                       "enable.auto.commit": False})
    parts = states.list_topics(topic, timeout=10).topics[topic].partitions
    states.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    log = tmp_path / "worker.log"
    worker = subprocess.Popen([sys.executable, "-m", "driftline", "worker"],
                              env=settings_env(settings), stdout=log.open("wb"),
                              stderr=subprocess.STDOUT)
    try:
        with ApiServer(settings, port=0) as server, \
                httpx.Client(base_url=server.url, timeout=20) as http:
            n = REFERENCE_SIZE + 20
            _predictions(settings, 0, n)
            st = _next_state(states, worker, log, lambda s: s.events_seen == n)
            assert st.signals[SIGNAL].status == "ok"

            res = http.post(f"/api/v1/streams/{STREAM}/rereference",
                            json={"signals": [SIGNAL], "by": "test"})
            assert res.status_code == 202 and res.json()["signed"], res.text
            st = _next_state(states, worker, log,
                             lambda s: s.signals[SIGNAL].status == "warming_up")
            assert st.events_seen == n  # the command alone changed the monitor

            # 20 events into the new reference, then the ack drops it again.
            _predictions(settings, n, 20)
            st = _next_state(states, worker, log, lambda s: s.events_seen == n + 20)
            assert len(st.monitor["signals"][SIGNAL]["reference"]) == 20

            res = http.post(f"/api/v1/streams/{STREAM}/ack",
                            json={"signals": [SIGNAL], "alert_id": "a-1", "by": "ops"})
            assert res.status_code == 202, res.text
            st = _next_state(states, worker, log,
                             lambda s: not s.monitor["signals"][SIGNAL]["reference"])
            assert (st.events_seen, st.signals[SIGNAL].status) == (n + 20, "warming_up")
        r = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        ack = json.loads(r.get(ack_key(STREAM, SIGNAL, settings.topic_prefix)))
        r.close()
        assert (ack["alert_id"], ack["by"], ack["command_id"]) == ("a-1", "ops",
                                                                  res.json()["command_id"])
        assert "unauthenticated" not in log.read_text()
    finally:
        states.close()
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
