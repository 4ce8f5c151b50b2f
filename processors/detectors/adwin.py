"""ADWIN (river's) with an exact checkpoint.

river 0.26 implements ADWIN's bucket structure in Rust
(``river._river_rust.drift.AdaptiveWindowing``). Its only export is
``__getstate__``: the struct serialised with bincode. The checkpoint stores
those bytes base64-encoded inside the JSON state, together with the river
version that wrote them. The trade-off, deliberately accepted:

- restoring is exact (same buckets, totals, variances, clock phase), and
  ``__setstate__`` only decodes plain numbers -- unlike a pickle it cannot
  run code;
- but the bytes are opaque and tied to river's Rust layout: a checkpoint
  written by another river version is refused with ``StateVersionError``
  (the caller starts that detector afresh) rather than risk a silently
  mis-decoded window.
"""

from __future__ import annotations

import base64
import math
from typing import Any, Self

import river
from river import drift

from processors.detectors.base import Detector, StateVersionError


class Adwin(Detector):
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

    name = "adwin"
    STATE_VERSION = 1

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
        self._change_offset = 0

    @property
    def params(self) -> dict[str, Any]:
        """Constructor arguments."""
        ad = self._ad
        return {
            "delta": float(ad.delta),
            "clock": int(ad.clock),
            "max_buckets": int(ad.max_buckets),
            "min_window_length": int(ad.min_window_length),
            "grace_period": int(ad.grace_period),
        }

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

    @property
    def change_offset(self) -> int:
        """At a detection: the window kept after the cut, minus one."""
        return self._change_offset

    def _reset(self) -> None:
        self._ad._reset()

    def _update(self, x: float) -> bool:
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"Adwin got a non-finite observation {x!r}")
        self._ad.update(x)
        if self._ad.drift_detected:
            self._change_offset = max(0, self.width - 1)
            return True
        return False

    def _get_state(self) -> dict[str, Any]:
        blob = self._ad._helper.__getstate__()
        return {
            **self.params,
            "river_version": river.__version__,
            "window": base64.b64encode(bytes(blob)).decode("ascii"),
            "change_offset": self._change_offset,
        }

    @classmethod
    def _blank(cls, state: dict[str, Any]) -> Self:
        if state.get("river_version") != river.__version__:
            raise StateVersionError(
                f"adwin window written by river {state.get('river_version')!r}, "
                f"this build runs river {river.__version__}"
            )
        return cls(
            delta=float(state["delta"]),
            clock=int(state["clock"]),
            max_buckets=int(state["max_buckets"]),
            min_window_length=int(state["min_window_length"]),
            grace_period=int(state["grace_period"]),
        )

    def _set_state(self, state: dict[str, Any]) -> None:
        expected = self._ad._helper.__getnewargs__()
        try:
            blob = base64.b64decode(state["window"], validate=True)
            self._ad._helper.__setstate__(blob)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            # pyo3 turns a Rust panic on truncated/corrupt bytes into
            # PanicException, which derives from BaseException, not Exception.
            raise StateVersionError(f"adwin window does not decode: {exc}") from None
        if tuple(self._ad._helper.__getnewargs__()) != tuple(expected):
            raise StateVersionError("adwin window parameters differ from the state's parameters")
        self._change_offset = int(state["change_offset"])
