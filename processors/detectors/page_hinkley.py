"""Page-Hinkley (river's) with an exact checkpoint and a calibrated threshold.

river's ``drift.PageHinkley`` keeps a running mean since its last reset and
two faded cumulative sums of deviations from it; it fires when a sum moves
more than ``threshold`` away from its extreme. river cannot checkpoint it to
JSON; this wrapper reads and writes those few floats (bit-for-bit through
``json.dumps``/``json.loads``) and tracks when each extreme was set, which
gives ``change_offset``.

river 0.26 has no public accessor for that running state (``RIVER_PRIVATE``
below): ``Base.clone`` starts afresh, and pickling the detector captures a
bound method (``_test_drift``) that the checkpoints' restricted unpickler
refuses (``processors.learners.river_state``). The wrapper therefore reads
and writes those private attributes; ``tests/unit/detectors/
test_river_pins.py`` pins their names and that copying them into a fresh
river detector continues it exactly, so a river upgrade that changes them
fails there, loudly, rather than in a restored monitor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, Self, cast

import numpy as np
from river import drift
from scipy import signal

from processors import calibration
from processors.detectors.base import Detector, DetectorState
from processors.detectors.cusum import calibration_audit, profile_and_fit
from processors.detectors.state import Audit, Float
from processors.learners.river_state import running_mean

Mode = Literal["up", "down", "both"]
_MODES = ("up", "down", "both")
# river 0.26 ``drift.PageHinkley``'s running state: no public API reads or sets it.
RIVER_PRIVATE = ("_x_mean", "_sum_increase", "_sum_decrease", "_min_increase", "_max_decrease")


class PageHinkleyState(DetectorState):
    """Checkpoint of a ``PageHinkley``: river's parameters and running state, extremes' times."""

    type: Literal["page_hinkley"] = "page_hinkley"
    version: Literal[1] = 1
    min_instances: int
    delta: Float
    threshold: Float
    alpha: Float
    mode: Mode
    calibration: Audit = {}
    mean_n: Float
    mean: Float
    sum_increase: Float
    sum_decrease: Float
    min_increase: Float
    max_decrease: Float
    n_at_min: int
    n_at_max: int
    change_offset: int


class PageHinkley(Detector[PageHinkleyState]):
    """river's Page-Hinkley test, checkpointable.

    Parameters
    ----------
    min_instances, delta, threshold, alpha, mode
        As in ``river.drift.PageHinkley`` (same defaults).
    calibration
        JSON-safe description of how the threshold was obtained (audit only).

    Notes
    -----
    At a detection ``change_offset`` is the number of updates since the
    firing sum was at its extreme: a good onset estimate only when ``delta``
    is of the order of the shift (as after ``calibrated``); with river's tiny
    default ``delta`` the sums are random walks whose extreme may be long
    before the change.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(12345)   # river's own doctest stream and result
    >>> ph = PageHinkley()
    >>> data = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
    >>> for i, val in enumerate(data):
    ...     ph.update(val)
    ...     if ph.drift_detected:
    ...         print(f"Change detected at index {i}, input value: {val}")
    Change detected at index 1006, input value: 5
    """

    State = PageHinkleyState

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
        *,
        calibration: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if not (math.isfinite(threshold) and threshold > 0):
            raise ValueError(f"threshold must be finite and > 0, got {threshold!r}")
        self._ph = drift.PageHinkley(
            min_instances=int(min_instances),
            delta=float(delta),
            threshold=float(threshold),
            alpha=float(alpha),
            mode=mode,
        )
        self.calibration = dict(calibration or {})
        self._n_at_min = 0
        self._n_at_max = 0

    # Parameters live on the river object; read them from there.
    @property
    def min_instances(self) -> int:
        """Updates after a reset before it may fire."""
        return int(self._ph.min_instances)

    @property
    def delta(self) -> float:
        """Tolerated drift of the mean per update."""
        return float(self._ph.delta)

    @property
    def alpha(self) -> float:
        """Fading factor of the cumulative sums."""
        return float(self._ph.alpha)

    @property
    def mode(self) -> str:
        """``"up"``, ``"down"`` or ``"both"``."""
        return str(self._ph.mode)

    @property
    def threshold(self) -> float:
        """river's ``threshold`` (lambda)."""
        return float(self._ph.threshold)

    @property
    def statistic(self) -> float:
        """The larger watched test value (0 before any update)."""
        ph = self._ph
        inc = ph._sum_increase - ph._min_increase
        dec = ph._max_decrease - ph._sum_decrease
        val = {"up": inc, "down": dec, "both": max(inc, dec)}[ph.mode]
        return max(0.0, val) if math.isfinite(val) else 0.0

    def _reset(self) -> None:
        self._ph = self._ph.clone()  # what river's own reset does: a fresh detector
        self._n_at_min = 0
        self._n_at_max = 0

    def _update(self, x: float) -> bool:
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"PageHinkley got a non-finite observation {x!r}")
        ph = self._ph
        old_min, old_max = ph._min_increase, ph._max_decrease
        ph.update(x)
        n = int(ph._x_mean.n)
        if ph._min_increase < old_min:
            self._n_at_min = n
        if ph._max_decrease > old_max:
            self._n_at_max = n
        if not ph.drift_detected:
            return False
        inc = ph._sum_increase - ph._min_increase
        dec = ph._max_decrease - ph._sum_decrease
        up = ph.mode == "up" or (ph.mode == "both" and inc > ph.threshold and inc >= dec)
        self._change_offset = n - (self._n_at_min if up else self._n_at_max)
        return True

    def _to_state(self) -> PageHinkleyState:
        ph = self._ph
        return PageHinkleyState(
            min_instances=self.min_instances,
            delta=self.delta,
            threshold=self.threshold,
            alpha=self.alpha,
            mode=cast(Mode, ph.mode),
            calibration=self.calibration,
            mean_n=ph._x_mean.n,
            mean=ph._x_mean.get(),
            sum_increase=ph._sum_increase,
            sum_decrease=ph._sum_decrease,
            min_increase=ph._min_increase,
            max_decrease=ph._max_decrease,
            n_at_min=self._n_at_min,
            n_at_max=self._n_at_max,
            change_offset=self._change_offset,
        )

    @classmethod
    def _from_state(cls, state: PageHinkleyState) -> Self:
        obj = cls(
            state.min_instances,
            state.delta,
            state.threshold,
            state.alpha,
            state.mode,
            calibration=state.calibration,
        )
        ph = obj._ph
        ph._x_mean = running_mean(state.mean_n, state.mean)
        ph._sum_increase = state.sum_increase
        ph._sum_decrease = state.sum_decrease
        ph._min_increase = state.min_increase
        # river starts it at the int -1; setattr keeps the float without a type clash.
        setattr(ph, "_max_decrease", state.max_decrease)  # noqa: B010
        obj._n_at_min, obj._n_at_max = state.n_at_min, state.n_at_max
        obj._change_offset = state.change_offset
        return obj

    @classmethod
    def calibrated(
        cls,
        reference: Sequence[float] | np.ndarray,
        ert: float,
        *,
        seed: int = 0,
        min_instances: int = 30,
        delta: float | None = None,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
        surrogate: calibration.SurrogateMethod = "ar",
        n_streams: int | None = None,
        horizon: int | None = None,
        max_order: int = 5,
    ) -> Self:
        """A Page-Hinkley whose ``threshold`` gives ``ert`` updates per false alarm.

        Page-Hinkley works in the signal's raw units, so ``delta=None`` means
        ``0.5 x`` the reference's robust scale (as ``Cusum``'s ``k=0.5``;
        river's default ``0.005`` is unit-dependent). The threshold is found
        by simulating this exact recursion on surrogates that keep the
        reference's autocorrelation (``processors.calibration``).

        Unlike a CUSUM, Page-Hinkley's run length is not geometric: its
        sums are measured from a running mean that settles over thousands of
        updates, so its hazard *grows* with time and a short simulation
        horizon overestimates the run length (2x at ert=10,000). The horizon
        therefore defaults to ``2 x ert`` (capped at 20,000 updates, with
        ``n_streams = 2e6 / horizon``); beyond the cap the threshold is an
        extrapolation and optimistic -- prefer ``Cusum`` for large budgets.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> ref = calibration.ar1_stream(rng, 1000, rho=0.85)
        >>> ph = PageHinkley.calibrated(ref, ert=10_000)
        >>> ph.calibration["fit"]["method"], bool(ph.threshold > 5)
        ('simulated', True)
        """
        ref, profile, model = profile_and_fit(reference, max_order)
        if delta is None:
            delta = 0.5 * profile.scale
        delta = float(delta)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")

        def paths_of(streams: np.ndarray) -> np.ndarray:
            return page_hinkley_paths(streams, min_instances, delta, alpha, mode)

        if horizon is None:
            horizon = int(min(20_000, max(2_000, 2 * ert)))
        if n_streams is None:
            n_streams = int(min(1_000, max(100, 2_000_000 // horizon)))
        lrv = profile.variance if surrogate == "iid" else profile.long_run_variance
        fit = calibration.calibrate_threshold(
            ref,
            ert,
            paths_of,
            seed=seed,
            n_streams=n_streams,
            horizon=horizon,
            method=surrogate,
            slope_hint=2 * delta / lrv if lrv > 0 and delta > 0 else None,
            model=model,
        )
        info = calibration_audit(ert, surrogate, seed, profile, fit)
        return cls(min_instances, delta, fit.threshold, alpha, mode, calibration=info)


def page_hinkley_paths(
    x: np.ndarray, min_instances: int, delta: float, alpha: float, mode: str
) -> np.ndarray:
    """Page-Hinkley's watched statistic along each row of ``x``, never restarted.

    Mirrors river's recursion (running mean since reset, faded sums, the
    ``-1`` start of ``max_decrease``); ``-inf`` before ``min_instances``.

    Examples
    --------
    >>> x = np.array([[0.0, 0.0, 0.0, 5.0, 5.0]])
    >>> page_hinkley_paths(x, 1, 0.0, 1.0, "up").round(2).tolist()
    [[0.0, 0.0, 0.0, 3.75, 6.75]]
    """
    x = np.atleast_2d(np.asarray(x, dtype=float))
    n = np.arange(1, x.shape[1] + 1, dtype=float)
    dev = x - np.cumsum(x, axis=1) / n
    out = np.full(x.shape, -np.inf)
    if mode in ("up", "both"):
        s = signal.lfilter([1.0], [1.0, -alpha], dev - delta, axis=1)
        out = np.maximum(out, s - np.minimum.accumulate(s, axis=1))
    if mode in ("down", "both"):
        s = signal.lfilter([1.0], [1.0, -alpha], dev + delta, axis=1)
        top = np.maximum(np.maximum.accumulate(s, axis=1), -1.0)
        out = np.maximum(out, top - s)
    out[:, : max(0, min_instances - 1)] = -np.inf
    return out
