"""Poison input through a real worker: every bad event dead-lettered, the healthy stream untouched.

A real ``driftline worker`` process on a real broker receives, on every
topic it reads (frames, embeddings, predictions, labels, control), 10,000
fuzzed events each (50,000 in all; ~90 s) -- random bytes, truncated and bit-flipped events,
mutated fields, deep nesting, huge numbers, invalid UTF-8, NaN, wrong kinds,
oversize keys, null keys -- plus one oversize payload and one 100,000-deep
JSON document per topic, interleaved with one healthy stream of predictions
whose confidence drops at a known point.

Then:

- every bad event is on the dead-letter topic exactly once, with the reason
  the router gives it (the multiset of (reason, sha256 of the original) is
  compared); oversize originals truncated, their size and sha256 recorded;
- the healthy stream raised exactly the alerts ``replay_lines`` gives for it
  alone (same ids, text and statistics);
- both agents still work: frames sent after the fuzz are embedded, and the
  worker process is alive with no crashed agent in its log.

``POISON_FUZZ_EVENTS`` changes the total number of fuzzed events.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftline.errors import PermanentError
from driftline.local_infra import settings_env
from driftline.settings import MonitorSettings, Settings
from processors.image_decode import decode_image
from processors.monitor import MonitorRegistry, StreamMonitor
from processors.replay import Fired, replay_lines
from processors.router import MONITOR_INPUTS
from producers.publisher import Publisher
from schemas.events import Alert, Command, DeadLetter, Frame, Prediction
from schemas.wire import decode_as, decode_event, encode

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]

FUZZ_EVENTS = int(os.environ.get("POISON_FUZZ_EVENTS", "50000"))
MAX_EVENT_BYTES = 256 * 1024
MONITOR = MonitorSettings(reference_size=200, cooldown=100)
HEALTHY = "cam-healthy"
N_HEALTHY, SHIFT_AT = 1300, 1000

VALID_DOCS: list[dict[str, Any]] = [
    {"kind": "label", "event_id": "l1", "stream_id": "cam-fuzz", "target_event_id": "p1",
     "true_class": "cat"},
    {"kind": "prediction", "event_id": "p1", "stream_id": "cam-fuzz", "model_version": "v1",
     "top_class": "cat", "confidence": 0.9, "scores": {"cat": 0.9, "dog": 0.1},
     "boxes": [{"cls": "cat", "score": 0.5, "xyxy": [0, 0, 10, 10]}], "frame_index": 3,
     "embedding": [0.1, 0.2]},
    {"kind": "embedding", "event_id": "e1", "stream_id": "cam-fuzz", "frame_id": "f1",
     "vector": [0.1, 0.2, 0.3, 0.4], "quality": {"brightness": 0.5}},
    {"kind": "frame_error", "event_id": "x1", "stream_id": "cam-fuzz", "frame_id": "f1",
     "reason": "undecodable_image"},
    {"kind": "command", "stream_id": "cam-nobody", "action": "rereference",
     "signals": ["quality.brightness"]},
    {"kind": "frame", "event_id": "fr1", "stream_id": "cam-fuzz", "image": "aGVsbG8="},
    {"kind": "alert", "alert_id": "a", "stream_id": "cam-fuzz", "model_version": "v1",
     "signal": "s", "detector": "d", "message": "m", "statistic": 1.0, "detected_index": 1,
     "change_index": 1, "detected_event_id": "e"},
]


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if depth > 3 or r < 0.5:
        return rng.choice([
            None, True, False, 0, -1, 10**19, 1e308, -1e-308, "", "x" * rng.randint(0, 300),
            "cam:1", "\u00e9\u4e2d", "\ud800", "rereference", "v1", "label", float("nan"),
            float("inf"), rng.random(), rng.randint(-(10**6), 10**6),
        ])
    if r < 0.75:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["a", "kind", "stream_id", "vector", ""]): _random_json(rng, depth + 1)
            for _ in range(rng.randint(0, 4))}


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")


def fuzz_payload(rng: random.Random) -> bytes:
    """One fuzzed payload: most are invalid, some valid events of another kind."""
    doc = dict(rng.choice(VALID_DOCS))
    wire = _dumps(doc)
    k = rng.randrange(13)
    if k == 0:
        return rng.randbytes(rng.randint(0, 400))
    if k == 1:
        return wire[: rng.randint(0, len(wire) - 1)]
    if k == 2:
        b = bytearray(wire)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if k in (3, 4, 5):
        for _ in range(rng.randint(1, 3)):
            field = rng.choice([*doc, "schema_version", "kind", "surprise"])
            if rng.random() < 0.3:
                doc.pop(field, None)
            else:
                doc[field] = _random_json(rng)
        return _dumps(doc)
    if k == 6:
        depth = rng.choice([33, 100, 1000, 5000, 50_000])
        o, c = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
        return b'{"kind":"label","meta":' + o * depth + b"0" + c * depth + b"}"
    if k == 7:
        doc["frame_index"] = "__big__"
        return _dumps(doc).replace(b'"__big__"', b"9" * rng.choice([21, 400, 5000]))
    if k == 8:
        return wire.replace(b"0.", b"1e999", 1) if b"0." in wire else wire + b"\xff"
    if k == 9:
        i = rng.randrange(1, len(wire) - 1)
        return wire[:i] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"]) + wire[i:]
    if k == 10:
        return rng.choice([b"null", b"[]", b"1", b'"s"', b"true", b"", b"[{}]", b"NaN"])
    if k == 11:
        doc["schema_version"] = rng.choice([2, 0, "1", None, 1.5])
        return _dumps(doc)
    return wire  # a valid event: rejected only where its kind does not belong


def _png(seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, size=(96, 128, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def expected_reason(topic_kind: str, raw: bytes) -> str | None:
    """The dead-letter reason the worker must give ``raw`` (None: state-dependent, skip it)."""
    if topic_kind == "frames":
        try:
            frame = decode_as(Frame, raw, MAX_EVENT_BYTES)
        except PermanentError as exc:
            return exc.reason
        if frame.image is None:
            return None  # a URI: read from this machine's disk -- not fuzzed
        try:
            decode_image(frame.image)
        except PermanentError as exc:
            return exc.reason
        return None
    try:
        event = decode_event(raw, MAX_EVENT_BYTES)
    except PermanentError as exc:
        return exc.reason
    if topic_kind == "control":
        if not isinstance(event, Command):
            return "unknown_kind"
        known = StreamMonitor.known_signals()
        if any(sig not in known for sig in event.signals or []):
            return "unknown_signal"
        return None  # a valid command: applied (to no monitor); not sent
    if not isinstance(event, MONITOR_INPUTS):
        return "unknown_kind"
    return None  # a valid input event: its fate depends on the stream's state


def healthy_stream() -> list[Prediction]:
    rng = np.random.default_rng(11)
    out = []
    for i in range(N_HEALTHY):
        mean = 0.85 if i < SHIFT_AT else 0.50  # beyond the 0.15 tolerance floor
        out.append(Prediction(
            event_id=f"h{i}", stream_id=HEALTHY, model_version="v1", top_class="cat",
            confidence=float(np.clip(mean + 0.03 * rng.normal(), 0.0, 1.0)), frame_index=i))
    return out


class Tail:
    """Every record of one topic from the beginning (assign, no group join)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "poison-tail",
                                  "enable.auto.commit": False})
        parts = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        self.values: list[bytes] = []

    def until(self, cond: Callable[[list[bytes]], bool], timeout_s: float,
              alive: Callable[[], None]) -> list[bytes]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not cond(self.values):
            alive()
            for msg in self.consumer.consume(1000, timeout=0.5):
                if not msg.error():
                    self.values.append(msg.value() or b"")
        return self.values

    def drain(self, quiet_s: float = 3.0) -> list[bytes]:
        """Read on until nothing arrives for ``quiet_s`` (more than expected is a failure too)."""
        last = time.monotonic()
        while time.monotonic() - last < quiet_s:
            got = self.consumer.consume(1000, timeout=0.5)
            if got:
                last = time.monotonic()
                self.values += [m.value() or b"" for m in got if not m.error()]
        return self.values

    def close(self) -> None:
        self.consumer.close()


