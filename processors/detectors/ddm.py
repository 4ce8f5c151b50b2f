"""DDM (river's Drift Detection Method) on the error stream, with an exact checkpoint.

DDM watches a stream of bits (1 = the deployed model was wrong on a labelled
frame, 0 = right). It keeps the running error rate ``p`` since its last reset
and its binomial standard error ``s = sqrt(p (1 - p) / n)``, remembers the
pair ``(p_min, s_min)`` at which ``p + s`` was smallest, and fires when
``p + s > p_min + drift_threshold * s_min`` (warns at ``warning_threshold``).

river's ``drift.binary.DDM`` is pure Python: its state is a running mean and
three floats. This wrapper writes them as JSON numbers (bit-for-bit through
``json.dumps``/``json.loads``; the initial ``+inf`` as a string) with the
river version that produced them. river 0.26 has no public accessor for them
(``RIVER_PRIVATE`` below; ``clone`` starts afresh, and its pickle would be an
opaque blob where the minimum is worth seeing), and the statistic and the
zero-variance guard need ``p_min``/``s_min`` too, so the wrapper reads and
writes those private attributes: a checkpoint from another river version is
refused with ``StateVersionError`` (start the detector afresh) rather than
loaded into attributes whose meaning may have moved, and
``tests/unit/detectors/test_river_pins.py`` pins their names and that copying
them into a fresh river DDM continues it exactly (a river upgrade that moves
them fails there, loudly).

One deliberate departure from river, on by default (``guard_zero_variance``):
when the first ``warm_start`` labels are all correct, river records
``p_min = s_min = 0`` and then fires on the very *first* error, whatever the
true error rate. For a good model (error rate 1-5 %) that happens on most
streams (0.98^30 = 55 %): a false alarm per reset. With the guard, a minimum
with ``s_min = 0`` is not kept (``p_min`` is taken again at the next update),
so DDM fires only against a minimum with a non-zero standard error. With
``guard_zero_variance=False`` the detector is exactly river's.

DDM is not ERT-calibrated: like ADWIN it assumes independent observations,
which the error stream of labelled frames nearly is. Its detection delay
grows with the length of the clean stretch before a change (``p_min`` and
``s_min`` come from the whole history since the last reset).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Self

import river
from river import drift

from processors.detectors.base import Detector, DetectorState
from processors.detectors.state import Float, RiverVersion
from processors.learners.river_state import running_mean

# river 0.26 ``drift.binary.DDM``'s running state: no public API reads or sets it.
RIVER_PRIVATE = ("_p", "_p_min", "_s_min", "_ps_min", "_warning_detected", "_drift_detected")


class DdmState(DetectorState):
    """Checkpoint of a ``Ddm``: parameters and river's running error rate and minimum."""

    type: Literal["ddm"] = "ddm"
    version: Literal[1] = 1
    warm_start: int
    warning_threshold: Float
    drift_threshold: Float
    guard_zero_variance: bool
    river_version: RiverVersion
    p_n: Float
    p_mean: Float
    p_min: Float | None
    s_min: Float | None
    ps_min: Float
    warning_detected: bool
    n_warn_start: int | None
    change_offset: int


