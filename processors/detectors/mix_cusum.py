"""Per-class CUSUMs of a class mix against a lagged, slowly tracking baseline mix.

A camera's classifier sees a mix of classes that wanders on its own (traffic
over the day: log-shares moving by ~0.2 over minutes): a test against the
fixed warm-up mix (``ChiSquaredMix``) sees that wander grow as large as a real
change, and a class tripling its share was missed (bench/README.md). This
detector compares each class's share with a *baseline* mix that follows the
stream slowly and late:

- the stream is cut into blocks of ``block`` predictions; a block's class
  counts enter the baseline (an exponentially weighted mix, half-life
  ``halflife`` predictions) only ``lag_blocks`` blocks later, so a change is
  tested against the mix from before it for ``lag_blocks * block``
  predictions, long enough to be detected before the baseline follows it;
- each class bin (the reference's classes, the rest pooled into "other") has
  two CUSUMs of a Bernoulli log-likelihood ratio: "up", share ``p0`` (the
  baseline's) against ``p1 = max(r p0 / (1 + (r - 1) p0), p0 + min_shift)``
  (the share multiplied by ``ratio``, renormalised, or raised by
  ``min_shift`` at least, so a class the baseline barely knows counts fast),
  and "down", ``p0`` against ``p0 / (p0 + r (1 - p0))``. A wander of the
  share by less than about ``sqrt(ratio)`` drifts the log-likelihood ratio
  downwards: the allowance that absorbs the scene's own wander;
- classes persist over frames (an object stays in view for a while), so one
  prediction is not one independent draw: the likelihood is that of a sticky
  Markov chain (keep the previous class with probability ``s``, the
  reference's excess same-class persistence, ``windowed._persistence``; else
  draw from the mix). A prediction of another class than the last one is a
  fresh draw and counts fully; a repeat counts little (``transition_llrs``).
  (Dividing a per-prediction ratio by the variance inflation
  ``(1 + s) / (1 - s)`` instead was tried first: it also discards the
  information in *where* the runs start, and was ~1.5-2x slower to detect.)

The statistic is the largest of the ``2 n_bins`` CUSUMs; the threshold is
calibrated by simulation (``MixCusum.calibrated``) on sticky-Markov
surrogates of the reference (``windowed.sticky_markov``) running this same
tracking statistic, each surrogate starting from the histogram of its own
first ``len(reference)`` values, as production starts from a reference that
is itself a sample.

Memory is bounded: ``lag_blocks`` blocks of ``n_bins`` counts, the baseline
and two sums per bin. Per update: one pass over the bins (plain Python; the
increments change only once a block, when a block enters the baseline).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, Self

import numpy as np
from pydantic import model_validator

from processors import calibration
from processors.detectors.base import Detector, DetectorState
from processors.detectors.cusum import _lindley
from processors.detectors.state import Audit, Float, FloatList
from processors.detectors.windowed import _binning, _persistence, _smoothed, sticky_markov

# A baseline share is kept inside [P_MIN, 1 - P_MIN]: the log-likelihood ratio
# of a class the baseline has not seen for a long time stays finite.
P_MIN = 1e-4
# The "same class again" persistence is capped here: a reference of a single
# class that never changes would otherwise make every repeat weightless.
S_MAX = 0.99
# The run length simulated directly; the threshold for longer ones is extended.
SIM_ERT = 20_000.0


class MixCusumState(DetectorState):
    """Checkpoint of a ``MixCusum``: parameters, baseline, lag blocks and the sums."""

    type: Literal["mix_cusum"] = "mix_cusum"
    version: Literal[1] = 1
    probs: FloatList
    classes: list[int]
    threshold: Float
    ratio: Float
    min_shift: Float
    stay: Float
    block: int
    lag_blocks: int
    halflife: Float
    calibration: Audit = {}
    baseline: FloatList
    # The last ``lag_blocks`` complete blocks' counts (oldest first), padded
    # with empty blocks to ``lag_blocks`` (a checkpoint that does not grow while
    # the lag fills): the first ``lag_filled`` are real. The block being filled.
    lag: list[list[int]]
    lag_filled: int
    current: list[int]
    s_up: FloatList
    s_down: FloatList
    # Update count at which each sum last left zero (the change-point estimate).
    start_up: list[int]
    start_down: list[int]
    t: int
    # Bin of the previous prediction (-1: none yet).
    last: int = -1
    direction: int = 0
    which: int = -1
    change_offset: int = 0

    @model_validator(mode="after")
    def _shapes(self) -> Self:
        n = len(self.probs)
        if len(self.classes) != n - 1:
            raise ValueError(f"{n} bins need {n - 1} classes (the last is 'other')")
        for name in ("baseline", "current", "s_up", "s_down", "start_up", "start_down"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} holds {len(getattr(self, name))} values, not {n}")
        if len(self.lag) != self.lag_blocks or any(len(b) != n for b in self.lag):
            raise ValueError(f"lag must hold {self.lag_blocks} blocks of {n} counts")
        if not 0 <= self.lag_filled <= self.lag_blocks:
            raise ValueError(f"lag_filled must be in 0..{self.lag_blocks}")
        if sum(self.current) >= self.block:
            raise ValueError(f"current holds {sum(self.current)} >= block {self.block} values")
        return self


def alternatives(p0: np.ndarray, ratio: float, min_shift: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(p0, up, down)``: baseline shares (clipped) and each bin's two alternative shares.

    >>> [v.round(3).tolist() for v in alternatives(np.array([0.5, 0.02]), 3.0, 0.05)]
    [[0.5, 0.02], [0.75, 0.07], [0.25, 0.007]]
    """
    p0 = np.clip(np.asarray(p0, dtype=float), P_MIN, 1.0 - P_MIN)
    up = np.minimum(np.maximum(ratio * p0 / (1.0 + (ratio - 1.0) * p0), p0 + min_shift),
                    1.0 - P_MIN / 2)
    return p0, up, p0 / (p0 + ratio * (1.0 - p0))


