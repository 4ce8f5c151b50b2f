"""Sliding-window two-sample tests against a reference histogram, bounded memory.

A window of the last ``W`` observations is compared with the reference's
histogram at every update once the window is full:

- ``WindowedKS``: Kolmogorov-Smirnov distance between the binned CDFs
  (continuous signals such as confidence; bins are reference quantiles);
- ``PSI``: population stability index ``sum (q - p) ln(q / p)`` (continuous
  or categorical);
- ``ChiSquaredMix``: Pearson's ``sum (n_b - W p_b)^2 / (W p_b)`` on a class
  mix (the classes seen in the reference, the rest pooled into "other").

Memory is O(W + bins): the window's bin indices and its counts. Each
update costs O(bins).

Calibration. Consecutive windows share ``W - 1`` observations and frames are
autocorrelated, so a textbook p-value per window is meaningless as a
false-alarm rate. The threshold is found by simulation instead, on
surrogate streams that keep the reference's marginal *and* its serial
dependence:

- continuous signals: a Gaussian copula -- the reference's rank-based
  normal scores get an AR(p) fit (with parameter uncertainty, see
  ``processors.calibration.surrogate_streams``), AR surrogates are mapped
  back through the reference's quantile function. (A circular block
  bootstrap of a 1,000-value reference was tried first: its blocks cut the
  long correlations of video, under-stated the variance of a 200-frame
  window by ~30% and fired 2-5x too often.)
- class mixes: a "sticky" Markov chain -- repeat the previous class with
  the reference's excess same-class persistence, else draw from the
  reference mix.

The reference histogram is itself a sample: each surrogate stream starts
with ``len(reference)`` values that serve as *its* reference histogram, and
the window statistic of the rest is computed against that (window counts are
differences of cumulative sums, all streams at once), so the sampling error
of a short correlated reference is part of the simulated statistic as it is
in production. ``processors.calibration`` then picks the threshold whose
mean run length is ``ert``. After a detection the window is emptied: the
next test happens ``W`` updates later.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, Self, TypeVar, cast

import numpy as np
from pydantic import model_validator
from scipy import special

from processors import calibration
from processors.detectors.base import DetectorState, WindowDetector
from processors.detectors.state import Audit, Float, FloatList

Test = Literal["ks", "psi", "chi2"]
OTHER = -1  # categorical values never seen in the reference


class WindowedState(DetectorState):
    """Checkpoint of a ``WindowedTest``: reference bins, threshold and the window's bins."""

    probs: FloatList
    window: int
    threshold: Float
    edges: FloatList | None = None
    classes: list[int] | None = None
    calibration: Audit = {}
    bins: list[int]
    stat: Float

    @model_validator(mode="after")
    def _window_fits(self) -> Self:
        if len(self.bins) > self.window:
            raise ValueError(f"bins holds {len(self.bins)} values, window is {self.window}")
        if not all(0 <= b < len(self.probs) for b in self.bins):
            raise ValueError(f"bins holds an index outside 0..{len(self.probs) - 1}")
        return self


class WindowedKSState(WindowedState):
    type: Literal["windowed_ks"] = "windowed_ks"
    version: Literal[1] = 1


class PSIState(WindowedState):
    type: Literal["psi"] = "psi"
    version: Literal[1] = 1


class ChiSquaredMixState(WindowedState):
    type: Literal["chi2_mix"] = "chi2_mix"
    version: Literal[1] = 1


W = TypeVar("W", bound=WindowedState)


