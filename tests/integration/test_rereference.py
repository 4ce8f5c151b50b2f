"""Re-reference on demand through the real system: CLI → control topic → worker → state topic.

A real worker process (``driftline worker``) on a real broker watches one
stream of predictions (``output.confidence``). ``driftline rereference`` and
``driftline ack`` publish ``Command`` events on ``<prefix>.control``; the
worker that owns the stream applies them between its events, and the next
snapshot on the state topic shows the signal warming up again. A malformed
command is dead-lettered with its original bytes.

Run twice: without ``DRIFTLINE_CONTROL_SECRET`` (every command applies), and
with it, where the CLI signs its commands and an unsigned and a badly signed
command are dead-lettered (``unsigned_command``, ``bad_signature``) without
changing the stream.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import redis
from typer.testing import CliRunner

from driftline.cli import app
from driftline.local_infra import settings_env
from driftline.settings import Settings
from processors.commands import sign_command
from producers.publisher import Publisher
from schemas.events import Command, DeadLetter, Prediction, StreamState
from schemas.wire import decode_as, encode
from sinks.redis_state import ack_key, streams_key
from tests.integration.processes import spawn, terminate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STREAM = "cam-ref"
REFERENCE_SIZE = 60
SIGNAL = "output.confidence"


def _env(settings: Settings, control_secret: str | None = None) -> dict[str, str]:
    # The broker, Redis, prefix, group and partitions of ``settings`` (settings_env).
    env = settings_env(settings)
    env.update(
        DRIFTLINE_STATE_EVERY="20",
        DRIFTLINE_MONITOR__REFERENCE_SIZE=str(REFERENCE_SIZE),
    )
    if control_secret is not None:
        env["DRIFTLINE_CONTROL_SECRET"] = control_secret
    return env


class States:
    """Every snapshot of STREAM on the state topic, in order (one consumer, all partitions)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "states",
                                  "enable.auto.commit": False})
        parts = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        self.seen: list[StreamState] = []

    def wait_for(self, worker: subprocess.Popen[bytes], log: Path, pred, timeout_s: float = 40.0):
        """The first snapshot not yet returned that satisfies ``pred``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert worker.poll() is None, log.read_text()[-3000:]
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            st = decode_as(StreamState, msg.value() or b"")
            if st.stream_id != STREAM:
                continue
            self.seen.append(st)
            if pred(st):
                return st
        seen = [(s.events_seen, s.signals[SIGNAL].status) for s in self.seen]
        raise AssertionError(f"no such snapshot within {timeout_s}s; seen {seen}")


def _predictions(pub: Publisher, topic: str, start: int, n: int) -> None:
    rng = np.random.default_rng(start)
    for i in range(start, start + n):
        pub.publish(topic, Prediction(
            event_id=f"p{i}", stream_id=STREAM, model_version="v1", top_class="cat",
            confidence=float(np.clip(0.85 + 0.03 * rng.normal(), 0.0, 1.0)), frame_index=i))


@pytest.mark.parametrize("control_secret", [None, "integration-control-secret"],
                         ids=["unauthenticated", "signed"])
def test_rereference_and_ack_reach_the_worker_and_show_in_the_next_snapshot(
    settings: Settings, read_topic, tmp_path: Path, control_secret: str | None
) -> None:
    topics = settings.topics
    env = _env(settings, control_secret)
    log = tmp_path / "worker.log"
    states = States(settings.bootstrap_servers, topics.state)
    worker = spawn(["worker", "--loglevel", "info"], env, log)
    try:
        n = REFERENCE_SIZE + 20
        with Publisher(settings.bootstrap_servers) as pub:
            _predictions(pub, topics.predictions, 0, n)
        ok = states.wait_for(worker, log, lambda s: s.events_seen == n)
        assert ok.signals[SIGNAL].status == "ok"

        forged: list[tuple[bytes, str]] = []
        if control_secret is not None:
            # Unsigned, and signed with another key: refused, and the stream unchanged.
            plain = Command(stream_id=STREAM, action="rereference", signals=[SIGNAL])
            forged = [(encode(plain), "unsigned_command"),
                      (encode(sign_command(plain, "not-the-control-secret")), "bad_signature")]
            with Publisher(settings.bootstrap_servers) as pub:
                for raw, _ in forged:
                    pub.publish_raw(topics.control, STREAM.encode(), raw)
            letters = [decode_as(DeadLetter, r.value)
                       for r in read_topic(topics.dead_letter, 2, timeout_s=30)]
            assert sorted((d.original, d.reason) for d in letters) == sorted(forged)
            assert states.seen[-1].signals[SIGNAL].status == "ok"
        assert ("control is unauthenticated" in log.read_text()) == (control_secret is None)

        runner = CliRunner()
        res = runner.invoke(app, ["rereference", STREAM, "--signal", SIGNAL, "--by", "test"],
                            env=env)
        assert res.exit_code == 0, res.output
        command_id = json.loads(res.stdout)["command_id"]
        bad = b'{"kind":"command","stream_id":"cam-ref","action":"explode"}'
        with Publisher(settings.bootstrap_servers) as pub:
            pub.publish_raw(topics.control, STREAM.encode(), bad)

        # The command touches the monitor: a snapshot without any new event.
        st = states.wait_for(worker, log, lambda s: s.signals[SIGNAL].status == "warming_up")
        assert st.events_seen == n
        assert st.signals[SIGNAL].expected is None
        assert st.signals["output.confidence"].threshold is None

        letters = [decode_as(DeadLetter, r.value)
                   for r in read_topic(topics.dead_letter, len(forged) + 1, timeout_s=20)]
        (letter,) = [d for d in letters if d.original == bad]
        assert letter.original == bad
        assert letter.source_topic == topics.control
        assert letter.reason == "invalid_event"

        # It rebuilds its reference from the next REFERENCE_SIZE events.
        with Publisher(settings.bootstrap_servers) as pub:
            _predictions(pub, topics.predictions, n, REFERENCE_SIZE)
        st = states.wait_for(worker, log, lambda s: s.events_seen == n + REFERENCE_SIZE)
        assert st.signals[SIGNAL].status == "ok"

        # An operator acknowledgement in Redis re-references the signal too
        # (of a stream Redis knows: the sinks, not running here, would have added it).
        known = redis.Redis.from_url(settings.redis_url)
        known.sadd(streams_key(settings.topic_prefix), STREAM)
        known.close()
        res = runner.invoke(app, ["ack", STREAM, SIGNAL, "--alert-id", "a-1", "--by", "ops"],
                            env=env)
        assert res.exit_code == 0, res.output
        ack_command = json.loads(res.stdout)["command_id"]
        r = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        ack = json.loads(r.get(ack_key(STREAM, SIGNAL, settings.topic_prefix)))
        r.close()
        assert (ack["alert_id"], ack["by"], ack["command_id"]) == ("a-1", "ops", ack_command)
        st = states.wait_for(worker, log, lambda s: s.signals[SIGNAL].status == "warming_up")
        assert st.events_seen == n + REFERENCE_SIZE
        assert command_id != ack_command
    finally:
        states.consumer.close()
        terminate(worker)