def transition_llrs(p0: np.ndarray, ratio: float, min_shift: float, stay: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Log-likelihood ratios of one prediction under a sticky Markov chain of the mix.

    The chain keeps the previous bin with probability ``stay``, else draws
    from the mix: ``P(d | a) = stay [d = a] + (1 - stay) p(d)``. For the test
    of bin ``c`` the alternative mix gives ``c`` its up (or down) share and
    scales every other bin by ``(1 - p1_c) / (1 - p0_c)``. Returned as
    ``(change_up, change_down, same_up, same_down)``, each ``[..., d, c]``:
    the increment of bin ``c``'s CUSUM when the prediction falls in bin ``d``
    after a prediction in another bin (a fresh draw: the full ratio of the
    shares) or in the same bin (mostly persistence: a small ratio). ``p0`` may
    carry leading dimensions.

    Examples
    --------
    >>> cu, cd, su, sd = transition_llrs(np.array([0.5, 0.5]), 3.0, 0.0, 0.0)
    >>> [round(float(v[0, 0]), 4) for v in (cu, cd, su, sd)]   # no persistence: alike
    [0.4055, -0.6931, 0.4055, -0.6931]
    >>> round(float(transition_llrs(np.array([0.5, 0.5]), 3.0, 0.0, 0.9)[2][0, 0]), 4)
    0.026
    """
    p0, up, dn = alternatives(p0, ratio, min_shift)
    n = p0.shape[-1]
    eye = np.eye(n, dtype=bool)
    out = []
    for p1 in (up, dn):
        # alt[..., d, c]: the share of bin d under the alternative of bin c.
        scale = (1.0 - p1) / (1.0 - p0)
        alt = np.where(eye, p1[..., None, :], p0[..., :, None] * scale[..., None, :])
        out.append((alt, p0[..., :, None] + 0.0 * alt))
    (au, pu), (ad, pd) = out
    change_up, change_down = np.log(au / pu), np.log(ad / pd)
    k = 1.0 - stay
    same_up = np.log((stay + k * au) / (stay + k * pu))
    same_down = np.log((stay + k * ad) / (stay + k * pd))
    return change_up, change_down, same_up, same_down


class MixCusum(Detector[MixCusumState]):
    """Two CUSUMs per class share against a lagged tracking baseline (see the module).

    Parameters
    ----------
    probs
        Reference share of each bin (> 0): the baseline's start.
    classes
        Class label of each bin but the last, which pools every other class.
    threshold
        The detector fires when a CUSUM exceeds it.
    ratio
        The share change each CUSUM is tuned to: ``ratio`` times (up) or
        ``1 / ratio`` times (down) the baseline share, renormalised.
    min_shift
        The up-side alternative is at least this much above the baseline share.
    stay
        Probability that a prediction repeats the previous one's bin beyond
        chance (``0`` for independent predictions).
    block, lag_blocks, halflife
        Predictions per block, blocks a block waits before it enters the
        baseline, and the baseline's half-life in predictions.
    lag
        Counts of the last complete blocks (oldest first), e.g. the
        reference's tail, so that tracking starts as soon as possible.
    calibration
        JSON-safe audit of the calibration.

    Examples
    --------
    A sticky stream of three classes (kept with probability 0.8), the rarest
    tripling its share at update 3,000:

    >>> rng = np.random.default_rng(5)
    >>> def stream(n, p):
    ...     out, c = [], 0
    ...     for _ in range(n):
    ...         c = c if rng.random() < 0.8 else int(rng.choice(3, p=p))
    ...         out.append(c)
    ...     return out
    >>> ref = stream(2000, [0.6, 0.3, 0.1])
    >>> det = MixCusum.calibrated(ref, ert=1e6, seed=1)
    >>> det.classes, round(det.stay, 2)
    ([0, 1, 2], 0.81)
    >>> xs = stream(3000, [0.6, 0.3, 0.1]) + stream(3000, [0.5, 0.25, 0.25])
    >>> hit = next(i for i, x in enumerate(xs) if (det.update(x), det.drift_detected)[1])
    >>> hit, det.direction, det.classes[det.which]
    (3706, 1, 2)
    """

    State = MixCusumState

    def __init__(
        self,
        probs: Sequence[float],
        classes: Sequence[int],
        threshold: float,
        *,
        ratio: float = 3.0,
        min_shift: float = 0.05,
        stay: float = 0.0,
        block: int = 100,
        lag_blocks: int = 30,
        halflife: float = 3000.0,
        lag: Sequence[Sequence[int]] = (),
        last: int = -1,
        calibration: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        p = np.asarray(probs, dtype=float)
        if p.ndim != 1 or p.size < 2 or (p <= 0).any() or not np.isfinite(p).all():
            raise ValueError("probs must hold >= 2 positive finite values")
        if len(classes) != p.size - 1:
            raise ValueError(f"{p.size} bins need {p.size - 1} classes (the last is 'other')")
        if not (math.isfinite(threshold) and threshold > 0):
            raise ValueError(f"threshold must be finite and > 0, got {threshold!r}")
        if not (math.isfinite(ratio) and ratio > 1.0):
            raise ValueError(f"ratio must be finite and > 1, got {ratio!r}")
        if not (math.isfinite(min_shift) and 0.0 <= min_shift < 1.0):
            raise ValueError(f"min_shift must be in [0, 1), got {min_shift!r}")
        if not (math.isfinite(stay) and 0.0 <= stay <= S_MAX):
            raise ValueError(f"stay must be in [0, {S_MAX}], got {stay!r}")
        if block < 1 or lag_blocks < 1:
            raise ValueError(f"block and lag_blocks must be >= 1, got {block}, {lag_blocks}")
        if not (math.isfinite(halflife) and halflife > 0):
            raise ValueError(f"halflife must be finite and > 0, got {halflife!r}")
        self.probs = (p / p.sum()).tolist()
        self.classes = [int(c) for c in classes]
        self._bin_of_class = {c: i for i, c in enumerate(self.classes)}
        self._threshold = float(threshold)
        self.ratio, self.min_shift, self.stay = float(ratio), float(min_shift), float(stay)
        self.block, self.lag_blocks, self.halflife = int(block), int(lag_blocks), \
            float(halflife)
        self.calibration = dict(calibration or {})
        self.lag: list[list[int]] = [list(map(int, b)) for b in lag][-self.lag_blocks:]
        self.current = [0] * self.n_bins
        self.t = 0
        if not -1 <= last < p.size:
            raise ValueError(f"last must be a bin index or -1, got {last}")
        self.last = int(last)
        self.direction = 0
        self.which = -1
        self._set_baseline(list(self.probs))
        self._reset()

    @property
    def n_bins(self) -> int:
        """Number of bins (classes + "other")."""
        return len(self.probs)

    def bin_of(self, x: float) -> int:
        """Bin index of one class label."""
        return self._bin_of_class.get(int(x), self.n_bins - 1)

    def _set_baseline(self, baseline: list[float]) -> None:
        self.baseline = baseline
        tables = transition_llrs(np.asarray(baseline), self.ratio, self.min_shift, self.stay)
        self._change_up, self._change_down, self._same_up, self._same_down = (
            t.tolist() for t in tables)

    def _reset(self) -> None:
        n = self.n_bins
        self.s_up = [0.0] * n
        self.s_down = [0.0] * n
        self.start_up = [self.t] * n
        self.start_down = [self.t] * n

    @property
    def statistic(self) -> float:
        """The largest of the per-bin up and down CUSUMs."""
        return max(max(self.s_up), max(self.s_down))

    @property
    def threshold(self) -> float:
        """Calibrated threshold."""
        return self._threshold

    def _roll(self) -> None:
        """A block is complete: it joins the lag; the oldest lag block enters the baseline."""
        self.lag.append(self.current)
        self.current = [0] * self.n_bins
        if len(self.lag) <= self.lag_blocks:
            return
        old = self.lag.pop(0)
        a = 1.0 - 0.5 ** (self.block / self.halflife)
        total = float(sum(old))
        self._set_baseline([(1.0 - a) * p + a * c / total
                            for p, c in zip(self.baseline, old, strict=True)])

    def _update(self, x: float) -> bool:
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"{self.name} got a non-finite observation {x!r}")
        b = self.bin_of(x)
        t = self.t = self.t + 1
        s_up, s_dn, h = self.s_up, self.s_down, self._threshold
        if b == self.last:
            row_up, row_dn = self._same_up[b], self._same_down[b]
        else:
            row_up, row_dn = self._change_up[b], self._change_down[b]
        self.last = b
        fired = -1
        for c in range(self.n_bins):
            u, d = s_up[c] + row_up[c], s_dn[c] + row_dn[c]
            if u <= 0.0:
                u = 0.0
            elif s_up[c] == 0.0:
                self.start_up[c] = t
            if d <= 0.0:
                d = 0.0
            elif s_dn[c] == 0.0:
                self.start_down[c] = t
            s_up[c], s_dn[c] = u, d
            if (u > h or d > h) and fired < 0:
                fired = c
        self.current[b] += 1
        if sum(self.current) >= self.block:
            self._roll()
        if fired < 0:
            return False
        up = s_up[fired] >= s_dn[fired]
        self.which, self.direction = fired, 1 if up else -1
        self._change_offset = t - (self.start_up if up else self.start_down)[fired]
        return True

    def _to_state(self) -> MixCusumState:
        return MixCusumState(
            probs=self.probs, classes=self.classes, threshold=self._threshold,
            ratio=self.ratio, min_shift=self.min_shift, stay=self.stay,
            block=self.block, lag_blocks=self.lag_blocks, halflife=self.halflife,
            calibration=self.calibration, baseline=self.baseline,
            lag=[list(b) for b in self.lag]
            + [[0] * self.n_bins for _ in range(self.lag_blocks - len(self.lag))],
            lag_filled=len(self.lag), current=list(self.current),
            s_up=list(self.s_up), s_down=list(self.s_down), start_up=list(self.start_up),
            start_down=list(self.start_down), t=self.t, last=self.last, direction=self.direction,
            which=self.which, change_offset=self._change_offset,
        )

    @classmethod
    def _from_state(cls, state: MixCusumState) -> Self:
        obj = cls(state.probs, state.classes, state.threshold, ratio=state.ratio,
                  min_shift=state.min_shift, stay=state.stay, block=state.block,
                  lag_blocks=state.lag_blocks, halflife=state.halflife,
                  lag=state.lag[: state.lag_filled],
                  last=state.last, calibration=state.calibration)
        # The constructor normalises; the state's shares already are.
        obj.probs = list(state.probs)
        obj._set_baseline(list(state.baseline))
        obj.current = list(state.current)
        obj.s_up, obj.s_down = list(state.s_up), list(state.s_down)
        obj.start_up, obj.start_down = list(state.start_up), list(state.start_down)
        obj.t, obj.direction, obj.which = state.t, state.direction, state.which
        obj._change_offset = state.change_offset
        return obj

    @classmethod
    def calibrated(
        cls,
        reference: Sequence[float] | np.ndarray,
        ert: float,
        *,
        bins: int = 10,
        min_share: float = 0.05,
        ratio: float = 3.0,
        min_shift: float = 0.05,
        block: int = 100,
        lag_blocks: int = 30,
        halflife: float = 3000.0,
        margin: float = 1.0,
        seed: int = 0,
        n_streams: int = 100,
        horizon: int = 20_000,
    ) -> Self:
        """Bins, persistence and a threshold for ``ert`` updates per false alarm.

        Classes with at least ``min_share`` of the reference get a bin each
        (at most ``bins - 1``, the most frequent), the rest share "other".
        The reference's tail (whole blocks, at most ``lag_blocks``) fills the
        lag. The threshold comes from ``n_streams`` sticky-Markov surrogates
        of ``horizon`` updates (``mix_cusum_paths``; the run length beyond
        them is extended with slope 1 in ``log ARL``, see the code), times
        ``margin``: the surrogates' mix does not wander, a camera's does.
        """
        labels = np.asarray(reference, dtype=float).ravel()
        if labels.size < 2 * block or not np.isfinite(labels).all():
            raise ValueError(f"reference of {labels.size} finite labels is too short for "
                             f"blocks of {block}")
        _, counts = np.unique(labels.astype(np.int64), return_counts=True)
        frequent = int((counts >= min_share * labels.size).sum())
        _, classes, idx = _binning(labels, max(2, min(bins, frequent + 1)), True)
        assert classes is not None
        n_bins = len(classes) + 1
        stay = min(S_MAX, _persistence(labels, idx, True))
        params: dict[str, Any] = {"ratio": ratio, "min_shift": min_shift, "stay": stay,
                                  "block": block, "lag_blocks": lag_blocks,
                                  "halflife": halflife}
        rng = np.random.default_rng(seed)
        p_ref = np.bincount(idx, minlength=n_bins) / idx.size
        sims = sticky_markov(rng, p_ref, stay, n_streams, idx.size + horizon)
        paths = mix_cusum_paths(sims[:, : idx.size], sims[:, idx.size:], n_bins, **params)
        # The run length's tail is read after the reference has left the
        # baseline (lag plus two half-lives): the hazard of the steady state,
        # not of the first minutes, whose alarms count in the run length too.
        burn = min(0.5, (lag_blocks * block + 2 * halflife) / paths.shape[1])
        est = calibration.ArlEstimator(paths, n_groups=calibration.N_GROUPS,
                                       burn_fraction=burn)
        # Simulated to a run length the surrogates reach (``SIM_ERT``), then
        # extended with a log-likelihood ratio's slope: its run length grows
        # like exp(h). (Solving for ``ert`` itself extrapolated a fitted slope
        # over 4 decades: thresholds 15-33 between seeds for one reference, and
        # 10x the simulation, 1-3 s per calibration, to narrow it.) Never
        # below what a known baseline needs: a log-likelihood-ratio CUSUM's run
        # length is at least exp(h) (Lorden), so 2 n_bins of them need
        # ln(2 n_bins ert); estimating the baseline can only add to it.
        reach = min(float(ert), SIM_ERT)
        fit = calibration.solve_threshold(est, reach, slope_hint=1.0)
        simulated = fit.threshold + math.log(ert / reach)
        floor = math.log(2 * n_bins * ert)
        info = {"ert": float(ert), "seed": int(seed), "persistence": stay, "fit": fit.as_dict(),
                "simulated": simulated, "floor": floor, "margin": float(margin)}
        return cls(_smoothed(np.bincount(idx, minlength=n_bins)).tolist(), classes,
                   margin * max(simulated, floor), lag=tail_blocks(idx, n_bins, block, lag_blocks),
                   last=int(idx[-1]), calibration=info, **params)


def tail_blocks(idx: np.ndarray, n_bins: int, block: int, lag_blocks: int) -> list[list[int]]:
    """Bin counts of the last whole blocks of ``idx`` (at most ``lag_blocks``), oldest first.

    >>> tail_blocks(np.array([0, 1, 1, 1, 0]), 2, 2, 5)
    [[0, 2], [1, 1]]
    """
    n = min(lag_blocks, idx.size // block)
    tail = idx[idx.size - n * block:].reshape(n, block)
    return [np.bincount(r, minlength=n_bins).tolist() for r in tail]


def mix_cusum_paths(
    reference: np.ndarray, stream: np.ndarray, n_bins: int, *, ratio: float, min_shift: float,
    stay: float, block: int, lag_blocks: int, halflife: float,
) -> np.ndarray:
    """``MixCusum``'s statistic after every update of each row of ``stream``, never restarted.

    Row ``i`` starts from the smoothed histogram of ``reference[i]`` and its
    tail blocks, as ``MixCusum.calibrated`` starts production. Vectorised
    over rows; one numpy pass per block for the baseline, one Lindley
    recursion per bin and side.

    Examples
    --------
    >>> ref = np.tile([0, 1], (1, 300))
    >>> p = mix_cusum_paths(ref, np.zeros((1, 400), dtype=int), 2, ratio=3.0, min_shift=0.0,
    ...                     stay=0.5, block=100, lag_blocks=2, halflife=100.0)
    >>> p.shape, bool(p[0, -1] > p[0, 0] > 0)
    ((1, 400), True)
    """
    m, t_len = stream.shape
    n_blk = -(-t_len // block)
    ref_counts = np.stack([np.bincount(r, minlength=n_bins) for r in reference])
    base = np.apply_along_axis(_smoothed, 1, ref_counts)
    n_tail = min(lag_blocks, reference.shape[1] // block)
    tail = reference[:, reference.shape[1] - n_tail * block:].reshape(m, n_tail, block)
    pad = np.zeros((m, n_blk * block - t_len), dtype=stream.dtype) - 1
    blocks = np.concatenate([tail, np.concatenate([stream, pad], axis=1)
                             .reshape(m, n_blk, block)], axis=1)
    counts = np.stack([(blocks == c).sum(axis=2) for c in range(n_bins)], axis=2)
    a = 1.0 - 0.5 ** (block / halflife)
    # Baseline in force during each stream block j: the blocks that left the lag before it.
    bases = np.empty((m, n_blk, n_bins))
    for j in range(n_blk):
        bases[:, j] = base
        done = n_tail + j  # complete blocks (tail + stream) once block j ends
        if done + 1 > lag_blocks:
            old = counts[:, done - lag_blocks]
            base = (1.0 - a) * base + a * old / np.maximum(old.sum(axis=1, keepdims=True), 1)
    change_up, change_down, same_up, same_down = transition_llrs(bases, ratio, min_shift, stay)
    same = stream == np.concatenate([reference[:, -1:], stream[:, :-1]], axis=1)
    # One flat table per side, [row, block, same?, d, c]: one gather per bin and side.
    n2 = n_bins * n_bins
    at = (((np.arange(m)[:, None] * n_blk + np.arange(t_len)[None, :] // block) * 2 + same)
          * n2 + stream * n_bins)
    out = np.full((m, t_len), -np.inf)
    for chg, rep in ((change_up, same_up), (change_down, same_down)):
        flat = np.stack([chg, rep], axis=2).ravel()
        for c in range(n_bins):
            np.maximum(out, _lindley(np.take(flat, at + c)), out=out)
    return out