class WindowedTest(WindowDetector[W]):
    """Sliding-window test of a binned signal against reference bin probabilities.

    Parameters
    ----------
    probs
        Reference probability of each bin (smoothed, > 0).
    window
        Number of most recent observations compared with the reference.
    threshold
        The test fires when the statistic exceeds it.
    edges
        Continuous signals: inner bin edges (``len(probs) - 1`` ascending values).
    classes
        Categorical signals: the class label of each bin but the last, which
        collects every other class.
    calibration
        JSON-safe audit of the calibration.

    Exactly one of ``edges`` and ``classes`` is given.
    """

    test: ClassVar[Test] = "ks"

    def __init__(
        self,
        probs: Sequence[float],
        window: int,
        threshold: float,
        *,
        edges: Sequence[float] | None = None,
        classes: Sequence[int] | None = None,
        calibration: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        p = np.asarray(probs, dtype=float)
        if p.ndim != 1 or p.size < 2 or (p <= 0).any() or not np.isfinite(p).all():
            raise ValueError("probs must hold >= 2 positive finite values")
        if (edges is None) == (classes is None):
            raise ValueError("give exactly one of edges (continuous) or classes (categorical)")
        if window < 2:
            raise ValueError(f"window must be >= 2, got {window}")
        if not (math.isfinite(threshold) and threshold > 0):
            raise ValueError(f"threshold must be finite and > 0, got {threshold!r}")
        self._set_probs(p / p.sum())
        self.window = int(window)
        self._threshold = float(threshold)
        self.edges = None if edges is None else np.asarray(edges, dtype=float)
        self.classes = None if classes is None else [int(c) for c in classes]
        if self.edges is not None and self.edges.size != p.size - 1:
            raise ValueError(f"{p.size} bins need {p.size - 1} inner edges")
        if self.classes is not None and len(self.classes) != p.size - 1:
            raise ValueError(f"{p.size} bins need {p.size - 1} classes (the last is 'other')")
        self._bin_of_class = {c: i for i, c in enumerate(self.classes or [])}
        self.calibration = dict(calibration or {})
        self._stat = 0.0
        self._reset()

    def _set_probs(self, probs: np.ndarray) -> None:
        self.probs = probs
        self._probs_list = probs.tolist()

    @property
    def n_bins(self) -> int:
        """Number of bins (categorical: classes + "other")."""
        return int(self.probs.size)

    def bin_of(self, x: float) -> int:
        """Bin index of one observation."""
        if self.edges is not None:
            return int(np.searchsorted(self.edges, x, side="right"))
        return self._bin_of_class.get(int(x), self.n_bins - 1)

    def _reset(self) -> None:
        self._bins: deque[int] = deque()
        self._counts = np.zeros(self.n_bins, dtype=np.int64)
        self._stat = 0.0

    def _update(self, x: float) -> bool:
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"{self.name} got a non-finite observation {x!r}")
        b = self.bin_of(x)
        self._bins.append(b)
        self._counts[b] += 1
        if len(self._bins) > self.window:
            self._counts[self._bins.popleft()] -= 1
        if len(self._bins) < self.window:
            return False
        if self.test == "chi2":
            # One window, a handful of bins, once per prediction: plain Python
            # (numpy's per-call overhead was a third of the monitor's cost per
            # prediction); same formula as ``window_statistic``.
            w = float(self.window)
            stat = 0.0
            for c, p in zip(self._counts.tolist(), self._probs_list, strict=True):
                e = w * p
                stat += (c - e) * (c - e) / e
            self._stat = stat
        else:
            self._stat = float(window_statistic(self.test, self._counts[None, :], self.probs)[0])
        return self._stat > self._threshold

    def _to_state(self) -> W:
        return cast(W, self.State.model_validate({
            "probs": self._probs_list,
            "window": self.window,
            "threshold": self._threshold,
            "edges": None if self.edges is None else self.edges.tolist(),
            "classes": self.classes,
            "calibration": self.calibration,
            "bins": list(self._bins),
            "stat": self._stat,
        }))

    @classmethod
    def _from_state(cls, state: W) -> Self:
        obj = cls(
            state.probs,
            state.window,
            state.threshold,
            edges=state.edges,
            classes=state.classes,
            calibration=state.calibration,
        )
        # The constructor normalises its probabilities; those in the state
        # already are, and dividing by their sum again could move the last bit.
        obj._set_probs(np.asarray(state.probs, dtype=float))
        obj._bins = deque(state.bins)
        obj._counts = np.bincount(
            np.asarray(state.bins, dtype=np.int64), minlength=obj.n_bins
        ).astype(np.int64)
        obj._stat = state.stat
        return obj

    @classmethod
    def calibrated(
        cls,
        reference: Sequence[float] | np.ndarray,
        ert: float,
        *,
        window: int = 200,
        bins: int = 10,
        categorical: bool = False,
        seed: int = 0,
        n_streams: int = 400,
        horizon: int | None = None,
    ) -> Self:
        """Bins, reference probabilities and a threshold for ``ert`` from ``reference``.

        Continuous (``categorical=False``): ``bins`` quantile bins of the
        reference (ties merged). Categorical: the ``bins - 1`` most frequent
        reference classes get a bin each, all others share the last.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> conf = 1 / (1 + np.exp(-calibration.ar1_stream(rng, 3000, rho=0.8) - 2))
        >>> det = WindowedKS.calibrated(conf[:1000], ert=5000, window=100)
        >>> hits = sum((det.update(x), det.drift_detected)[1] for x in conf[1000:])
        >>> hits <= 2, det.calibration["fit"]["method"]
        (True, 'simulated')
        """
        ref = np.asarray(reference, dtype=float).ravel()
        if ref.size < 4 * window // 2 or ref.size < 50:
            raise ValueError(f"reference of {ref.size} values is too short for window {window}")
        if not np.isfinite(ref).all():
            raise ValueError("reference holds NaN or infinite values")
        if not categorical and np.ptp(ref) == 0.0:
            raise ValueError("reference has a single value: nothing to compare a window against")
        edges, classes, idx = _binning(ref, bins, categorical)
        if classes is not None:
            n_bins = len(classes) + 1
        else:
            assert edges is not None  # _binning gives edges for continuous signals
            n_bins = edges.size + 1
        rng = np.random.default_rng(seed)
        horizon = int(horizon or max(2000, 8 * window))
        length = ref.size + horizon
        if categorical:
            persistence = _persistence(ref, idx, categorical)
            p_ref = np.bincount(idx, minlength=n_bins) / idx.size
            sims = sticky_markov(rng, p_ref, persistence, n_streams, length)
        else:
            scores = normal_scores(ref)
            model = calibration.fit_ar(scores, max_order=5)
            persistence = float(sum(model.phi)) if model.phi else 0.0
            z = calibration.surrogate_streams(
                scores, n_streams, length, rng=rng, model=model, level_noise=False
            )
            values = np.quantile(ref, special.ndtr(z).ravel()).reshape(z.shape)
            sims = np.searchsorted(np.asarray(edges), values, side="right")
        # Each surrogate stream is compared with the histogram of its own
        # first ``len(reference)`` values, as production compares windows with
        # a reference that is itself a sample.
        counts = np.stack([np.bincount(r, minlength=n_bins) for r in sims[:, : ref.size]])
        probs_rows = np.apply_along_axis(_smoothed, 1, counts)
        paths = window_paths(cls.test, sims[:, ref.size :], probs_rows, window, n_bins)
        est = calibration.ArlEstimator(paths, n_groups=calibration.N_GROUPS)
        fit = calibration.solve_threshold(est, ert)
        info = {
            "ert": float(ert),
            "seed": int(seed),
            "persistence": persistence,
            "fit": fit.as_dict(),
        }
        probs = _smoothed(np.bincount(idx, minlength=n_bins))
        return cls(
            probs.tolist(),
            window,
            fit.threshold,
            edges=None if edges is None else edges.tolist(),
            classes=classes,
            calibration=info,
        )


