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
- ``state()`` returns a JSON-safe dict with ``type`` and ``version``;
  ``from_state(state)`` rebuilds a detector that continues bit-for-bit like
  the original. No Kafka, no I/O.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Self


class StateVersionError(ValueError):
    """A checkpoint of another detector type or an unsupported version."""


def check_state_header(state: dict[str, Any], name: str, version: int) -> None:
    """``StateVersionError`` unless ``state`` is a checkpoint of ``name`` at ``version``."""
    if state.get("type") != name:
        raise StateVersionError(f"state of {state.get('type')!r} given to {name!r}")
    if state.get("version") != version:
        raise StateVersionError(
            f"{name} state version {state.get('version')!r} not supported "
            f"(this build reads {version})"
        )


class Detector(abc.ABC):
    """Base class: subclasses implement ``_update``, ``_reset``, ``_get``/``_set`` state."""

    STATE_VERSION: ClassVar[int] = 1
    name: ClassVar[str] = "detector"

    def __init__(self) -> None:
        self._drift_detected = False

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
        return 0

    def update(self, x: float) -> None:
        """Feed one observation."""
        if self._drift_detected:
            self._reset()
            self._drift_detected = False
        self._drift_detected = bool(self._update(x))

    @abc.abstractmethod
    def _update(self, x: float) -> bool:
        """Consume ``x``; return True when it completes a detection."""

    @abc.abstractmethod
    def _reset(self) -> None:
        """Forget the running statistic (parameters and calibration stay)."""

    @abc.abstractmethod
    def _get_state(self) -> dict[str, Any]:
        """JSON-safe parameters and running state."""

    @abc.abstractmethod
    def _set_state(self, state: dict[str, Any]) -> None:
        """Inverse of ``_get_state`` on an instance built by ``_blank``."""

    @classmethod
    @abc.abstractmethod
    def _blank(cls, state: dict[str, Any]) -> Self:
        """An instance with the parameters found in ``state``."""

    def state(self) -> dict[str, Any]:
        """Versioned, JSON-safe checkpoint."""
        return {
            "type": self.name,
            "version": self.STATE_VERSION,
            "drift_detected": self._drift_detected,
            **self._get_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild a detector from ``state()``; it continues exactly like the original."""
        check_state_header(state, cls.name, cls.STATE_VERSION)
        obj = cls._blank(state)
        obj._set_state(state)
        obj._drift_detected = bool(state["drift_detected"])
        return obj