def test_fuzzed_input_on_every_topic_is_dead_lettered_and_the_healthy_stream_is_untouched(
    settings: Settings, tmp_path: Path
) -> None:
    topics = settings.topics
    by_kind = {"frames": topics.frames, "embeddings": topics.embeddings,
               "predictions": topics.predictions, "labels": topics.labels,
               "control": topics.control}
    rng = random.Random(20261202)
    per_topic = FUZZ_EVENTS // len(by_kind)

    # -- what to send, and what must come out ---------------------------------
    fuzz: list[tuple[str, bytes | None, bytes]] = []
    expected: Counter[tuple[str, str]] = Counter()
    for kind, topic in by_kind.items():
        n = 0
        while n < per_topic:
            raw = fuzz_payload(rng)
            if kind == "frames" and rng.random() < 0.05:  # valid frames, broken images
                raw = encode(Frame(event_id=f"junk{n}", stream_id="cam-junk",
                                   image=rng.randbytes(rng.randint(1, 200))))
            reason = expected_reason(kind, raw)
            if reason is None:
                continue
            key = rng.choice([b"cam-fuzz", b"cam-fuzz-2", None, rng.randbytes(8),
                              b"k" * rng.choice([1, 300, 5000])])
            fuzz.append((topic, key, raw))
            expected[(reason, hashlib.sha256(raw).hexdigest())] += 1
            n += 1
        for raw in (b'{"kind":"label","x":"' + b"A" * (MAX_EVENT_BYTES + 50_000) + b'"}',
                    b"[" * 100_000 + b"]" * 100_000):
            reason = expected_reason(kind, raw)
            assert reason in ("oversize", "invalid_json")
            fuzz.append((topic, b"cam-fuzz", raw))
            expected[(reason, hashlib.sha256(raw).hexdigest())] += 1
    rng.shuffle(fuzz)
    n_bad = sum(expected.values())
    assert n_bad == len(fuzz) >= FUZZ_EVENTS
    reasons = Counter(r for r, _ in expected.elements())
    assert {"invalid_json", "invalid_event", "unknown_kind", "oversize",
            "unsupported_schema_version", "undecodable_image"} <= set(reasons), reasons

    healthy = healthy_stream()
    want = [item.alert for item in replay_lines([encode(e) for e in healthy],
                                                registry=MonitorRegistry(MONITOR))
            if isinstance(item, Fired)]
    assert any(a.signal == "output.confidence" for a in want), "the healthy stream must alert"

    # -- a real worker ---------------------------------------------------------
    # The broker, Redis, prefix, group and partitions of ``settings`` (settings_env).
    env = settings_env(settings)
    env.update(
        DRIFTLINE_MAX_EVENT_BYTES=str(MAX_EVENT_BYTES),
        DRIFTLINE_MONITOR__REFERENCE_SIZE=str(MONITOR.reference_size),
        DRIFTLINE_MONITOR__COOLDOWN=str(MONITOR.cooldown),
    )
    log_path = tmp_path / "worker.log"
    worker = subprocess.Popen([sys.executable, "-m", "driftline", "worker"], env=env,
                              stdout=log_path.open("wb"), stderr=subprocess.STDOUT)

    def alive() -> None:
        assert worker.poll() is None, log_path.read_text()[-3000:]

    dead = Tail(settings.bootstrap_servers, topics.dead_letter)
    alerts = Tail(settings.bootstrap_servers, topics.alerts)
    embeddings = Tail(settings.bootstrap_servers, topics.embeddings)
    try:
        per_healthy = len(fuzz) // len(healthy) + 1
        with Publisher(settings.bootstrap_servers, max_event_bytes=4 << 20) as pub:
            for i, event in enumerate(healthy):
                pub.publish(topics.predictions, event)
                for topic, key, raw in fuzz[i * per_healthy:(i + 1) * per_healthy]:
                    pub.publish_raw(topic, key, raw)
            pub.flush()
            # After the fuzz: real frames, which the embed agent must still embed.
            live = [Frame(event_id=f"live{i}", stream_id="cam-live", frame_index=i,
                          image=_png(i)) for i in range(3)]
            for f in live:
                pub.publish(topics.frames, f)

        def healthy_alerts(values: list[bytes]) -> list[Alert]:
            return [a for a in (decode_as(Alert, v) for v in values) if a.stream_id == HEALTHY]

        alerts.until(lambda vs: len(healthy_alerts(vs)) >= len(want), 300, alive)
        letters = [decode_as(DeadLetter, v, MAX_EVENT_BYTES)
                   for v in dead.until(lambda vs: len(vs) >= n_bad, 300, alive)]
        wanted_ids = {f"live{i}:emb" for i in range(3)}

        def embedded(values: list[bytes]) -> set[str]:
            out = set()
            for v in values:
                if b"live" in v:
                    with contextlib.suppress(PermanentError):
                        out.add(decode_event(v).event_id)  # type: ignore[attr-defined]
            return out & wanted_ids

        embeddings.until(lambda vs: embedded(vs) == wanted_ids, 120, alive)
        letters += [decode_as(DeadLetter, v, MAX_EVENT_BYTES) for v in dead.drain()[n_bad:]]
        got_alerts = healthy_alerts(alerts.drain())
        alive()
    finally:
        for t in (dead, alerts, embeddings):
            t.close()
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    text = log_path.read_text()
    assert "crashed" not in text.lower() and "Traceback" not in text, text[-3000:]

    # Every bad event dead-lettered once, with the router's reason.
    assert len(letters) == n_bad, (len(letters), n_bad)
    got = Counter((d.reason, d.original_sha256 or "") for d in letters)
    assert got == expected, (got - expected, expected - got)
    for d in letters:
        assert d.detail and d.original_size is not None
        assert len(encode(d)) <= MAX_EVENT_BYTES
        if d.truncated:  # anything above ~3/4 of the limit (base64 grows it by 4/3)
            assert d.original_size > MAX_EVENT_BYTES * 2 // 3 and "truncated" in d.detail
        else:
            assert hashlib.sha256(d.original).hexdigest() == d.original_sha256
        assert d.key is None or len(d.key) <= 1024
    oversize = [d for d in letters if d.reason == "oversize"]
    assert len(oversize) >= len(by_kind) and all(d.truncated for d in oversize)

    # The healthy stream: exactly replay's alerts.
    def key(a: Alert) -> tuple[str, str, int]:
        return (a.alert_id, a.signal, a.detected_index)

    assert sorted(map(key, got_alerts)) == sorted(map(key, want))
    assert [a.model_dump(mode="json", exclude={"ts"}) for a in sorted(got_alerts, key=key)] == [
        a.model_dump(mode="json", exclude={"ts"}) for a in sorted(want, key=key)]
    print(f"fuzz: {len(fuzz)} bad events sent, {len(letters)} dead-lettered "
          f"({dict(reasons)}); healthy alerts {len(got_alerts)} == replay {len(want)}; "
          f"base64 of a dead letter: {base64.b64encode(letters[0].original[:8])!r}")