class WindowedKS(WindowedTest[WindowedKSState]):
    """Binned Kolmogorov-Smirnov distance, window vs reference (see ``WindowedTest``)."""

    State = WindowedKSState
    test = "ks"


class PSI(WindowedTest[PSIState]):
    """Population stability index, window vs reference (see ``WindowedTest``)."""

    State = PSIState
    test = "psi"


class ChiSquaredMix(WindowedTest[ChiSquaredMixState]):
    """Pearson chi-squared on a class mix, window vs reference (see ``WindowedTest``).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> ref = rng.choice([3, 7, 9], p=[0.6, 0.3, 0.1], size=2000)
    >>> det = ChiSquaredMix.calibrated(ref, ert=2000, window=100, bins=4, categorical=True)
    >>> det.classes, det.n_bins
    ([3, 7, 9], 4)
    >>> new = rng.choice([3, 7, 9], p=[0.3, 0.3, 0.4], size=300)
    >>> hit = next(i for i, c in enumerate(new) if (det.update(c), det.drift_detected)[1])
    >>> 99 <= hit < 200
    True
    """

    State = ChiSquaredMixState
    test = "chi2"


# Laplace smoothing of reference probabilities: an empty reference bin must
# not make PSI or chi-squared infinite.
_ALPHA = 0.5


def _smoothed(counts: np.ndarray) -> np.ndarray:
    c = np.asarray(counts, dtype=float) + _ALPHA
    return c / c.sum()


def _binning(
    ref: np.ndarray, bins: int, categorical: bool
) -> tuple[np.ndarray | None, list[int] | None, np.ndarray]:
    """``(edges, classes, bin index of every reference value)``."""
    if categorical:
        labels = ref.astype(np.int64)
        if not np.array_equal(labels, ref):
            raise ValueError("categorical reference must hold integer class labels")
        values, counts = np.unique(labels, return_counts=True)
        order = np.argsort(-counts, kind="stable")[: max(1, bins - 1)]
        classes = sorted(int(values[i]) for i in order)
        lookup = {c: i for i, c in enumerate(classes)}
        idx = np.array([lookup.get(int(v), len(classes)) for v in labels], dtype=np.int64)
        return None, classes, idx
    qs = np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1])
    edges = np.unique(qs)
    return edges, None, np.searchsorted(edges, ref, side="right").astype(np.int64)