class Ddm(Detector[DdmState]):
    """river's DDM, checkpointable, for a 0/1 error stream.

    Parameters
    ----------
    warm_start, warning_threshold, drift_threshold
        As in ``river.drift.binary.DDM`` (same defaults).
    guard_zero_variance
        Do not keep a minimum with ``s_min = 0`` (see the module docstring);
        ``False`` behaves exactly like river.

    Notes
    -----
    ``statistic`` is ``(p + s - p_min) / s_min``: how many minimum standard
    errors the current error rate sits above its best level (0 during the warm
    start); ``threshold`` is ``drift_threshold``. ``warning_detected`` is
    river's warning zone. At a detection ``change_offset`` is the number of
    updates since DDM entered the warning zone it was in (0 if it jumped
    straight to a detection): the warning onset is DDM's own estimate of
    where the change began (Gama et al. retrain from it).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(42)   # river's own doctest stream and result
    >>> det = Ddm()
    >>> data = rng.choices([0, 1], k=1000) + rng.choices([0, 1], k=1000, weights=[0.3, 0.7])
    >>> for i, x in enumerate(data):
    ...     det.update(x)
    ...     if det.drift_detected:
    ...         print(f"Change detected at index {i}, {det.change_offset} after the warning")
    Change detected at index 1334, 239 after the warning
    """

    State = DdmState

    def __init__(
        self,
        warm_start: int = 30,
        warning_threshold: float = 2.0,
        drift_threshold: float = 3.0,
        *,
        guard_zero_variance: bool = True,
    ) -> None:
        super().__init__()
        if not (0 < warning_threshold <= drift_threshold):
            raise ValueError(
                f"need 0 < warning_threshold <= drift_threshold, got "
                f"{warning_threshold!r}, {drift_threshold!r}"
            )
        self._ddm = drift.binary.DDM(
            warm_start=int(warm_start),
            warning_threshold=float(warning_threshold),
            drift_threshold=float(drift_threshold),
        )
        self.guard_zero_variance = bool(guard_zero_variance)
        self._n_warn_start: int | None = None

    @property
    def params(self) -> dict[str, Any]:
        """Constructor arguments."""
        d = self._ddm
        return {
            "warm_start": int(d.warm_start),
            "warning_threshold": float(d.warning_threshold),
            "drift_threshold": float(d.drift_threshold),
            "guard_zero_variance": self.guard_zero_variance,
        }

    @property
    def n(self) -> int:
        """Observations since the last reset."""
        return int(self._ddm._p.n)

    @property
    def error_rate(self) -> float:
        """Running error rate since the last reset."""
        return float(self._ddm._p.get())

    @property
    def warning_detected(self) -> bool:
        """Whether the last update put DDM in its warning zone."""
        return bool(self._ddm.warning_detected)

    @property
    def statistic(self) -> float:
        """``(p + s - p_min) / s_min``; 0 before the warm start ends or while ``s_min`` is 0."""
        d = self._ddm
        if d._p_min is None or d._s_min is None or d._s_min <= 0.0:
            return 0.0
        p = d._p.get()
        s = math.sqrt(p * (1.0 - p) / d._p.n)
        return max(0.0, (p + s - d._p_min) / d._s_min)

    @property
    def threshold(self) -> float:
        """``drift_threshold``."""
        return float(self._ddm.drift_threshold)

    def _reset(self) -> None:
        self._ddm = self._ddm.clone()  # what river's own reset does: a fresh detector
        self._n_warn_start = None

    def _update(self, x: float) -> bool:
        # Anything but a bit would push p outside [0, 1] and s to a complex sqrt.
        if isinstance(x, bool):
            x = int(x)
        if x not in (0, 1):
            raise ValueError(f"Ddm takes 0/1 (error bits), got {x!r}")
        d = self._ddm
        d.update(int(x))
        n = int(d._p.n)
        if d.drift_detected:
            start = self._n_warn_start
            self._change_offset = 0 if start is None else n - start
            return True
        if self.guard_zero_variance and d._s_min == 0.0:
            # Forget a zero-variance minimum: against s_min = 0 any error fires.
            d._ps_min = math.inf
        if d.warning_detected:
            if self._n_warn_start is None:
                self._n_warn_start = n
        else:
            self._n_warn_start = None
        return False

    def _to_state(self) -> DdmState:
        d = self._ddm
        return DdmState(
            **self.params,
            river_version=river.__version__,
            p_n=d._p.n,
            p_mean=d._p.get(),
            p_min=d._p_min,
            s_min=d._s_min,
            ps_min=d._ps_min,
            warning_detected=d.warning_detected,
            n_warn_start=self._n_warn_start,
            change_offset=self._change_offset,
        )

    @classmethod
    def _from_state(cls, state: DdmState) -> Self:
        obj = cls(
            warm_start=state.warm_start,
            warning_threshold=state.warning_threshold,
            drift_threshold=state.drift_threshold,
            guard_zero_variance=state.guard_zero_variance,
        )
        d = obj._ddm
        d._p = running_mean(state.p_n, state.p_mean)
        d._p_min = state.p_min
        d._s_min = state.s_min
        d._ps_min = state.ps_min
        d._warning_detected = state.warning_detected
        # river's own flag: DDM resets itself on the update after a detection.
        # Our base class performs that reset; keep river's flag consistent anyway.
        d._drift_detected = state.drift_detected
        obj._n_warn_start = state.n_warn_start
        obj._change_offset = state.change_offset
        return obj
