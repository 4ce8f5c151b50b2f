"""ADWIN (river's) with an exact checkpoint.

river 0.26 implements ADWIN's bucket structure in Rust
(``river._river_rust.drift.AdaptiveWindowing``, held by ``drift.ADWIN``).
The public way to copy it exactly is the pickle protocol: the Rust window
pickles itself (``__getnewargs__`` and bincode bytes through
``__getstate__``/``__setstate__``). The checkpoint stores river's whole
``ADWIN`` object pickled (base64, through the restricted unpickler of
``processors.learners.river_state``) with the river version that wrote it.
The trade-off, deliberately accepted:

- restoring is exact (same buckets, totals, variances, clock phase), and
  the unpickler resolves only river's own classes and plain containers -- a
  checkpoint cannot run arbitrary code;
- but the bytes are opaque and tied to river's Rust layout: a checkpoint
  written by another river version is refused with ``StateVersionError``
  (the caller starts that detector afresh) rather than risk a silently
  mis-decoded window.

No private attribute of river is read: the window's statistics come from
``ADWIN``'s public properties and a reset is river's public ``clone()``.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Self

from river import drift

from processors.detectors.base import Detector, DetectorState
from processors.detectors.state import Float, RiverVersion, StateVersionError
from processors.learners.river_state import dump_model, load_as

_PARAMS = ("delta", "clock", "max_buckets", "min_window_length", "grace_period")


class AdwinState(DetectorState):
    """Checkpoint of an ``Adwin``: parameters and river's ``ADWIN`` pickled (base64)."""

    type: Literal["adwin"] = "adwin"
    version: Literal[2] = 2
    delta: Float
    clock: int
    max_buckets: int
    min_window_length: int
    grace_period: int
    river_version: RiverVersion
    window: str
    change_offset: int


class Adwin(Detector[AdwinState]):
    """river's ADWIN, checkpointable.

    Parameters
    ----------
    delta, clock, max_buckets, min_window_length, grace_period
        As in ``river.drift.ADWIN`` (same defaults).

    Notes
    -----
    ADWIN has no single scalar statistic: ``statistic`` is the mean of the
    current window and ``threshold`` is ``nan``. At a detection,
    ``change_offset`` is the length of the window ADWIN kept (the updates
    after its cut) minus one.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(12345)   # river's own doctest stream and result
    >>> det = Adwin()
    >>> data = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
    >>> for i, val in enumerate(data):
    ...     det.update(val)
    ...     if det.drift_detected:
    ...         print(f"Change detected at index {i}, {det.change_offset} updates after onset")
    Change detected at index 1023, 31 updates after onset
    """

    State = AdwinState

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        super().__init__()
        self._ad = drift.ADWIN(
            delta=float(delta),
            clock=int(clock),
            max_buckets=int(max_buckets),
            min_window_length=int(min_window_length),
            grace_period=int(grace_period),
        )

    @property
    def params(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {p: getattr(self._ad, p) for p in _PARAMS}

    @property
    def width(self) -> int:
        """Current window length."""
        return int(self._ad.width)

    @property
    def statistic(self) -> float:
        """Mean of the current window (ADWIN has no scalar test statistic)."""
        return float(self._ad.estimation)

    @property
    def threshold(self) -> float:
        """``nan``: ADWIN's cut bound depends on the split, not one number."""
        return math.nan

    def _reset(self) -> None:
        self._ad = self._ad.clone()  # what river's own reset does: a fresh window

    def _update(self, x: float) -> bool:
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"Adwin got a non-finite observation {x!r}")
        self._ad.update(x)
        if self._ad.drift_detected:
            self._change_offset = max(0, self.width - 1)
            return True
        return False

    def _to_state(self) -> AdwinState:
        blob = dump_model(self._ad)
        return AdwinState(
            **self.params,
            river_version=blob["river_version"],
            window=blob["pickle"],
            change_offset=self._change_offset,
        )

    @classmethod
    def _from_state(cls, state: AdwinState) -> Self:
        obj = cls(
            delta=state.delta,
            clock=state.clock,
            max_buckets=state.max_buckets,
            min_window_length=state.min_window_length,
            grace_period=state.grace_period,
        )
        ad = load_as(drift.ADWIN, state.river_version, state.window, "adwin window")
        if {p: getattr(ad, p) for p in _PARAMS} != obj.params:
            raise StateVersionError("adwin window parameters differ from the state's parameters")
        obj._ad = ad
        obj._change_offset = state.change_offset
        return obj
