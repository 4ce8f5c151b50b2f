"""The contract every drift detector keeps (river's ``river/drift`` is the model).

A detector is a small plain object:

- its parameters are constructor arguments (``ert``, never a bare threshold,
  for detectors that are calibrated);
- ``update(x)`` feeds one observation; afterwards ``drift_detected`` says
  whether this observation completed a detection. After a detection the
  detector resets itself (privately) and starts afresh on the next update;
- ``statistic`` and ``threshold`` say how close it is to firing (for state
  and dashboards); ``change_offset`` estimates how many updates ago the
  change began (0 = at the update that fired), so alerts can say "since";
- ``state()`` returns a strict-JSON dict with ``type`` and ``version``,
  the dump of the detector's pydantic ``State`` model
  (``processors.detectors.state``); ``from_state(state)`` validates it and
  rebuilds a detector that continues bit-for-bit like the original. No
  Kafka, no I/O.

A subclass declares ``State`` (a ``DetectorState`` model: its ``type`` is the
detector's ``name``) and implements ``_update``, ``_reset``, ``_to_state``
and ``_from_state``; ``processors.detectors.checks`` verifies the contract
for every registered detector.
"""

from __future__ import annotations

import abc
from typing import Any, Self, TypeVar

from processors.detectors.state import NamedCheckpointable, StateModel, StateVersionError

__all__ = ["Detector", "DetectorState", "StateVersionError", "WindowDetector"]


class DetectorState(StateModel):
    """Fields every detector checkpoint has besides ``type`` and ``version``."""

    drift_detected: bool = False


D = TypeVar("D", bound=DetectorState)


class Detector(NamedCheckpointable[D], abc.ABC):
    """Base class: subclasses implement ``_update``, ``_reset``, ``_to_state``/``_from_state``."""

    def __init__(self) -> None:
        self._drift_detected = False
        self._change_offset = 0

    @property
    def drift_detected(self) -> bool:
        """Whether the last ``update`` completed a detection."""
        return self._drift_detected

    @property
    @abc.abstractmethod
    def statistic(self) -> float:
        """The running test statistic."""

    @property
    @abc.abstractmethod
    def threshold(self) -> float:
        """The value of ``statistic`` at which the detector fires."""

    @property
    def change_offset(self) -> int:
        """Estimated updates between the start of the change and the last update."""
        return self._change_offset

    def update(self, x: Any) -> None:
        """Feed one observation."""
        if self._drift_detected:
            self._reset()
            self._drift_detected = False
        self._drift_detected = bool(self._update(x))

    @abc.abstractmethod
    def _update(self, x: Any) -> bool:
        """Consume ``x``; return True when it completes a detection."""

    @abc.abstractmethod
    def _reset(self) -> None:
        """Forget the running statistic (parameters and calibration stay)."""

    def state_model(self) -> D:
        model = self._to_state()
        model.drift_detected = self._drift_detected
        return model

    @classmethod
    def from_model(cls, state: D) -> Self:
        obj = cls._from_state(state)
        obj._drift_detected = state.drift_detected
        return obj


class WindowDetector(Detector[D]):
    """A test of the last ``window`` observations (the change lies somewhere inside it).

    Keeps the last statistic in ``_stat`` and a calibrated ``_threshold``;
    after a detection the window empties, so the next test happens ``window``
    updates later.
    """

    window: int
    _threshold: float
    _stat: float

    @property
    def statistic(self) -> float:
        """The last computed statistic (0 until the window is full)."""
        return self._stat

    @property
    def threshold(self) -> float:
        """Calibrated threshold."""
        return self._threshold

    @property
    def change_offset(self) -> int:
        """The window length minus one at a detection, else 0."""
        return self.window - 1 if self._drift_detected else 0