def _persistence(ref: np.ndarray, idx: np.ndarray, categorical: bool) -> float:
    """Lag-1-like dependence: AR coefficient sum, or excess same-class persistence."""
    if not categorical:
        phi = calibration.fit_ar(ref, max_order=3).phi
        return float(sum(phi)) if phi else 0.0
    p = np.bincount(idx) / idx.size
    chance = float(np.sum(p * p))
    same = float(np.mean(idx[1:] == idx[:-1]))
    return 0.0 if chance >= 1.0 else max(0.0, (same - chance) / (1.0 - chance))


def normal_scores(x: np.ndarray) -> np.ndarray:
    """Gaussian scores of ``x`` by rank (ties averaged): ``Phi^-1((rank - 0.5) / n)``.

    Examples
    --------
    >>> normal_scores(np.array([3.0, 1.0, 2.0])).round(3).tolist()
    [0.967, -0.967, 0.0]
    """
    from scipy import stats

    ranks = stats.rankdata(x)
    return special.ndtri((ranks - 0.5) / x.size)


def sticky_markov(
    rng: np.random.Generator, probs: np.ndarray, stay: float, n_streams: int, length: int
) -> np.ndarray:
    """Class streams that repeat the previous class with probability ``stay``, else draw anew.

    Examples
    --------
    >>> s = sticky_markov(np.random.default_rng(0), np.array([0.5, 0.5]), 0.9, 2, 1000)
    >>> s.shape, bool(np.mean(s[:, 1:] == s[:, :-1]) > 0.9)
    ((2, 1000), True)
    """
    p = np.asarray(probs, dtype=float)
    draws = rng.choice(p.size, p=p / p.sum(), size=(n_streams, length))
    refresh = rng.random((n_streams, length)) >= stay
    refresh[:, 0] = True
    last = np.maximum.accumulate(np.where(refresh, np.arange(length), 0), axis=1)
    return np.take_along_axis(draws, last, axis=1)


def window_statistic(test: Test, counts: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Statistic of windows given their bin ``counts`` (rows) and reference ``probs``.

    Examples
    --------
    >>> p = np.array([0.5, 0.5])
    >>> window_statistic("chi2", np.array([[5, 5], [10, 0]]), p).tolist()
    [0.0, 10.0]
    >>> window_statistic("ks", np.array([[10, 0]]), p).tolist()
    [0.5]
    """
    counts = np.asarray(counts, dtype=float)
    w = counts.sum(axis=-1, keepdims=True)
    if test == "ks":
        return np.max(np.abs(np.cumsum(counts, axis=-1) / w - np.cumsum(probs, axis=-1)), axis=-1)
    if test == "psi":
        q = (counts + _ALPHA) / (w + _ALPHA * counts.shape[-1])
        return np.sum((q - probs) * np.log(q / probs), axis=-1)
    if test == "chi2":
        expected = w * probs
        return np.sum((counts - expected) ** 2 / expected, axis=-1)
    raise ValueError(f"unknown test {test!r}")


def window_paths(
    test: Test, bins: np.ndarray, probs: np.ndarray, window: int, n_bins: int
) -> np.ndarray:
    """The statistic after every update of each row of bin indices; ``-inf`` until full.

    ``probs`` is ``(n_bins,)`` or one row per stream. Window counts are
    differences of per-bin cumulative sums, computed one bin at a time so
    memory stays at a few ``(streams, horizon)`` arrays.

    Examples
    --------
    >>> window_paths("chi2", np.array([[0, 1, 0, 0]]), np.array([0.5, 0.5]), 2, 2).tolist()
    [[-inf, 0.0, 0.0, 2.0]]
    """
    bins = np.atleast_2d(np.asarray(bins))
    m, t = bins.shape
    probs = np.broadcast_to(np.asarray(probs, dtype=float), (m, n_bins))
    out = np.zeros((m, t))
    cum_count = np.zeros((m, t))
    cum_prob = np.zeros((m, 1))
    for b in range(n_bins):
        c = np.cumsum(bins == b, axis=1, dtype=np.float64)
        c[:, window:] -= c[:, :-window].copy()
        p = probs[:, b : b + 1]
        if test == "ks":
            cum_count += c
            cum_prob = cum_prob + p
            np.maximum(out, np.abs(cum_count / window - cum_prob), out=out)
        elif test == "psi":
            q = (c + _ALPHA) / (window + _ALPHA * n_bins)
            out += (q - p) * np.log(q / p)
        elif test == "chi2":
            e = window * p
            out += (c - e) ** 2 / e
        else:
            raise ValueError(f"unknown test {test!r}")
    out[:, : window - 1] = -np.inf
    return out
