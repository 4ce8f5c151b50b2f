"""Labels that overtake their predictions: the worker's alerts equal replay's.

The worker reads labels and predictions from two topics, so it can read a
label before the prediction it grades; a recording has every label after
its prediction. Both go through the same router and monitor
(``processors/monitor/label_order.py``), so the alert ids must be equal.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta

import numpy as np

from driftline.settings import MonitorSettings
from processors.monitor import MonitorRegistry, StreamMonitor
from processors.replay import Fired, replay_lines
from processors.router import Router, Source
from schemas.events import Label, Prediction
from schemas.wire import encode

SETTINGS = MonitorSettings(reference_size=100, cooldown=50)
N = 1200
BLOCK = 40  # the worker reads a block of labels before the block's predictions


def recording() -> list[tuple[str, bytes]]:
    """(topic, event) in recording order: each label right after its prediction."""
    rng = np.random.default_rng(11)
    out = []
    for i in range(N):
        p = Prediction(event_id=f"p{i}", stream_id="cam", model_version="v1", top_class="cat",
                       confidence=float(np.clip(0.9 + 0.02 * rng.normal(), 0, 1)),
                       frame_index=i)
        out.append(("predictions", encode(p)))
        if rng.random() < 0.7:  # not every prediction is graded
            wrong = rng.random() < (0.05 if i < 800 else 0.5)
            out.append(("labels", encode(Label(
                event_id=f"l{i}", stream_id="cam", model_version="v1",
                target_event_id=f"p{i}", true_class="dog" if wrong else "cat"))))
    return out


def overtaken(lines: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The worker's order: per block, the labels topic read before the predictions topic."""
    out = []
    for start in range(0, len(lines), BLOCK):
        block = lines[start:start + BLOCK]
        out += [x for x in block if x[0] == "labels"] + [x for x in block if x[0] == "predictions"]
    return out


def worker_alerts(lines: list[tuple[str, bytes]]) -> list[str]:
    """Alert ids through the worker's path: ``Router.route`` with topic positions."""
    router = Router(MonitorRegistry(SETTINGS))
    offsets: dict[str, int] = {}
    ids = []
    for topic, raw in lines:
        offsets[topic] = offsets.get(topic, -1) + 1
        routed = router.route(raw, Source.INPUTS, (f"{topic}:0", offsets[topic]))
        assert not routed.rejected, routed.rejected
        ids += [a.alert_id for a in routed.alerts]
    return ids


@functools.cache
def replay_ids_of(lines: tuple[tuple[str, bytes], ...]) -> list[str]:
    fired = [f.alert for f in replay_lines([v for _, v in lines],
                                           registry=MonitorRegistry(SETTINGS))
             if isinstance(f, Fired)]
    assert any(a.signal == "performance.error" for a in fired)
    return [a.alert_id for a in fired]


def replay_ids(lines: list[tuple[str, bytes]]) -> list[str]:
    """Alert ids of replay over the recording (its label errors alert); computed once."""
    return replay_ids_of(tuple(lines))


def test_labels_overtaking_their_predictions_give_replays_alerts() -> None:
    lines = recording()
    worker_order = overtaken(lines)
    assert sum(1 for i, x in enumerate(worker_order) if x != lines[i]) > N // 2
    replayed = replay_ids(lines)
    got = worker_alerts(worker_order)
    print(f"\nlabels overtaking predictions (blocks of {BLOCK}): worker {len(got)} alerts, "
          f"replay {len(replayed)}, equal ids: {sorted(got) == sorted(replayed)}")
    assert sorted(got) == sorted(replayed)


def test_waiting_labels_are_in_the_checkpoint() -> None:
    """A monitor restored while labels wait continues exactly as one that never stopped."""
    events = [json.loads(v) for _, v in overtaken(recording())]
    parsed = [Label.model_validate(e) if e["kind"] == "label" else Prediction.model_validate(e)
              for e in events]
    whole = StreamMonitor("cam", "v1", SETTINGS)
    expected = [a.alert_id for e in parsed for a in whole.observe(e)]
    part = StreamMonitor("cam", "v1", SETTINGS)
    # In the middle of a block's labels: they wait for the block's predictions.
    cut = next(i for i in range(900, len(parsed))
               if isinstance(parsed[i], Label) and isinstance(parsed[i + 1], Label))
    ids = [a.alert_id for e in parsed[:cut + 1] for a in part.observe(e)]
    assert len(part.pending_labels) > 0, "labels must be waiting at the cut"
    state = json.loads(json.dumps(part.state()))
    restored = StreamMonitor.from_state(state)
    ids += [a.alert_id for e in parsed[cut + 1:] for a in restored.observe(e)]
    assert ids == expected
    assert whole.labels_unmatched == restored.labels_unmatched == 0


def all_labels_first(lines: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """A worker that reads the whole labels topic before the predictions topic."""
    return [x for x in lines if x[0] == "labels"] + [x for x in lines if x[0] == "predictions"]


def test_labels_over_a_thousand_predictions_ahead_give_replays_alerts() -> None:
    lines = recording()
    worker_order = all_labels_first(lines)
    # How far ahead of its prediction each label is read, in predictions.
    position = {json.loads(v)["event_id"]: i for i, (_, v) in enumerate(worker_order)}
    ahead = max(position[f"p{i}"] - position[f"l{i}"] for i in range(N) if f"l{i}" in position)
    assert ahead > 1_000
    replayed = replay_ids(lines)
    got = worker_alerts(worker_order)
    print(f"\nlabels up to {ahead} predictions ahead: worker {len(got)} alerts, "
          f"replay {len(replayed)}")
    assert sorted(got) == sorted(replayed)


def test_a_label_whose_prediction_never_comes_is_given_up_alike() -> None:
    """Given up at the first prediction stamped over a minute after it, in any interleaving."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    preds = [Prediction(event_id=f"p{i}", stream_id="cam", model_version="v1", top_class="cat",
                        confidence=0.9, ts=t0 + timedelta(seconds=i)) for i in range(200)]
    labels = [Label(event_id="l-lost", stream_id="cam", model_version="v1",
                    target_event_id="p-never", true_class="cat", ts=t0 + timedelta(seconds=10)),
              *[Label(event_id=f"l{i}", stream_id="cam", model_version="v1",
                      target_event_id=f"p{i}", true_class="cat",
                      ts=t0 + timedelta(seconds=i + 20)) for i in range(0, 150, 3)]]

    def unmatched(events: list[Label | Prediction]) -> tuple[int, int, int]:
        mon = StreamMonitor("cam", "v1", SETTINGS)
        for e in events:
            mon.observe(e)
        return mon.labels_unmatched, len(mon.pending_labels), mon.pending_labels.overflowed

    replay_order = sorted([*preds, *labels], key=lambda e: e.ts)
    assert unmatched(replay_order) == unmatched([*labels, *preds]) == (1, 0, 0)
    # Over MAX_PENDING labels waiting: the head is given up and counted (bounded).
    small = StreamMonitor("cam", "v1", SETTINGS)
    small.pending_labels.limit = 10
    for e in labels[:20]:
        small.observe(e)
    assert (len(small.pending_labels), small.pending_labels.overflowed) == (10, 10)
    restored = StreamMonitor.from_state(json.loads(json.dumps(small.state())))
    assert restored.pending_labels.overflowed == 10
