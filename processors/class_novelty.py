"""The share of recent predictions that name classes this stream only just started seeing.

A chi-squared test of the class mix needs the mix to be stable; a classifier's
top-1 class on a wandering street camera flickers among dozens of classes and
its mix moves on a scale of minutes, so on such streams the mix test must be
blunt to keep its false-alarm budget. What a class-mix change brings that the
scene's own flicker does not is *new* classes in bulk: on four simulated
cameras (76,000 clean frames) the share of the last 100 predictions whose class
first appeared in the last 300 never exceeded 0.05, while half the frames
showing three unseen classes took it to 0.26 within 50 frames.

``ClassNovelty.update(name)`` returns that share once the stream has seen
``warmup`` predictions (at least ``horizon + window``; the monitor uses the
class-mix reference size, 2,000: a street camera's classifier was still
discovering the scene's own classes ~800 predictions in), else None.

A new class must stay new for as long as the monitor's persistence rule
(``MIN_DURATION``) takes to confirm it: ``hold(persist)`` lengthens the
horizon to ``persist + 2 * window`` predictions (``HOLD_MARGIN`` windows: the
share takes a window to rise, and the confirmation reads the level of the
last tenth of ``persist``). With the 300-prediction horizon alone, three new
classes taking half of a 10 frames/s camera's predictions were no longer new
after 30 s, before the 45 s ``MIN_DURATION`` confirmed them: the change was
dropped as transient (bench/bench_outputs.py, issue #11). Once the change is
reported or acknowledged (the signal re-references), ``absorb()`` makes every
class seen so far part of the scene: the share falls back within one window,
and the signal's new reference does not straddle that fall.
Memory is bounded: the first-seen index of at most ``max_classes`` names (a
name past the cap is never counted as new) and a window of ``window`` flags.

Examples
--------
>>> nov = ClassNovelty(window=10, horizon=20)
>>> [nov.update("car") for _ in range(30)][-1]
0.0
>>> [nov.update("bus") for _ in range(5)][-1]
0.5
>>> nov.absorb()
>>> [nov.update("bus") for _ in range(10)][-1]
0.0
>>> nov.hold(50)
>>> nov.horizon, nov.warmup
(70, 80)
"""

from __future__ import annotations

from collections import deque
from typing import Literal, Self

from processors.detectors.state import Bits, Checkpointable, StateModel

# ``hold``: windows beyond the persistence a new class stays new.
HOLD_MARGIN = 2


class ClassNoveltyState(StateModel):
    """Checkpoint of a ``ClassNovelty``: first-seen index per class, the window's flags."""

    type: Literal["class_novelty"] = "class_novelty"
    version: Literal[1] = 1
    window: int
    horizon: int
    max_classes: int
    warmup: int
    n: int
    first: dict[str, int]
    flags: Bits


class ClassNovelty(Checkpointable[ClassNoveltyState]):
    """Share of the last ``window`` predictions whose class is at most ``horizon`` old."""

    State = ClassNoveltyState

    def __init__(
        self, window: int = 100, horizon: int = 300, max_classes: int = 4096, warmup: int = 0
    ) -> None:
        if window < 1 or horizon < 1 or max_classes < 1:
            raise ValueError("window, horizon and max_classes must be >= 1")
        self.window = int(window)
        self.horizon = int(horizon)
        self.warmup = max(int(warmup), self.window + self.horizon)
        self.max_classes = int(max_classes)
        self.n = 0
        self._first: dict[str, int] = {}
        self._flags: deque[int] = deque(maxlen=self.window)
        self._count = 0

    def hold(self, persist: int) -> None:
        """Keep classes new for at least ``persist + HOLD_MARGIN * window`` predictions."""
        if persist > 0:
            self.horizon = max(self.horizon, int(persist) + HOLD_MARGIN * self.window)
            self.warmup = max(self.warmup, self.window + self.horizon)

    def absorb(self) -> None:
        """Every class seen so far is part of the scene from now on (no longer new)."""
        for name, first in self._first.items():
            self._first[name] = min(first, self.n - self.horizon)

    def update(self, name: str) -> float | None:
        """Feed one prediction's class; the share once warmed up, else None."""
        first = self._first.get(name)
        if first is None and len(self._first) < self.max_classes:
            first = self._first[name] = self.n
        new = int(first is not None and self.n - first < self.horizon)
        if len(self._flags) == self.window:
            self._count -= self._flags[0]
        self._flags.append(new)
        self._count += new
        self.n += 1
        if self.n < self.warmup:
            return None
        return self._count / self.window

    def _to_state(self) -> ClassNoveltyState:
        return ClassNoveltyState(
            window=self.window,
            horizon=self.horizon,
            max_classes=self.max_classes,
            warmup=self.warmup,
            n=self.n,
            first=self._first,
            flags=[f == 1 for f in self._flags],
        )

    @classmethod
    def _from_state(cls, state: ClassNoveltyState) -> Self:
        out = cls(state.window, state.horizon, state.max_classes, state.warmup)
        out.n = state.n
        out._first = dict(state.first)
        out._flags.extend(int(f) for f in state.flags)
        out._count = sum(out._flags)
        return out
