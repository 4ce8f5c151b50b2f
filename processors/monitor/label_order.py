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
and an alert a label fires carries that label's id in both. The head is
given up (counted unmatched) once ``wait`` predictions of its stream have
arrived since it was queued, or when more than ``limit`` labels wait: a
label whose prediction is unknown (too old for the join, never sent)
delays the labels behind it by at most ``wait`` predictions. A label that
overtakes its prediction by more than that is unmatched in the worker and
matched in replay: the remaining difference, bounded.

The queue is part of the monitor's checkpoint (``state``/``from_state``).

Examples
--------
>>> from processors.monitor.features import LabelJoin
>>> from schemas.events import Label, Prediction
>>> join, pending = LabelJoin(100), PendingLabels(wait=3)
>>> lab = Label(event_id="l1", stream_id="s", target_event_id="p1", true_class="cat")
>>> pending.arrive(lab, join)  # its prediction is not there yet
[]
>>> join.remember(Prediction(event_id="p1", stream_id="s", top_class="dog", confidence=0.9))
>>> [(m.label.event_id, m.predicted) for m in pending.prediction(join)]
[('l1', 'dog')]
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from processors.monitor.features import LabelJoin
from schemas.events import Label

LABEL_WAIT = 1_000
"""Predictions a label waits for its own, after which it is unmatched."""
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

    def __init__(self, wait: int = LABEL_WAIT, limit: int = MAX_PENDING) -> None:
        self.wait = wait
        self.limit = limit
        self.queue: deque[tuple[Label, int]] = deque()
        self.predictions = 0  # predictions seen while labels waited (their clock)

    def __len__(self) -> int:
        return len(self.queue)

    def arrive(self, label: Label, join: LabelJoin) -> list[Matched]:
        """Queue a label; return the labels that can be applied now, in order."""
        self.queue.append((label, self.predictions))
        return self._drain(join)

    def prediction(self, join: LabelJoin) -> list[Matched]:
        """A prediction was remembered by ``join``: the labels it unblocks, in order."""
        if not self.queue:
            return []
        self.predictions += 1
        return self._drain(join)

    def _drain(self, join: LabelJoin) -> list[Matched]:
        out = []
        while self.queue:
            label, since = self.queue[0]
            if label.target_event_id in join.predictions:
                self.queue.popleft()
                predicted, frame = join.match(label)
                assert predicted is not None
                out.append(Matched(label, predicted, frame))
            elif len(self.queue) > self.limit or self.predictions - since >= self.wait:
                self.queue.popleft()
                join.match(label)  # counted unmatched
            else:
                break
        if not self.queue:
            self.predictions = 0
        return out

    def state(self) -> dict[str, Any]:
        return {"predictions": self.predictions,
                "queue": [[label.model_dump(mode="json"), since] for label, since in self.queue]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PendingLabels:
        pending = cls()
        pending.predictions = int(state.get("predictions", 0))
        pending.queue.extend((Label.model_validate(label), int(since))
                             for label, since in state.get("queue", []))
        return pending
