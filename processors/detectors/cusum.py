"""Two-sided CUSUM on standardised scores, calibrated on a correlated reference.

``z = (x - mean) / scale``; ``S+ = max(0, S+ + z - k)``,
``S- = max(0, S- - z - k)``; it fires when either exceeds ``h``. ``k`` is
half the shift (in units of ``scale``) it is tuned to catch fastest.
``Cusum.calibrated`` estimates ``mean``/``scale`` on a reference and picks
``h`` by simulation on surrogates that keep the reference's autocorrelation
(``processors.calibration``), so the mean run length between false alarms on
data like the reference is about ``ert``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, Self

import numpy as np

from processors import calibration
from processors.detectors.base import Detector, DetectorState
from processors.detectors.state import Audit, Float

Side = Literal["both", "up", "down"]
_SIDES = ("both", "up", "down")


class CusumState(DetectorState):
    """Checkpoint of a ``Cusum``: parameters, calibration audit, both sums."""

    type: Literal["cusum"] = "cusum"
    version: Literal[1] = 1
    mean: Float
    scale: Float
    k: Float
    h: Float
    side: Side = "both"
    track: Float = 0.0
    calibration: Audit = {}
    s_pos: Float
    s_neg: Float
    run_pos: int
    run_neg: int
    direction: int
    change_offset: int


class Cusum(Detector[CusumState]):
    """Two-sided CUSUM.

    Parameters
    ----------
    mean, scale
        Standardisation: the detector watches ``(x - mean) / scale``.
    k
        Allowance (reference value) per update, in units of ``scale``.
    h
        Decision threshold on either cumulative sum.
    side
        ``"both"`` (default), ``"up"`` (only ``S+`` may fire: scores that
        grow under drift, such as a reconstruction error) or ``"down"``.
    track
        Weight of an exponentially weighted baseline: after every update
        without a detection, ``mean += track * (x - mean)``. ``0`` (default)
        keeps the reference mean fixed. A tracking baseline follows a camera's
        slow natural wander (light over the day, the view drifting) so that
        only changes faster than about ``1 / track`` updates accumulate; a
        change ramping in more slowly than that is partly absorbed.
    calibration
        JSON-safe description of how ``mean``/``scale``/``h`` were obtained
        (kept in ``state()`` for audit; not used by the recursion).

    Examples
    --------
    >>> det = Cusum(mean=0.0, scale=1.0, k=0.5, h=4.0)
    >>> for i, x in enumerate([0.0] * 5 + [2.0] * 10):
    ...     det.update(x)
    ...     if det.drift_detected:
    ...         print(i, det.direction, det.change_offset, det.statistic)
    ...         break
    7 1 2 4.5
    """

    State = CusumState

    def __init__(
        self,
        mean: float = 0.0,
        scale: float = 1.0,
        k: float = 0.5,
        h: float = 5.0,
        *,
        side: Side = "both",
        track: float = 0.0,
        calibration: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not (math.isfinite(track) and 0.0 <= track < 1.0):
            raise ValueError(f"track must be in [0, 1), got {track!r}")
        self.track = float(track)
        if side not in _SIDES:
            raise ValueError(f"side must be one of {_SIDES}, got {side!r}")
        self.side: Side = side
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be finite and > 0, got {scale!r}")
        if not (math.isfinite(k) and k >= 0):
            raise ValueError(f"k must be finite and >= 0, got {k!r}")
        if not (math.isfinite(h) and h > 0):
            raise ValueError(f"h must be finite and > 0, got {h!r}")
        if not math.isfinite(mean):
            raise ValueError(f"mean must be finite, got {mean!r}")
        self.mean = float(mean)
        self.scale = float(scale)
        self.k = float(k)
        self.h = float(h)
        self.calibration = dict(calibration or {})
        self.direction = 0
        self._reset()

    def _reset(self) -> None:
        self.s_pos = 0.0
        self.s_neg = 0.0
        # Updates since each sum last left zero: the change-point estimate.
        self.run_pos = 0
        self.run_neg = 0

    @property
    def statistic(self) -> float:
        """``max(S+, S-)`` over the watched side(s)."""
        if self.side == "up":
            return self.s_pos
        if self.side == "down":
            return self.s_neg
        return max(self.s_pos, self.s_neg)

    @property
    def threshold(self) -> float:
        """``h``."""
        return self.h

    def _update(self, x: float) -> bool:
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"Cusum got a non-finite observation {x!r}")
        z = (x - self.mean) / self.scale
        # max(0, .) and the runs spelled out (no builtin calls): this runs once
        # per signal and twin per event, the monitor's hottest line
        # (bench_monitor.throughput_edge).
        sp = self.s_pos + z - self.k
        if sp > 0.0:
            self.run_pos += 1
        else:
            sp, self.run_pos = 0.0, 0
        sn = self.s_neg - z - self.k
        if sn > 0.0:
            self.run_neg += 1
        else:
            sn, self.run_neg = 0.0, 0
        self.s_pos, self.s_neg = sp, sn
        h = self.h
        up = sp > h and self.side != "down"
        down = sn > h and self.side != "up"
        if not (up or down):
            if self.track:
                self.mean += self.track * (x - self.mean)
            return False
        # Both sides over h at once only after a huge jump; report the larger.
        if up and (not down or self.s_pos >= self.s_neg):
            self.direction, self._change_offset = 1, max(0, self.run_pos - 1)
        else:
            self.direction, self._change_offset = -1, max(0, self.run_neg - 1)
        return True

    def _to_state(self) -> CusumState:
        return CusumState(
            mean=self.mean,
            scale=self.scale,
            k=self.k,
            h=self.h,
            side=self.side,
            track=self.track,
            calibration=self.calibration,
            s_pos=self.s_pos,
            s_neg=self.s_neg,
            run_pos=self.run_pos,
            run_neg=self.run_neg,
            direction=self.direction,
            change_offset=self._change_offset,
        )

    @classmethod
    def _from_state(cls, state: CusumState) -> Self:
        obj = cls(
            mean=state.mean,
            scale=state.scale,
            k=state.k,
            h=state.h,
            side=state.side,
            track=state.track,
            calibration=state.calibration,
        )
        obj.s_pos, obj.s_neg = state.s_pos, state.s_neg
        obj.run_pos, obj.run_neg = state.run_pos, state.run_neg
        obj.direction, obj._change_offset = state.direction, state.change_offset
        return obj

    @classmethod
    def calibrated(
        cls,
        reference: Sequence[float] | np.ndarray,
        ert: float,
        *,
        k: float = 0.5,
        side: Side = "both",
        seed: int = 0,
        surrogate: calibration.SurrogateMethod = "ar",
        inflate: bool = True,
        level_noise: bool = True,
        n_streams: int = 1000,
        horizon: int = 2000,
        max_order: int = 5,
        min_scale: float | None = None,
    ) -> Self:
        """A Cusum whose mean run length to a false alarm on data like ``reference`` is ``ert``.

        ``mean`` is the clipped mean of the reference (a CUSUM centred on the
        median drifts on skewed signals), ``scale`` its MAD-based scale times
        the between-block inflation (``inflate``). ``h`` is found by
        simulation on ``n_streams`` surrogate streams of ``horizon`` updates
        (``surrogate="ar"``: AR(p) with bootstrapped residuals; ``"iid"``
        ignores autocorrelation and exists to show what that costs).

        ``min_scale`` (signal units) is a floor on the standardising scale:
        the smallest deviation worth caring about. ``h`` is then calibrated
        on ``max(scale, min_scale)``, and the detector standardises by
        ``max(max(scale, min_scale), scale * inflation)`` (the inflation can
        only lengthen the run length, never shorten it).

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> ref = calibration.ar1_stream(rng, 1000, rho=0.85)
        >>> corr = Cusum.calibrated(ref, ert=10_000)
        >>> iid = Cusum.calibrated(ref, ert=10_000, surrogate="iid", inflate=False)
        >>> bool(corr.h > 2 * iid.h)   # correlation needs a much higher threshold
        True
        """
        ref, profile, model = profile_and_fit(reference, max_order)
        mean, scale = profile.mean, profile.scale
        if min_scale is not None:
            if not (math.isfinite(min_scale) and min_scale >= 0):
                raise ValueError(f"min_scale must be finite and >= 0, got {min_scale!r}")
            scale = max(scale, float(min_scale))
        k = float(k)

        def paths_of(streams: np.ndarray) -> np.ndarray:
            return cusum_paths((streams - mean) / scale, k, side)

        # Siegmund/Brownian slope of log ARL in h: 2k / v, v the long-run
        # variance of the standardised score (fallback for extrapolation).
        v = max(profile.long_run_variance / scale**2, 1e-12)
        if surrogate == "iid":
            v = max(profile.variance / scale**2, 1e-12)
        fit = calibration.calibrate_threshold(
            ref,
            ert,
            paths_of,
            seed=seed,
            n_streams=n_streams,
            horizon=horizon,
            method=surrogate,
            level_noise=level_noise,
            slope_hint=2 * k / v if k > 0 else None,
            model=model,
        )
        inflation = profile.inflation if inflate else 1.0
        deployed = max(scale, profile.scale * inflation)
        info = calibration_audit(
            ert, surrogate, seed, profile, fit,
            inflation=inflation, min_scale=None if min_scale is None else float(min_scale),
        )
        return cls(mean=mean, scale=deployed, k=k, h=fit.threshold, side=side, calibration=info)


def profile_and_fit(
    reference: Sequence[float] | np.ndarray, max_order: int
) -> tuple[np.ndarray, calibration.ReferenceProfile, calibration.ARModel]:
    """The reference as floats, its profile and its AR(p) fit (what calibration starts from)."""
    ref = np.asarray(reference, dtype=float)
    profile = calibration.profile_reference(ref, max_order=max_order)
    return ref, profile, calibration.fit_ar(ref, max_order=max_order)


def calibration_audit(
    ert: float,
    surrogate: str,
    seed: int,
    profile: calibration.ReferenceProfile,
    fit: calibration.ThresholdFit,
    **extra: Any,
) -> dict[str, Any]:
    """The JSON-safe record of a simulated calibration, kept in the detector's state."""
    return {
        "ert": float(ert),
        "surrogate": surrogate,
        "seed": int(seed),
        "profile": profile.as_dict(),
        "fit": fit.as_dict(),
        **extra,
    }


def cusum_paths(z: np.ndarray, k: float, side: Side = "both") -> np.ndarray:
    """``max(S+, S-)`` (or one side) along each row of ``z`` (standardised), never restarted.

    The recursion ``S_t = max(0, S_{t-1} + w_t)`` is Lindley's: with
    ``W_t = w_1 + ... + w_t``, ``S_t = W_t - min(0, min_{s<=t} W_s)`` --
    vectorised with ``cumsum`` and ``minimum.accumulate``.

    Examples
    --------
    >>> cusum_paths(np.array([[1.0, 1.0, -3.0, 0.0]]), 0.5).tolist()
    [[0.5, 1.0, 2.5, 2.0]]
    """
    z = np.atleast_2d(np.asarray(z, dtype=float))
    if side == "down":
        return _lindley(-z - k)
    out = _lindley(z - k)
    if side == "both":
        np.maximum(out, _lindley(-z - k), out=out)
    return out


def _lindley(w: np.ndarray) -> np.ndarray:
    cum = np.cumsum(w, axis=1)
    low = np.minimum.accumulate(cum, axis=1)
    np.minimum(low, 0.0, out=low)
    cum -= low
    return cum
