"""Labels in their arrival order, also when one overtakes its prediction (bounded).

A label grades one prediction (``target_event_id``). Labels and predictions
travel on two topics, so the worker can read a label before the prediction
it grades, which a recording (``driftline replay``) never does. Matched on
arrival, such a label was lost in the worker and used in replay: the two
gave different alerts.

So labels queue here, in arrival order, and are applied from the head as
soon as the head's prediction is known; a label behind a waiting one waits
too. The error signal thus sees labels in the order of the labels topic in
the worker and in replay alike, whichever way the two topics interleave,
and an alert a label fires carries that label's id in both.

When to give up a label, so that the worker and replay give up the same
ones: not after a number of predictions (how many predictions a label
overtakes is the interleaving's doing, which is what differs), but by the
events' own stamps. A label is made after the prediction it grades, and a
stream's predictions come in the order of their stamps; so once a
prediction stamped more than ``skew_s`` after the head label arrives, the
head's prediction (stamped before its label) can no longer come: the head
is given up, counted unmatched. That depends on the two topics' contents
only, not on how they interleave: a label overtaking its prediction by any
number of predictions is matched in the worker as in replay, and a label
whose prediction never comes is given up at the same prediction in both.
``skew_s`` (60 s) allows for the label maker's clock running ahead of the
camera's. What remains bounded, not equal: at most ``limit`` labels wait;
beyond, the head is given up (counted unmatched and ``overflowed``), which
only a worker reading labels over ``limit`` ahead of predictions sees. (And
the join keeps the last ``label_join_window`` predictions: a label that
comes that many predictions *after* its prediction is unmatched.)

The queue is part of the monitor's checkpoint (``state``/``from_state``).

Examples
--------
>>> from processors.monitor.features import LabelJoin
>>> from schemas.events import Label, Prediction
>>> from datetime import timedelta
>>> join, pending = LabelJoin(100), PendingLabels()
>>> lab = Label(event_id="l1", stream_id="s", target_event_id="p1", true_class="cat")
>>> pending.arrive(lab, join)  # its prediction is not there yet
[]
>>> p1 = Prediction(event_id="p1", stream_id="s", top_class="dog", confidence=0.9,
...                 ts=lab.ts - timedelta(seconds=5))
>>> join.remember(p1)
>>> [(m.label.event_id, m.predicted) for m in pending.prediction(join, p1.ts)]
[('l1', 'dog')]
>>> lost = Label(event_id="l2", stream_id="s", target_event_id="p0", true_class="cat")
>>> pending.arrive(lost, join), len(pending)
([], 1)
>>> later = lost.ts + timedelta(seconds=61)  # a prediction stamped after it: p0 cannot come
>>> pending.prediction(join, later), len(pending), join.unmatched
([], 0, 1)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from processors.monitor.features import LabelJoin
from schemas.events import Label

LABEL_SKEW_S = 60.0
"""How far a label's stamp may lag its prediction's (the label maker's clock behind)."""
MAX_PENDING = 1_024
"""Labels waiting at most (memory and checkpoint bound)."""


@dataclass(frozen=True)
class Matched:
    """A label whose prediction is known: what it predicted, and its frame (retrain head)."""

    label: Label
    predicted: str
    frame: tuple[str, str] | None


class PendingLabels:
    """The queue of labels not applied yet (see the module docstring)."""

    def __init__(self, skew_s: float = LABEL_SKEW_S, limit: int = MAX_PENDING) -> None:
        self.skew_s = skew_s
        self.limit = limit
        self.queue: deque[Label] = deque()
        self.overflowed = 0  # labels given up because more than ``limit`` waited

    def __len__(self) -> int:
        return len(self.queue)

    def arrive(self, label: Label, join: LabelJoin) -> list[Matched]:
        """Queue a label; return the labels that can be applied now, in order."""
        self.queue.append(label)
        return self._drain(join, None)

    def prediction(self, join: LabelJoin, ts: datetime) -> list[Matched]:
        """A prediction stamped ``ts`` was remembered by ``join``: the labels it unblocks."""
        if not self.queue:
            return []
        return self._drain(join, ts)

    def _drain(self, join: LabelJoin, ts: datetime | None) -> list[Matched]:
        out = []
        while self.queue:
            label = self.queue[0]
            if label.target_event_id in join.predictions:
                self.queue.popleft()
                predicted, frame = join.match(label)
                assert predicted is not None
                out.append(Matched(label, predicted, frame))
            elif len(self.queue) > self.limit:
                self.queue.popleft()
                self.overflowed += 1
                join.match(label)  # counted unmatched
            elif ts is not None and (ts - label.ts).total_seconds() > self.skew_s:
                # Its prediction, stamped before it, would have come before this one.
                self.queue.popleft()
                join.match(label)  # counted unmatched
            else:
                break
        return out

    def state(self) -> dict[str, Any]:
        return {"overflowed": self.overflowed,
                "queue": [label.model_dump(mode="json") for label in self.queue]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PendingLabels:
        pending = cls()
        pending.overflowed = int(state.get("overflowed", 0))
        for item in state.get("queue", []):
            # (an older checkpoint stored [label, predictions seen when it queued])
            pending.queue.append(Label.model_validate(item[0] if isinstance(item, list)
                                                      else item))
        return pending
